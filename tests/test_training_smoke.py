"""The shipped smoke config, launched exactly as documented on 2 CPU processes, trains, saves and reloads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from conftest import SUBPROCESS_ENV

REPO = Path(__file__).resolve().parents[1]


def test_tiny_smoke_config_trains_on_two_cpu_processes(tmp_path):
    # Run from a scratch folder: the config's relative output paths (runs/...) land there, not in the repo.
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",  # the README's `torchrun --nproc_per_node 2`
        "--standalone",
        "--nproc_per_node",
        "2",
        str(REPO / "training" / "sft.py"),
        "--config",
        str(REPO / "training" / "configs" / "tiny-smoke.yaml"),
    ]
    result = subprocess.run(command, cwd=tmp_path, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "tokens/s" in result.stderr and "frames/s" in result.stderr  # the progress line

    run = tmp_path / "runs" / "tiny-smoke"
    state = json.loads((run / "checkpoint-40" / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert state["global_step"] == 40 and len(losses) == 8
    assert losses[-1] < 0.8 * losses[0], losses  # it learns
    assert all("tokens_per_second" in e for e in state["log_history"] if "loss" in e)
    skips = json.loads((run / "data_skip_counts.json").read_text())
    records = (tmp_path / "runs" / "tiny-smoke-data" / "annotations.jsonl").read_text().splitlines()
    assert len(records) >= 32 and skips["validation"] == {"used": len(records)} and skips["skipped"] == 0

    from transformers import AutoModel, AutoProcessor

    import elysium.modeling_elysium  # noqa: F401  (registers Elysium with the Auto classes)
    import elysium.processing  # noqa: F401

    model = AutoModel.from_pretrained(run / "final", trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(run / "final", trust_remote_code=True)
    assert type(model).__name__ == "ElysiumForConditionalGeneration"
    # Hub-ready: the code files and auto_map travel with the weights (see test_hub_export for a load without us).
    auto_map = json.loads((run / "final" / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == "modeling_elysium.ElysiumForConditionalGeneration"
    assert (run / "final" / "modeling_elysium.py").is_file() and (run / "final" / "processing_elysium.py").is_file()
    from safetensors.torch import load_file

    final, last = load_file(run / "final" / "model.safetensors"), load_file(run / "checkpoint-40" / "model.safetensors")
    assert final.keys() == last.keys()
    assert all(torch.equal(final[k], last[k]) for k in final)  # final/ holds the trained weights
    initial = elysium.modeling_elysium.ElysiumForConditionalGeneration(model.config).state_dict()
    assert not torch.equal(
        initial["model.multi_modal_projector.linear_1.weight"], final["model.multi_modal_projector.linear_1.weight"]
    )
    import PIL.Image

    prompt = processor.build_prompt("sot", 2, box=[0.1, 0.1, 0.4, 0.4])
    inputs = processor(text=prompt, images=[PIL.Image.new("RGB", (56, 56))] * 2)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
