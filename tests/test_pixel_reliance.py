"""The pixel-reliance probe: the loss with other samples' frames is exactly the loss of a batch built with the
frames swapped, a model blind to the pixels scores a gap of exactly zero, and no sample ever keeps its frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.pixel_reliance import frames_of_other_samples, main, pixel_reliance

REPO = Path(__file__).resolve().parents[1]


def _batch(processor, frame_lists):
    """A padded batch of Video-REG samples, one per list of frames, labelled on the whole text but the frames."""
    texts = [
        processor.build_prompt("video_reg", len(frames), box=[0.1, 0.2, 0.5, 0.6], answer=answer)
        for frames, answer in zip(frame_lists, ["the red circle", "a small blue square", "the green star"])
    ]
    batch = dict(processor(text=texts, images=frame_lists))
    labels = batch["input_ids"].clone()
    labels[(batch["attention_mask"] == 0) | (batch["input_ids"] == processor.image_token_id)] = -100
    return {**batch, "labels": labels}


def _frames(count, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (28, 28, 3), dtype=np.uint8) for _ in range(count)]


def test_other_frames_loss_is_the_loss_of_the_swapped_batch(model, processor):
    a, b, c = _frames(2, 0), _frames(2, 1), _frames(2, 2)
    result = pixel_reliance(model, [_batch(processor, [a, b, c])])
    with torch.no_grad():
        own = model(**_batch(processor, [a, b, c])).loss.item()
        swapped = model(**_batch(processor, [c, a, b])).loss.item()  # each sample gets the previous one's frames
    assert result.loss_own_frames == pytest.approx(own, rel=1e-5)
    assert result.loss_other_frames == pytest.approx(swapped, rel=1e-5)
    assert result.gap != 0.0 and result.samples == 3


def test_a_model_blind_to_the_pixels_has_no_gap(model, processor):
    with torch.no_grad():  # image features are then zero whatever the frames
        for weight in (
            model.model.multi_modal_projector.linear_2.weight,
            model.model.multi_modal_projector.linear_2.bias,
        ):
            weight.zero_()
    result = pixel_reliance(model, [_batch(processor, [_frames(1, 0), _frames(1, 1), _frames(1, 2)])])
    assert result.gap == 0.0 and result.loss_own_frames > 0


def test_no_sample_keeps_its_own_frames():
    counts = [2, 1, 5, 2]
    owner = torch.tensor([i for i, n in enumerate(counts) for _ in range(n)], dtype=torch.float32)
    moved = frames_of_other_samples(owner.view(-1, 1, 1, 1), counts).flatten()
    assert moved.tolist() == [3, 3, 0, 1, 1, 1, 1, 1, 2, 2]  # the previous sample's frames, repeated or cut
    with pytest.raises(ValueError, match="at least 2 samples"):
        frames_of_other_samples(torch.zeros(2, 3, 4, 4), [2])
    with pytest.raises(ValueError, match="prompts ask for 3"):
        frames_of_other_samples(torch.zeros(2, 3, 4, 4), [1, 2])


def test_command_on_a_training_config(model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the config's synthetic data lands in runs/ here
    out = tmp_path / "reliance.json"
    config = REPO / "training" / "configs" / "tiny-smoke.yaml"
    assert main(["--model", str(model_dir), "--config", str(config), "--samples", "8", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["samples"] == 8 and report["answer_tokens"] > 0
    assert report["gap"] == pytest.approx(report["loss_other_frames"] - report["loss_own_frames"])
    assert "with its own frames" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no stage 'nope'"):
        main(["--model", str(model_dir), "--config", str(config), "--stage", "nope"])
