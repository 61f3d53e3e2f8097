"""benchmarks/gpu_7b.py runs on CPU with `--tiny` through the code the GPU run takes, and its 7B is the defaults."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from elysium.modeling_elysium import ElysiumConfig

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_7b.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_7b", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_7b"] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gpu_7b", None)


def test_the_7b_is_the_config_defaults(bench) -> None:
    config = bench.model_config(tiny=False, image_token_id=600)
    defaults = ElysiumConfig()
    assert config.text_config.to_dict() == defaults.text_config.to_dict()
    assert config.vision_config.to_dict() == defaults.vision_config.to_dict()
    assert config.t_selector_tokens == 108 and config.image_token_id == 600
    tiny = bench.model_config(tiny=True, image_token_id=600)
    assert tiny.text_config.rms_norm_eps == 1e-5 and tiny.text_config.hidden_size == 128  # same fields, smaller


def test_tiny_run_prints_every_measure(bench, capsys) -> None:
    bench.main(
        ["--tiny", "--device", "cpu", "--videos", "1", "2", "--video-frames", "15", "--decode-tokens", "4",
         "--repeats", "1", "--train-batch", "3"]
    )  # fmt: skip
    out = capsys.readouterr().out
    rows = dict(re.findall(r"^\| ([^|]+?) \| ([0-9.]+) \|$", out, flags=re.M))
    for name in (
        "prefill tokens/s",
        "decode tokens/s",
        "track frames/s, 1 video(s)",
        "track frames/s, 2 video(s)",
        "train tokens/s, padded",
        "train tokens/s, padding-free",
        "train padding-free / padded",
        "peak GiB (train padding-free)",
    ):
        assert float(rows[name]) > 0, name
    assert "| measure | sdpa |" in out  # no flash_attention_2 column without CUDA
    assert int(rows["prompt tokens"]) > 8 * bench.TINY_TOKENS  # eight frames' image tokens and the text


def test_refuses_the_7b_on_cpu(bench, capsys) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(["--device", "cpu"])
    assert "--tiny" in capsys.readouterr().err
