"""Export a trained Elysium as a Hub-ready folder that loads with `trust_remote_code=True`, and push it.

The folder holds what a user without the `elysium` package needs: `config.json` whose `auto_map` sends
`AutoConfig`/`AutoModel*` to flat copies of our config and model files, transformers-sharded safetensors, the
processor (with `AutoProcessor`/`AutoImageProcessor` in its `auto_map`), tokenizer, chat template and a model card.
The auto_map is written by hand: `register_for_auto_class` maps a class to one Auto class only, while the design
card's usage needs `AutoModel`, `AutoModelForCausalLM` and `AutoModelForImageTextToText` to give the same model.
"""

from __future__ import annotations

import ast
import importlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from transformers.dynamic_module_utils import get_imports, get_relative_import_files

logger = logging.getLogger(__name__)

MODEL_CLASS = "modeling_elysium.ElysiumForConditionalGeneration"
CONFIG_CLASS = "configuration_elysium.ElysiumConfig"
PROCESSOR_CLASS = "processing_elysium.ElysiumProcessor"
IMAGE_PROCESSOR_CLASS = "image_processing_elysium.ElysiumImageProcessor"

MODEL_AUTO_MAP = {
    "AutoConfig": CONFIG_CLASS,
    "AutoModel": MODEL_CLASS,
    "AutoModelForCausalLM": MODEL_CLASS,
    "AutoModelForImageTextToText": MODEL_CLASS,
}

# The modules whose classes the auto_map names; their relative imports are gathered with them.
CODE_MODULES = (
    "elysium.modeling_elysium.configuration_elysium",
    "elysium.modeling_elysium.modeling_elysium",
    "elysium.processing.processing_elysium",
    "elysium.processing.image_processing_elysium",
)
# Imports a Hub copy must not need: our own package (absent on the user's side) and PyAV (video decoding only).
FORBIDDEN_IMPORTS = frozenset({"elysium", "av"})

DEFAULT_LICENSE = "llama2"  # Vicuna-7B v1.5 is a Llama 2 fine-tune
PIPELINE_TAG = "video-text-to-text"
TAGS = ["elysium", "video", "object-tracking", "visual-grounding", "referring-expression", "llava", "custom_code"]


class ExportError(ValueError):
    """The model, processor or destination cannot be exported as asked."""


class PushError(RuntimeError):
    """Uploading a complete local folder to the Hub failed (no token, no network, no permission)."""


def code_files() -> list[Path]:
    """The flat set of source files the Hub folder needs, checked to import each other only as siblings.

    A flat copy works only if every relative import is `from .sibling import ...` with the sibling in the set
    and nothing imports `elysium` or `av`; checking here turns a broken remote-code folder into an export error.
    """
    files: dict[str, Path] = {}
    for name in CODE_MODULES:
        module_file = Path(importlib.import_module(name).__file__)
        for path in [module_file, *map(Path, get_relative_import_files(module_file))]:
            if path.name in files and files[path.name].resolve() != path.resolve():
                raise ExportError(f"Two code files share the name {path.name}: {files[path.name]} and {path}.")
            files[path.name] = path
    siblings = {path.stem for path in files.values()}
    for path in files.values():
        bad = sorted(set(get_imports(path)) & FORBIDDEN_IMPORTS)
        if bad:
            raise ExportError(f"{path} imports {', '.join(bad)}, which a Hub copy of the code cannot rely on.")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                target = (node.module or "").split(".")[0]
                if node.level != 1 or target not in siblings:
                    raise ExportError(
                        f"{path} has `from {'.' * node.level}{node.module or ''} import ...`, which a flat Hub copy "
                        f"cannot resolve; import only sibling files ({', '.join(sorted(siblings))})."
                    )
    return sorted(files.values(), key=lambda p: p.name)


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def add_auto_maps(folder: Path) -> None:
    """Point the saved config, processor and image processor at the flat code files."""
    config = _read_json(folder / "config.json")
    config["auto_map"] = {**config.get("auto_map", {}), **MODEL_AUTO_MAP}
    _write_json(folder / "config.json", config)

    processor_file = folder / "processor_config.json"
    if not processor_file.exists():
        raise ExportError(f"The processor did not write {processor_file.name}; cannot register AutoProcessor.")
    processor = _read_json(processor_file)
    processor["auto_map"] = {**processor.get("auto_map", {}), "AutoProcessor": PROCESSOR_CLASS}
    image_processor = processor.get("image_processor")
    if isinstance(image_processor, dict):  # transformers 5 nests the image processor in processor_config.json
        image_processor["auto_map"] = {
            **image_processor.get("auto_map", {}),
            "AutoImageProcessor": IMAGE_PROCESSOR_CLASS,
        }
    _write_json(processor_file, processor)
    legacy = folder / "preprocessor_config.json"  # older layout, kept in step if a processor writes it
    if legacy.exists():
        data = _read_json(legacy)
        data["auto_map"] = {**data.get("auto_map", {}), "AutoImageProcessor": IMAGE_PROCESSOR_CLASS}
        _write_json(legacy, data)


