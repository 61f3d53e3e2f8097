"""Export a trained Elysium as a Hub-ready folder that loads with `trust_remote_code=True`, and push it.

The folder holds what a user without the `elysium` package needs: `config.json` whose `auto_map` sends
`AutoConfig`/`AutoModel*` to flat copies of our config and model files, transformers-sharded safetensors, the
processor (with `AutoProcessor`/`AutoImageProcessor` in its `auto_map`), tokenizer, chat template and a model card.
The auto_map is written by hand: `register_for_auto_class` maps a class to one Auto class only, while the design
card's usage needs `AutoModel`, `AutoModelForCausalLM` and `AutoModelForImageTextToText` to give the same model.

The `video-object-tracking` pipeline ships as transformers' custom pipelines do (`Pipeline.save_pretrained`):
`custom_pipelines` in config.json names `video_tracking.VideoObjectTrackingPipeline`, and its file and the
modules it imports (tracker, video decoding, crops, ...) are copied flat beside the model code. Those live in two
packages (inference, processing) and import each other as `elysium.<package>.<module>`, so the copy rewrites each
such import to its flat sibling (`from .tracker import ...`); `custom_object_save` copies only files that already
import by relative path, so it cannot do this.

A model folder with its own card (README.md, as `models/elysium-tiny`) keeps it: export replaces only what follows
`EXPORT_MARKER` (or appends after it), and merges its front matter.
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

PIPELINE_TASK = "video-object-tracking"
PIPELINE_MODULE = "elysium.inference.video_tracking"
CUSTOM_PIPELINES = {
    PIPELINE_TASK: {
        "impl": "video_tracking.VideoObjectTrackingPipeline",
        "pt": ["AutoModelForImageTextToText"],
        "type": "multimodal",
    }
}
REMOTE_CODE_SENTENCE = (
    "The model, processor and pipeline code ship in this folder, so load them with `trust_remote_code=True`; the\n"
    "`elysium` package is not needed."
)
EXPORT_MARKER = "<!-- elysium export: the sections below are written by `elysium export` -->"

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


def _module_level(tree: ast.AST) -> list[ast.AST]:
    """The nodes of `tree` outside function bodies: the imports a module runs when it is imported. An import inside
    a function (the tracker's `from_pretrained` loads through the package) runs only when it is called, which the
    exported pipeline never does, so it is neither followed nor rewritten."""
    nodes, stack = [], [tree]
    while stack:
        node = stack.pop()
        nodes.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))
    return nodes


def pipeline_files() -> dict[str, str]:
    """`{file name: source}` of the tracking pipeline and every module it imports from this package, flat.

    Imports of `elysium.<package>.<module>` become `.<module>`; anything else of ours (`import elysium...`, a
    package-level import, two modules of one name) is an `ExportError`, so a broken pipeline copy fails the export.
    """
    files: dict[str, str] = {}
    paths: dict[str, Path] = {}
    queue = [Path(importlib.import_module(PIPELINE_MODULE).__file__)]
    while queue:
        path = queue.pop()
        if path.name in paths:
            if paths[path.name].resolve() != path.resolve():
                raise ExportError(f"Two pipeline modules share the name {path.name}: {paths[path.name]} and {path}.")
            continue
        paths[path.name] = path
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines(keepends=True)
        for node in _module_level(ast.parse(source)):
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "elysium" for a in node.names):
                raise ExportError(f"{path}:{node.lineno} imports the elysium package, which a Hub copy cannot.")
            if not isinstance(node, ast.ImportFrom):
                continue
            module = node.module or ""
            if node.level == 1:
                queue.append(path.parent / f"{module}.py")
            elif node.level > 1 or module == "elysium":
                raise ExportError(f"{path}:{node.lineno} has an import a flat Hub copy cannot resolve.")
            elif module.startswith("elysium."):
                parts = module.split(".")
                if len(parts) != 3:
                    raise ExportError(f"{path}:{node.lineno}: import from a module, not {module}.")
                queue.append(Path(importlib.import_module(module).__file__))
                line = lines[node.lineno - 1]
                if f"from {module} import" not in line:
                    raise ExportError(f"{path}:{node.lineno}: write `from {module} import ...` on one line.")
                lines[node.lineno - 1] = line.replace(f"from {module} import", f"from .{parts[2]} import")
        files[path.name] = "".join(lines)
    return dict(sorted(files.items()))


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def add_auto_maps(folder: Path, with_processor: bool = True) -> None:
    """Point the saved config (and, `with_processor`, the processor and image processor) at the flat code files,
    and register the tracking pipeline in the config."""
    config = _read_json(folder / "config.json")
    config["auto_map"] = {**config.get("auto_map", {}), **MODEL_AUTO_MAP}
    config["custom_pipelines"] = {**config.get("custom_pipelines", {}), **CUSTOM_PIPELINES}
    _write_json(folder / "config.json", config)
    if not with_processor:
        return

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


CITATION = """## Citation

```bibtex
@inproceedings{wang2024elysium,
  title     = {Elysium: Exploring Object-level Perception in Videos via MLLM},
  author    = {Wang, Han and Wang, Yanjie and Ye, Yongjie and Nie, Yuxiang and Huang, Can},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2024}
}
```
"""


def card_front_matter(license: str = DEFAULT_LICENSE) -> dict[str, Any]:
    return {"library_name": "transformers", "pipeline_tag": PIPELINE_TAG, "license": license, "tags": list(TAGS)}


def _prompt_section(processor: Any, tokens: int) -> str:
    """How this folder's processor writes and tokenizes prompts: the released format or ours."""
    released = getattr(processor, "prompt_format", "elysium") == "released"
    if released:
        return f"""## Prompt format

As the released Elysium-7B was trained (the processor's `prompt_format` is `released`): the system line (ending in
a space), `USER: `, the frames, the question and `ASSISTANT:` with no space before it:

```
A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, \
and polite answers to the user's questions. USER: Frame 1: <image>, Frame 2: <image>, ..., Frame n: <image>
<question>ASSISTANT:
```

The text between `<image>`s is tokenized piece by piece, each piece starting with `<s>`, as the released code does;
an answer is tokenized alone and closed by `</s>`. A single image is written `<image>\\n` with no timestamp. The
processor expands each `<image>` into {tokens} image tokens (the T-Selector's count).

Task prompts (`processor.build_prompt(task, ...)`; `paraphrase=0` is the released eval wording):

- SOT: `This is a video showing an object with coordinates [34,40,51,67] in Frame 1. Please provide the detailed
  coordinates of the object in each frame.`
- RSOT: `Please find one person and provide the detailed coordinates in each frame.`
- Video-REG: `This is a video showing an object with coordinates [34,40,51,67] in Frame 1. Please describe the object.`
- REC: `Give me the location of the red car.`; REG: `What object is in this location [34,40,51,67]?`
"""
    return f"""## Prompt format

Vicuna v1.1 (the processor's `prompt_format` is `elysium`, this package's own; tokenized in one go):

```
<system line> USER: Frame 1: <image>, Frame 2: <image>, ..., Frame n: <image>
<question> ASSISTANT:
```

A single image is written `<image>\\n` with no timestamp. The processor expands each `<image>` into {tokens}
image tokens (the T-Selector's count); the chat template (`processor.apply_chat_template`) writes the same text.

Task prompts (`processor.build_prompt(task, ...)`), for example:

- SOT: `This is a video showing an object with coordinates [34,40,51,67] in Frame 1. Please provide the detailed
  coordinates of the object in each frame.`
- RSOT: `Please find the red car in the initial frame and provide the detailed coordinates in each frame.`
"""


def export_sections(config: Any, processor: Any, repo_id: str | None = None) -> str:
    """What export adds to any card: usage without the package, the pipeline, prompt and box format, citation."""
    name = repo_id or "path/to/this/folder"
    tokens = config.t_selector_tokens
    usage = f"""## Usage

{REMOTE_CODE_SENTENCE}

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

Whole videos, in clips of frames, each starting from the last box (needs PyAV for video files):

```python
from transformers import pipeline

tracker = pipeline("{PIPELINE_TASK}", model="{name}", trust_remote_code=True)
out = tracker("video.mp4", box=[x1, y1, x2, y2])  # pixels of the first frame; or expression="the red car"
print(out["boxes"])
```
"""
    box = """## Box format

Boxes are `[x1,y1,x2,y2]`, each value `round(100 * coordinate / frame side)`, with no spaces, normalized to the
original frame (so they survive the resize). A tracking answer reads
`Frame 1: [34,40,51,67], Frame 2: [35,41,52,68], ...` followed by `.`; `processor.post_process_tracking`
parses it back to pixel boxes and repairs malformed or missing boxes (carrying the previous one), counting repairs.
"""
    parts = [usage]
    if processor is not None:
        parts.append(_prompt_section(processor, tokens))
    parts += [box, CITATION]
    return "\n".join(parts)


def model_card(
    config: Any,
    processor: Any,
    repo_id: str | None = None,
    license: str = DEFAULT_LICENSE,
    own_card: str | None = None,
) -> str:
    """README.md with Hub front matter, a usage snippet that needs only transformers, and the prompt/box format.

    With `own_card` (the model folder's README.md), that card is kept: its front matter is merged with ours (its
    values win, tags are joined) and what export writes replaces anything after `EXPORT_MARKER`, else follows it.
    """
    front = card_front_matter(license)
    if own_card is not None:
        body = own_card
        if own_card.startswith("---\n") and "\n---" in own_card[4:]:
            head, body = own_card[4:].split("\n---", 1)
            theirs = yaml.safe_load(head) or {}
            tags = list(dict.fromkeys([*(theirs.get("tags") or []), *front["tags"]]))
            front = {**front, **theirs, "tags": tags}
        body = body.split(EXPORT_MARKER)[0].strip("\n")
        return (
            f"---\n{yaml.safe_dump(front, sort_keys=False).strip()}\n---\n\n{body}\n\n{EXPORT_MARKER}\n\n"
            + export_sections(config, processor, repo_id)
        )
    vision, text = config.vision_config, config.text_config
    size = vision.image_size
    return f"""---
{yaml.safe_dump(front, sort_keys=False).strip()}
---

# Elysium

Elysium (ECCV 2024) is a video multimodal LLM that tracks an object through a video from a box (SOT) or from
words alone (RSOT), describes the object at a box (Video-REG), grounds expressions in images (REC/REG) and
answers questions about videos. A CLIP vision tower ({vision.num_hidden_layers} layers, {vision.hidden_size} wide,
{size}x{size} px) encodes each frame; the **T-Selector** keeps the {config.t_selector_tokens} highest-scoring
patch tokens of each frame (in patch order); a two-layer MLP projects them into a Llama language model
({text.num_hidden_layers} layers, {text.hidden_size} wide).

{EXPORT_MARKER}

{export_sections(config, processor, repo_id)}"""


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
    own_card: str | None = None,
) -> Path:
    """Write `model` and `processor` as a Hub-ready, `trust_remote_code` folder at `out`; returns its path.

    `own_card`: the model's own README.md, kept with export's sections added (`model_card`)."""
    out = Path(out).absolute()
    with atomic_folder(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, max_shard_size=max_shard_size)
        processor.save_pretrained(tmp)
        make_hub_ready(tmp, model.config, processor, repo_id=repo_id, license=license, own_card=own_card)
    logger.info("Exported %s", out)
    return out


