"""`TrackerSettings`: how `ElysiumTracker` tracks, in one frozen dataclass checked in one place.

The model's config stores how it tracks best (`ElysiumConfig.track_clip_len`, `track_search_context`,
`track_views`, `track_box_scale`); `TrackerSettings.from_model_config` reads those and lays a caller's or a
command's choices over them (`from_args` for the flags of `elysium track`, `heldout`, ...), so every way of making a
tracker resolves its settings the same way.

"Not given" is `"model"` (the model's own setting) for the four settings the config stores, and None for every
setting except `search_context`, whose None is a setting of its own: whole frames.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from elysium.processing.boxes import check_box_scale

__all__ = ["DECODERS", "DEFAULT_CLIP_LEN", "MODEL", "VIEWS", "TrackerSettings"]

DEFAULT_CLIP_LEN = 8  # the paper's clips, for a model whose config does not say how it was trained

# Test-time views of a search region, in the order `views` takes them: (shift of the square along both axes, in
# vision patches, mirrored). Shifted by half a patch the target falls on other patch borders, and mirrored the
# model reads it the other way round, so the views' errors are partly independent and their median box is more
# exact than one view's (docs/elysium-tiny/history.md).
VIEWS: tuple[tuple[float, bool], ...] = ((0.0, False), (0.0, True), (0.5, False), (0.5, True), (-0.5, False))

DECODERS = ("auto", "constrained", "strict", "generate")

MODEL = "model"  # "as the model's config says"
_FROM_CONFIG = ("clip_len", "search_context", "views", "box_scale")  # the settings `ElysiumConfig.track_*` store


def _is_model(value: object) -> bool:
    return isinstance(value, str) and value == MODEL


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrackerSettings:
    """How `ElysiumTracker` tracks; the defaults are those of a model whose config says nothing.

    `clip_len`: frames a clip, consecutive clips sharing one (>= 2).
    `max_new_tokens`: cap on a clip's answer in tokens; None: as long as a full answer takes.
    `search_context`: cut each clip to a square this many times the target's last box (>= 1); None: whole frames.
    `views`: test-time views of each search region (`VIEWS`) whose answers are combined, 1 to `len(VIEWS)`.
    `refine_found` (with search regions): RSOT asks its first clip again as SOT in the square around what it found.
    `box_scale`: factor in (0, 4] each reported box is widened by about its centre.
    `decoder`: "auto", "constrained", "strict" or "generate" (see `ElysiumTracker`).
    """

    clip_len: int = DEFAULT_CLIP_LEN
    max_new_tokens: int | None = None
    search_context: float | None = None
    views: int = 1
    refine_found: bool = True
    box_scale: float = 1.0
    decoder: str = "auto"

    def __post_init__(self) -> None:
        for name in _FROM_CONFIG:
            if _is_model(getattr(self, name)):
                raise ValueError(
                    f"{name}='model' needs the model's config; use TrackerSettings.from_model_config(config, ...)."
                )
        clip_len, search_context, views, tokens = self.clip_len, self.search_context, self.views, self.max_new_tokens
        if not _is_int(clip_len) or clip_len < 2:
            raise ValueError(f"clip_len must be >= 2 (clips overlap by one frame), got {clip_len}")
        if search_context is not None and not (_is_number(search_context) and search_context >= 1):
            raise ValueError(
                f"search_context={search_context!r}: give a factor >= 1 (the region holds the whole target), None "
                "for whole frames, or 'model' for the model's own setting."
            )
        if not _is_int(views) or not 1 <= views <= len(VIEWS):
            raise ValueError(f"views={views!r}: give a number of test-time views from 1 to {len(VIEWS)}, or 'model'.")
        box_scale = check_box_scale(self.box_scale)
        if tokens is not None and not (_is_int(tokens) and tokens >= 1):
            raise ValueError(
                f"max_new_tokens={tokens!r}: give a number of tokens >= 1, or None for as many as a clip's answer "
                "takes."
            )
        if not isinstance(self.refine_found, bool):
            raise ValueError(f"refine_found={self.refine_found!r}: give True or False.")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder={self.decoder!r}: give 'constrained', 'strict', 'generate' or 'auto'.")
        # Frozen: the checked values are stored in one form (floats for factors) through object.__setattr__.
        object.__setattr__(self, "search_context", None if search_context is None else float(search_context))
        object.__setattr__(self, "box_scale", box_scale)

    @classmethod
    def from_model_config(cls, config: Any, **overrides: Any) -> TrackerSettings:
        """The settings the model's config stores (`track_*`; a config without them, or with None, gets the
        defaults), with `overrides` laid over them. An override of "model", or None for any setting but
        `search_context` (where None means whole frames), is not given and keeps the model's setting."""
        own = {
            "clip_len": getattr(config, "track_clip_len", None) or DEFAULT_CLIP_LEN,
            "search_context": getattr(config, "track_search_context", None),
            "views": getattr(config, "track_views", None) or 1,
            "box_scale": getattr(config, "track_box_scale", None) or 1.0,
        }
        return cls(**{**own, **_given(overrides)})

    @classmethod
    def from_args(cls, config: Any, args: Any) -> TrackerSettings:
        """The settings of a command's flags (`--clip-len`, `--max-new-tokens` and `track_cli.add_search_arguments`'
        flags, each left at "model" or None unless given) laid over the model's; a flag the command lacks keeps the
        model's setting."""
        flags = {field.name: getattr(args, field.name) for field in fields(cls) if hasattr(args, field.name)}
        return cls.from_model_config(config, **flags)

    def with_overrides(self, **overrides: Any) -> TrackerSettings:
        """These settings with `overrides` laid over them (checked); "model" or None (but a None `search_context`,
        whole frames) keep the setting as it is."""
        return replace(self, **_given(overrides))


def _given(overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides that change a setting; an unknown name is an error that lists the settings."""
    names = [field.name for field in fields(TrackerSettings)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise TypeError(f"Unknown tracker setting(s) {', '.join(unknown)}; the settings are {', '.join(names)}.")
    return {
        name: value
        for name, value in overrides.items()
        if not (value is None and name != "search_context") and not (_is_model(value) and name in _FROM_CONFIG)
    }