def model_card(config: Any, processor: Any, repo_id: str | None = None, license: str = DEFAULT_LICENSE) -> str:
    """README.md with Hub front matter, a usage snippet that needs only transformers, and the prompt/box format."""
    front = {
        "library_name": "transformers",
        "pipeline_tag": PIPELINE_TAG,
        "license": license,
        "tags": TAGS,
    }
    name = repo_id or "path/to/this/folder"
    tokens = config.t_selector_tokens
    size = getattr(processor.image_processor, "size", {"height": 336, "width": 336})
    vision, text = config.vision_config, config.text_config
    return f"""---
{yaml.safe_dump(front, sort_keys=False).strip()}
---

# Elysium

Elysium (ECCV 2024) is a video multimodal LLM that tracks an object through a video from a box (SOT) or from
words alone (RSOT), describes the object at a box (Video-REG), grounds expressions in images (REC/REG) and
answers questions about videos. A CLIP vision tower ({vision.num_hidden_layers} layers, {vision.hidden_size} wide,
{size["height"]}x{size["width"]} px) encodes each frame; the **T-Selector** keeps the {tokens} highest-scoring
patch tokens of each frame (in patch order); a two-layer MLP projects them into a Llama language model
({text.num_hidden_layers} layers, {text.hidden_size} wide).

The model and processor code ship in this repository, so load them with `trust_remote_code=True`.

## Usage

```python
import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained("{name}", trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained("{name}", trust_remote_code=True)

frames = [Image.open(f"frame_{{i}}.jpg") for i in range(8)]  # 2..8 frames of one clip
prompt = processor.build_prompt("sot", num_frames=len(frames), box=[0.34, 0.40, 0.51, 0.67])
inputs = processor(text=prompt, images=frames)
with torch.no_grad():
    output = model.generate(**inputs, max_new_tokens=256, do_sample=False)
text = processor.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]
tracks = processor.post_process_tracking(text, frame_sizes=frames[0].size, num_frames=len(frames))
print(tracks[0]["boxes"])  # one pixel box [x1, y1, x2, y2] per frame
```

`AutoModel`, `AutoModelForCausalLM` and `AutoModelForImageTextToText` all give the generating model.

## Prompt format

Vicuna v1.1, as the released model was trained:

```
A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, \
and polite answers to the user's questions. USER: Frame 1: <image>, Frame 2: <image>, ..., Frame n: <image>
<question> ASSISTANT:
```

A single image is written `<image>\\n` with no timestamp. The processor expands each `<image>` into {tokens}
image tokens (the T-Selector's count); the chat template (`processor.apply_chat_template`) writes the same text.

Task prompts (index 0 of each paraphrase set is the released wording), for example:

- SOT: `This is a video showing an object with coordinates [34,40,51,67] in Frame 1. Please provide the detailed
  coordinates of the object in each frame.`
- RSOT: `Please find the red car in the initial frame and provide the detailed coordinates in each frame.`

## Box format

Boxes are `[x1,y1,x2,y2]`, each value `round(100 * coordinate / frame side)`, with no spaces, normalized to the
original frame (so they survive the resize). A tracking answer reads
`Frame 1: [34,40,51,67], Frame 2: [35,41,52,68], ...` followed by `.`; `processor.post_process_tracking`
parses it back to pixel boxes and repairs malformed or missing boxes (carrying the previous one), counting repairs.

## Citation

```bibtex
@inproceedings{{wang2024elysium,
  title     = {{Elysium: Exploring Object-level Perception in Videos via MLLM}},
  author    = {{Wang, Han and Wang, Yanjie and Ye, Yongjie and Nie, Yuxiang and Huang, Can}},
  booktitle = {{European Conference on Computer Vision (ECCV)}},
  year      = {{2024}}
}}
```
"""


