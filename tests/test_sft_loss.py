"""The trainer's loss: TRL's fused LM head scoring only the labelled positions must give the loss and gradients it
gives scoring every position (its own path on CPU), and the model's own cross-entropy."""

from __future__ import annotations

import torch
import trl.trainer.utils as trl_utils
from trl.trainer.utils import add_fused_lm_head

from elysium.training.collator import ElysiumCollator
from elysium.training.sft import score_labelled_positions_only


def _loss_and_grads(model, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    model.zero_grad()
    outputs = model(**batch, fused_lm_head=True)
    outputs.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return outputs.loss.detach(), grads, outputs.label_mask


def test_labelled_positions_only_give_the_same_loss_and_gradients(model, processor, encoded_samples, monkeypatch):
    batch = ElysiumCollator(processor.tokenizer.pad_token_id)(encoded_samples())
    labelled = (batch["labels"][:, 1:] != -100).sum().item()
    assert 0 < labelled < batch["labels"][:, 1:].numel() / 2, "most positions must carry no label for this to matter"
    with torch.no_grad():
        reference = model(**batch).loss  # the model's own cross-entropy over the full logits

    model.train()
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    calls = []
    original = trl_utils._ChunkedLogProbFunction.apply

    def counting(hidden, *args):
        calls.append(hidden.shape[0])
        return original(hidden, *args)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", counting)
    every_loss, every_grads, every_mask = _loss_and_grads(model, batch)
    with score_labelled_positions_only():
        only_loss, only_grads, only_mask = _loss_and_grads(model, batch)

    assert calls == [batch["labels"][:, 1:].numel(), labelled]  # TRL's CPU path scores all; ours the labelled ones
    assert torch.equal(every_mask, only_mask)
    torch.testing.assert_close(every_loss, reference, atol=1e-5, rtol=0)
    torch.testing.assert_close(only_loss, every_loss, atol=1e-6, rtol=0)
    assert every_grads.keys() == only_grads.keys() and len(only_grads) > 10
    for name, grad in every_grads.items():
        torch.testing.assert_close(only_grads[name], grad, atol=1e-6, rtol=1e-5, msg=name)
    assert not trl_utils._use_triton(torch.device("cpu"))  # the context put TRL's own check back
