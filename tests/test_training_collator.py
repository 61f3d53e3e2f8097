"""Padding-free batches must give every sample exactly the loss it gets in a right-padded batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from elysium.training.collator import ElysiumCollator


def _per_sample_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss of one sample's answer tokens."""
    return F.cross_entropy(logits[:-1].float(), labels[1:], ignore_index=-100)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_padding_free_losses_equal_padded(model, processor, encoded_samples, attention):
    model.set_attn_implementation(attention)
    samples = encoded_samples()
    lengths = [len(s["input_ids"]) for s in samples]
    assert len(set(lengths)) > 1, "the batch must mix lengths for padding to matter"
    pad_id = processor.tokenizer.pad_token_id
    padded = ElysiumCollator(pad_id)(samples)
    flat = ElysiumCollator(pad_id, padding_free=True)(samples)

    assert flat["input_ids"].shape == (1, sum(lengths))
    assert flat["position_ids"][0].tolist() == [i for n in lengths for i in range(n)]
    assert flat["cu_seq_lens_q"].tolist() == [0, *torch.tensor(lengths).cumsum(0).tolist()]
    assert flat["max_length_q"] == max(lengths) and "attention_mask" not in flat
    assert flat["use_cache"] is False  # a KV cache would disable transformers' packed-sequence mask
    starts = flat["cu_seq_lens_q"][:-1].long()
    assert (flat["labels"][0, starts] == -100).all()

    with torch.no_grad():
        padded_logits = model(**{k: v for k, v in padded.items() if k != "labels"}).logits
        flat_logits = model(**{k: v for k, v in flat.items() if k != "labels"}).logits
    for row, (start, n) in enumerate(zip(starts.tolist(), lengths)):
        expected = _per_sample_losses(padded_logits[row, :n], padded["labels"][row, :n])
        got = _per_sample_losses(flat_logits[0, start : start + n], flat["labels"][0, start : start + n])
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)

    # The model's own loss (mean over all answer tokens) agrees too.
    with torch.no_grad():
        torch.testing.assert_close(model(**flat).loss, model(**padded).loss, atol=1e-5, rtol=0)


def test_packed_samples_leak_without_restarting_positions(model, processor, encoded_samples):
    """Control: the same flat row with plain 0..N positions lets samples attend to each other, changing losses."""
    model.set_attn_implementation("sdpa")
    samples = encoded_samples(count=2)
    flat = ElysiumCollator(processor.tokenizer.pad_token_id, padding_free=True)(samples)
    n0 = len(samples[0]["input_ids"])
    leaked = {**flat, "position_ids": torch.arange(flat["input_ids"].shape[1]).unsqueeze(0)}
    with torch.no_grad():
        good = model(**{k: v for k, v in flat.items() if k != "labels"}).logits[0, n0:]
        bad = model(**{k: v for k, v in leaked.items() if k != "labels"}).logits[0, n0:]
    assert not torch.allclose(good, bad, atol=1e-4)
