"""Where `elysium track` and friends look for a model when `--model` is not given.

No trained checkpoint ships with the package yet (a later issue adds one), so this is None and the CLI asks for
`--model`; set it to a local folder or Hub id once a default exists.
"""

from __future__ import annotations

DEFAULT_MODEL: str | None = None

NO_DEFAULT_MESSAGE = "no default model ships yet; pass --model PATH (a folder saved with save_pretrained)"
