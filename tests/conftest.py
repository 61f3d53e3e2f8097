"""Shared fixtures: a tiny random Elysium, a real (small, trained here) tokenizer and the matching processor.

Nothing downloads: the model and tokenizer are the ones `tiny: true` trains (`training/model_setup.py`,
`synthetic/`); the tokenizer is trained with `tokenizers` in well under a second.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import PIL.Image
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# experiments/ (the tiny model's research tools) is not installed: its tests import it from the repository root
sys.path.append(str(Path(__file__).resolve().parents[1]))

from transformers import TrainerCallback  # noqa: E402

from elysium.modeling_elysium import ElysiumForConditionalGeneration  # noqa: E402
from elysium.processing import ElysiumImageProcessor, ElysiumProcessor  # noqa: E402
from elysium.synthetic import synth_tokenizer  # noqa: E402
from elysium.training.model_setup import tiny_model_config  # noqa: E402
from elysium.training.samples import SampleBuilder  # noqa: E402

IMAGE_SIZE = 28  # 2x2 patches of 14 px: 4 patches a frame
T_SELECTOR_TOKENS = 2


def tiny_config(vocab_size: int, image_token_id: int, t_selector_tokens: int = T_SELECTOR_TOKENS):
    """The training code's tiny Elysium (2-layer CLIP and Llama, width 32) at `IMAGE_SIZE`."""
    return tiny_model_config(vocab_size, image_token_id, IMAGE_SIZE, t_selector_tokens, max_position_embeddings=1024)


@pytest.fixture(scope="session")
def tokenizer():
    return synth_tokenizer()


@pytest.fixture()
def processor(tokenizer):
    return ElysiumProcessor(
        ElysiumImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer,
        num_image_tokens=T_SELECTOR_TOKENS,
    )


@pytest.fixture()
def encoded_samples(processor):
    """`encoded_samples(count=4)`: mixed-length encoded samples (2..8 frames, all three video tasks) on
    random-pixel frames, for the collator and loss tests."""

    def build(count: int = 4) -> list[dict]:
        builder = SampleBuilder(processor)
        rng = random.Random(3)
        record = {
            "frames": [f"{i:06d}.jpg" for i in range(40)],
            "box": [[0.1 + i / 200, 0.2, 0.4 + i / 200, 0.6] for i in range(40)],
            "object_description": "a small red circle moving left",
        }
        samples, generator = [], torch.Generator().manual_seed(0)
        while len(samples) < count:
            example = builder.track_example(record, rng)
            frames = [
                PIL.Image.fromarray(
                    torch.randint(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), generator=generator, dtype=torch.uint8).numpy()
                )
                for _ in example.frames
            ]
            samples.append(builder.encode(example, frames))
        return samples

    return build


@pytest.fixture()
def config(tokenizer):
    return tiny_config(len(tokenizer), tokenizer.convert_tokens_to_ids("<image>"))


@pytest.fixture()
def model(config):
    torch.manual_seed(0)
    return ElysiumForConditionalGeneration(config).eval()


class Crash(RuntimeError):
    """Raised by `CrashAt` to simulate a killed training job."""


class CrashAt(TrainerCallback):
    """Simulates a killed job: raises once `global_step` reaches `step` (the resume tests restart after it)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Crash(f"killed at step {self.step}")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, tokenizer) -> Path:
    """A tiny random Elysium saved with its processor, as the CLI and evaluation commands load one."""
    folder = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(0)
    model = ElysiumForConditionalGeneration(tiny_config(len(tokenizer), tokenizer.convert_tokens_to_ids("<image>")))
    model.save_pretrained(folder)
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    ElysiumProcessor(ElysiumImageProcessor(size=size), tokenizer, num_image_tokens=T_SELECTOR_TOKENS).save_pretrained(
        folder
    )
    return folder


def smoke_overrides(
    tmp_path: Path,
    videos: int = 8,
    save_steps: int = 2,
    *extra: str,
    name: str = "run",
    samples_per_epoch: int = 16,
    max_steps: int = 4,
) -> list[str]:
    """Command-line overrides that make tiny-smoke.yaml a short run (default 4 steps: 2 ranks x batch 2 x 4 steps =
    16 samples, one epoch) on `videos` one-track generated videos, writing under `tmp_path`."""
    flags = {
        "--data.synthetic.out_dir": str(tmp_path / "data"),
        "--data.synthetic.videos": str(videos),
        "--data.synthetic.frames_per_video": "[10, 10]",
        "--data.synthetic.tracks_per_video": "1",
        "--data.synthetic.min_track_frames": "2",
        "--data.samples_per_epoch": str(samples_per_epoch),
        "--training.output_dir": str(tmp_path / name),
        "--training.max_steps": str(max_steps),
        "--training.save_steps": str(save_steps),
        "--training.per_device_train_batch_size": "2",
    }
    return [item for pair in flags.items() for item in pair] + list(extra)


def smoke_run_config(tmp_path: Path, name: str, samples_per_epoch: int, max_steps: int, *extra: str) -> dict:
    """tiny-smoke.yaml on 8 one-track videos, logging every step and saving every 4: the resume tests' run."""
    from elysium.training.config import load_config

    smoke = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny-smoke.yaml"
    steps = {"name": name, "samples_per_epoch": samples_per_epoch, "max_steps": max_steps}
    return load_config(smoke, smoke_overrides(tmp_path, 8, 4, "--training.logging_steps", "1", *extra, **steps))


# The environment of the tests' training subprocesses (torchrun, accelerate launch): offline, one thread a rank.
SUBPROCESS_ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
