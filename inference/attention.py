"""SDPA attention that leaves grouped key/value heads to SDPA where a mask is given, for inference on the CPU.

transformers' SDPA attention copies each key/value head once per query head it serves (`repeat_kv`) whenever a mask
is given (its `use_gqa_in_sdpa`: CUDA's masked kernels would run grouped heads on the slow math path); only single-
token steps are spared (`pack_gqa`). On the CPU, PyTorch's flash kernel takes masked grouped heads as they are
(`enable_gqa=True`), so the copy is pure cost there: for the tiny model (4 query heads on 2 key/value heads), a
masked pass of 3 rows x 16 tokens over a 520-token cache spent about 1 ms of its 7 copying (the tracker's box
decoder makes such passes, and `generate` makes one at each padded prefill). This registers that attention with
transformers' `AttentionInterface` (and the SDPA mask with `AttentionMaskInterface`) and switches a CPU model's
language model to it; everywhere else (a GPU, no mask, one query token, one key/value head per query head) it is
transformers' own `sdpa_attention_forward`, and the output is the same either way. Models without grouped heads
(Vicuna-7B) are left as they are.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

__all__ = ["GROUPED_SDPA", "grouped_sdpa_attention", "use_grouped_sdpa"]

GROUPED_SDPA = "sdpa_grouped_cpu"


def grouped_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, but a masked multi-token pass on the CPU hands grouped key/value heads to SDPA."""
    grouped = getattr(module, "num_key_value_groups", 1) > 1
    plain = kwargs.get("position_bias") is None and kwargs.get("softcap") is None
    if grouped and plain and attention_mask is not None and query.device.type == "cpu" and query.shape[2] > 1:
        output = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling, enable_gqa=True
        )
        return output.transpose(1, 2).contiguous(), None
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)


AttentionInterface.register(GROUPED_SDPA, grouped_sdpa_attention)
AttentionMaskInterface.register(GROUPED_SDPA, sdpa_mask)


def use_grouped_sdpa(model: Any) -> bool:
    """Switch `model`'s language model from SDPA to `grouped_sdpa_attention` where it runs on the CPU and has grouped
    key/value heads; returns whether it did."""
    text = model.config.get_text_config()
    groups = text.num_attention_heads // (getattr(text, "num_key_value_heads", None) or text.num_attention_heads)
    if model.device.type != "cpu" or groups <= 1 or text._attn_implementation != "sdpa":
        return False
    model.set_attn_implementation({"text_config": GROUPED_SDPA})
    return model.config.get_text_config()._attn_implementation == GROUPED_SDPA
