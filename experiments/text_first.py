"""One-off: copy a model folder with its chat template turned text-first ("USER: {text}\n<image> ASSISTANT:"),
so that the image tokens come after the words and can attend to them (a causal LLM's image tokens before the
text cannot see the expression). Only the template changes; the released model's format stays image-first.

    python -m experiments.text_first models/elysium-tiny runs/v61-textfirst
"""

import shutil
import sys
from pathlib import Path

from elysium.processing.processing_elysium import chat_template
from elysium.processing.released_format import ANSWER_TEXT, FRAMES_THEN_TEXT

source, target = Path(sys.argv[1]), Path(sys.argv[2])
template = chat_template("")
assert (source / "chat_template.jinja").read_text() == template, "expected the empty-system-line template"
frames_after = (
    "{%- set frames = items | selectattr('type', 'equalto', 'image') | list -%}"
    "{%- if frames | length == 1 -%}{{- '\n<image>' -}}"
    "{%- elif frames | length > 1 -%}{{- '\n' -}}"
    "{%- for frame in frames -%}{{- 'Frame ' ~ loop.index ~ ': <image>' -}}{{- ', ' if not loop.last -}}"
    "{%- endfor -%}{%- endif -%}"
)
assert FRAMES_THEN_TEXT in template
shutil.copytree(source, target, dirs_exist_ok=True)
(target / "chat_template.jinja").write_text(template.replace(FRAMES_THEN_TEXT, ANSWER_TEXT + frames_after))
print(target)
