"""Batches of encoded samples: right-padded, or padding-free (all samples in one row) for flash-attention varlen.

Padding-free passes no `attention_mask`: transformers 5 then reads the restarting `position_ids`
(`masking_utils.find_packed_sequence_indices`) and builds a block-diagonal causal mask for sdpa/eager, while
flash-attention uses `cu_seq_lens_q/k` and `max_length_q/k` directly. That detection is skipped when a KV
cache exists, and Llama builds one whenever `use_cache` is on (its eval default), so padding-free batches carry
`use_cache=False`; without it packed samples silently attend to each other. The first token of every sample is
labelled -100, so the shifted loss never asks the last token of one sample to predict the next sample's start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class ElysiumCollator:
    """`padding_free=False`: right padding with `attention_mask`; `True`: one flattened row (see module doc)."""

    pad_token_id: int
    padding_free: bool = False
    pad_to_multiple_of: int | None = None

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        if not samples:
            raise ValueError("an empty batch")
        pixel_values = torch.cat([s["pixel_values"] for s in samples], dim=0)
        batch = self._padding_free(samples) if self.padding_free else self._padded(samples)
        batch["pixel_values"] = pixel_values
        return batch

    def _padded(self, samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(s["input_ids"]) for s in samples)
        if self.pad_to_multiple_of:
            longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(samples), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(samples), longest), -100, dtype=torch.long)
        attention_mask = torch.zeros((len(samples), longest), dtype=torch.long)
        for row, sample in enumerate(samples):
            n = len(sample["input_ids"])
            input_ids[row, :n] = torch.as_tensor(sample["input_ids"])
            labels[row, :n] = torch.as_tensor(sample["labels"])
            attention_mask[row, :n] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}

    def _padding_free(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        lengths = [len(s["input_ids"]) for s in samples]
        input_ids = torch.cat([torch.as_tensor(s["input_ids"]) for s in samples]).unsqueeze(0)
        labels = []
        for sample in samples:
            sample_labels = torch.as_tensor(sample["labels"]).clone()
            sample_labels[0] = -100  # the boundary: nothing predicts a sample's first token
            labels.append(sample_labels)
        position_ids = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)
        cu_seq_lens = torch.zeros(len(lengths) + 1, dtype=torch.int32)
        cu_seq_lens[1:] = torch.cumsum(torch.tensor(lengths), dim=0)
        return {
            "input_ids": input_ids,
            "labels": torch.cat(labels).unsqueeze(0),
            "position_ids": position_ids,
            "cu_seq_lens_q": cu_seq_lens,
            "cu_seq_lens_k": cu_seq_lens.clone(),
            "max_length_q": max(lengths),
            "max_length_k": max(lengths),
            "use_cache": False,
        }
