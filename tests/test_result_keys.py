"""What reused results are keyed by: every tracker setting (the decoder too) and every weights file (shards too)."""

from __future__ import annotations

import argparse
import json
import os
from types import SimpleNamespace

import torch
from safetensors.torch import save_file

from elysium.inference import heldout_cli
from elysium.inference.loading import model_fingerprint
from elysium.utils.safetensors_check import safetensors_problem


def _heldout_args(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    heldout_cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["heldout", *flags])


def _sharded(folder):
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    save_file({"a": torch.zeros(4)}, str(folder / "model-00001-of-00002.safetensors"))
    save_file({"b": torch.zeros(4)}, str(folder / "model-00002-of-00002.safetensors"))
    weight_map = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return folder


def test_the_heldout_key_differs_when_the_decoder_differs(tmp_path):
    model = _sharded(tmp_path / "model")
    tracks = [SimpleNamespace(id="t0", frames=[0, 1, 2])]
    generate = heldout_cli.result_key(str(model), tracks, _heldout_args("--decoder", "generate"))
    strict = heldout_cli.result_key(str(model), tracks, _heldout_args("--decoder", "strict"))
    assert generate != strict
    assert generate == heldout_cli.result_key(str(model), tracks, _heldout_args("--decoder", "generate"))


def test_the_fingerprint_changes_when_a_shard_changes(tmp_path):
    model = _sharded(tmp_path / "model")
    before = model_fingerprint(model)
    assert [name for name, *_ in before["weights"]] == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ]
    shard = model / "model-00002-of-00002.safetensors"
    save_file({"b": torch.ones(4)}, str(shard))  # retrained: the same size
    stat = shard.stat()
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = model_fingerprint(model)
    assert after["weights"] != before["weights"] and after["config"] == before["config"]


def test_an_empty_or_cut_safetensors_file_is_a_problem(tmp_path):
    whole = tmp_path / "whole.safetensors"
    save_file({"a": torch.zeros(64)}, str(whole))
    assert safetensors_problem(whole) is None
    data = whole.read_bytes()
    for name, kept in (("empty", 0), ("cut_header", 20), ("cut_data", len(data) // 2), ("one_short", len(data) - 1)):
        cut = tmp_path / f"{name}.safetensors"
        cut.write_bytes(data[:kept])
        assert safetensors_problem(cut), name