@contextmanager
def atomic_folder(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `out` and rename it to `out` only when the block finishes.

    An interrupted or failed export leaves no half-written `out` (and an existing `out` untouched until the new
    one is complete); the temporary folder is removed on failure.
    """
    out = Path(out).absolute()
    if out.exists() and not overwrite:
        if not out.is_dir() or any(out.iterdir()):
            raise ExportError(f"{out} already exists; choose a new folder or pass overwrite (--overwrite).")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_model(
    model: Any,
    processor: Any,
    out: str | os.PathLike,
    *,
    max_shard_size: str | int = "5GB",
    repo_id: str | None = None,
    license: str = DEFAULT_LICENSE,
    overwrite: bool = False,
) -> Path:
    """Write `model` and `processor` as a Hub-ready, `trust_remote_code` folder at `out`; returns its path."""
    out = Path(out).absolute()
    with atomic_folder(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, max_shard_size=max_shard_size)
        processor.save_pretrained(tmp)
        make_hub_ready(tmp, model.config, processor, repo_id=repo_id, license=license)
    logger.info("Exported %s", out)
    return out


def make_hub_ready(
    folder: str | os.PathLike,
    config: Any,
    processor: Any,
    *,
    repo_id: str | None = None,
    license: str = DEFAULT_LICENSE,
) -> None:
    """Add the flat code files, the `auto_map`s and a model card to a folder save_pretrained wrote.

    Separate from `export_model` so a trainer that saved its own weights (gathering ZeRO-3 / FSDP shards) can
    make its checkpoint loadable with `trust_remote_code` too.
    """
    folder = Path(folder)
    for path in code_files():
        shutil.copyfile(path, folder / path.name)
    add_auto_maps(folder)
    (folder / "README.md").write_text(model_card(config, processor, repo_id=repo_id, license=license), encoding="utf-8")


def export(
    model_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    max_shard_size: str | int = "5GB",
    repo_id: str | None = None,
    license: str = DEFAULT_LICENSE,
    overwrite: bool = False,
) -> Path:
    """Load a saved Elysium (model + processor) from `model_dir` and export it to `out`."""
    from elysium.modeling_elysium import ElysiumForConditionalGeneration
    from elysium.processing import ElysiumProcessor

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ExportError(f"{model_dir} holds no config.json; give a folder written by save_pretrained.")
    if not (model_dir / "processor_config.json").is_file():
        raise ExportError(
            f"{model_dir} holds no processor (processor_config.json); save the ElysiumProcessor beside the model "
            "with processor.save_pretrained(folder)."
        )
    model = ElysiumForConditionalGeneration.from_pretrained(model_dir, dtype="auto")
    processor = ElysiumProcessor.from_pretrained(model_dir)
    return export_model(
        model, processor, out, max_shard_size=max_shard_size, repo_id=repo_id, license=license, overwrite=overwrite
    )


def push_folder(folder: str | os.PathLike, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Create `repo_id` (if needed) and upload the complete `folder`; returns the repo URL.

    Checks for a token first so a machine without one fails at once, and turns any Hub or network error into
    one `PushError` line that says how to fix it; the local folder is left as it is.
    """
    from huggingface_hub import HfApi, get_token

    hint = "log in with `huggingface-cli login` (or `hf auth login`) or set HF_TOKEN"
    token = token or get_token()
    if not token:
        raise PushError(f"cannot push to {repo_id}: no Hugging Face token found; {hint}. {folder} is complete.")
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message="Export Elysium")
    except Exception as error:  # noqa: BLE001 - any Hub/network failure becomes one actionable line
        reason = " ".join(str(error).split()).rstrip(".") or "no detail"
        raise PushError(
            f"cannot push to {repo_id}: {type(error).__name__}: {reason[:300]}. Check the network, then {hint} "
            f"with write access; {folder} is complete, push it again when fixed."
        ) from error
    return str(url)


__all__ = [
    "ExportError",
    "PushError",
    "MODEL_AUTO_MAP",
    "add_auto_maps",
    "atomic_folder",
    "code_files",
    "export",
    "export_model",
    "model_card",
    "push_folder",
]