def make_hub_ready(
    folder: str | os.PathLike,
    config: Any,
    processor: Any,
    *,
    repo_id: str | None = None,
    license: str = DEFAULT_LICENSE,
    own_card: str | None = None,
) -> None:
    """Add the flat code files, the tracking pipeline, the `auto_map`s and a model card to a folder save_pretrained
    wrote (a `processor` of None: the model alone, without the processor's auto_map).

    Separate from `export_model` so a trainer that saved its own weights (gathering ZeRO-3 / FSDP shards) and
    `elysium convert-released` can make their folders loadable with `trust_remote_code` too.
    """
    folder = Path(folder)
    model_code = code_files()
    pipeline_code = pipeline_files()
    for path in model_code:
        shutil.copyfile(path, folder / path.name)
    for name, source in pipeline_code.items():
        if name in {p.name for p in model_code} and (folder / name).read_text(encoding="utf-8") != source:
            raise ExportError(f"The pipeline's {name} differs from the model code's file of that name.")
        (folder / name).write_text(source, encoding="utf-8")
    add_auto_maps(folder, with_processor=processor is not None)
    card = model_card(config, processor, repo_id=repo_id, license=license, own_card=own_card)
    (folder / "README.md").write_text(card, encoding="utf-8")


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
    card_file = model_dir / "README.md"
    own_card = card_file.read_text(encoding="utf-8") if card_file.is_file() else None
    return export_model(
        model,
        processor,
        out,
        max_shard_size=max_shard_size,
        repo_id=repo_id,
        license=license,
        overwrite=overwrite,
        own_card=own_card,
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
    "CUSTOM_PIPELINES",
    "EXPORT_MARKER",
    "REMOTE_CODE_SENTENCE",
    "add_auto_maps",
    "atomic_folder",
    "code_files",
    "export",
    "export_model",
    "make_hub_ready",
    "model_card",
    "pipeline_files",
    "push_folder",
]
