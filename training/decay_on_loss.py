"""A learning rate that holds until the training loss has fallen, then decays: a stage that waits for its model to
learn what it is for, however many steps that takes on this machine.

elysium-tiny's first stage (`squares`) sits at one loss (~1.03: the box of every square is guessed alike) until the
model starts to point, and where that happens is chaotic: step ~650 on one machine, ~1000 on another with the same
code, data and seeds (another CPU's kernels round differently), and under a cosine over a fixed 1500 steps a late
start leaves too little rate to finish (docs/elysium-tiny/history.md). Here the rate stays at its peak until
the mean loss of the last `window` steps is below `below`, then follows a half cosine to zero over `decay_steps`
and the stage ends; one that never falls that far decays from `max_steps - decay_steps`, ending at `max_steps`.

transformers' schedules all fix their length in advance (its warmup-stable-decay too), so this is a LambdaLR over
the step with the decay's start found by a callback from the logged losses. The start is recomputed from
`state.log_history` when a run resumes, so a resumed stage decays where the uninterrupted one would have.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

logger = logging.getLogger("elysium.training")


@dataclass(frozen=True)
class DecayOnLoss:
    """The `decay_on_loss:` section of a stage: `{below: LOSS, decay_steps: N, window: STEPS}`."""

    below: float
    decay_steps: int
    window: int = 100

    @classmethod
    def from_config(cls, section: dict[str, Any] | None, max_steps: int, logging_steps: int) -> DecayOnLoss | None:
        """The section checked against the stage's `training` (a clear message, not a late surprise), or None."""
        if not section:
            return None
        unknown = set(section) - {"below", "decay_steps", "window"}
        if unknown or "below" not in section or "decay_steps" not in section:
            raise ValueError(
                f"decay_on_loss: {section}; write {{below: LOSS, decay_steps: N}} and optionally window: STEPS "
                f"(unknown keys: {sorted(unknown) or 'none'})"
            )
        rule = cls(float(section["below"]), int(section["decay_steps"]), int(section.get("window", 100)))
        if max_steps is None or max_steps < 2:
            raise ValueError(f"decay_on_loss needs training.max_steps (the stage's cap) of 2 or more; got {max_steps}")
        if max_steps <= rule.decay_steps:  # a run shortened from the command line (`--training.max_steps 10`)
            logger.warning(
                "decay_on_loss: max_steps %d is not above decay_steps %d; decaying over the last %d steps",
                max_steps,
                rule.decay_steps,
                max_steps // 2,
            )
            rule = cls(rule.below, max_steps // 2, rule.window)
        if rule.window < logging_steps or rule.decay_steps < 1 or rule.below <= 0:
            raise ValueError(
                f"decay_on_loss: window {rule.window} must be at least training.logging_steps {logging_steps} "
                f"(the loss is read from the logs), decay_steps >= 1 and below > 0"
            )
        return rule


class DecayOnLossSchedule(TrainerCallback):
    """The rate's multiplier (`factor`, for a LambdaLR) and the callback that starts its decay and ends the stage."""

    def __init__(self, rule: DecayOnLoss, warmup_steps: int, max_steps: int):
        self.rule, self.warmup_steps, self.max_steps = rule, warmup_steps, max_steps
        self.decay_from: int | None = None  # the step the decay began; None while the rate holds

    @property
    def latest_start(self) -> int:
        """The last step a decay may begin and still end by `max_steps`."""
        return self.max_steps - self.rule.decay_steps

    def factor(self, step: int) -> float:
        """Linear warmup, then 1 until the decay's start, then a half cosine to 0 over `decay_steps`."""
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        start = self.decay_from if self.decay_from is not None else self.latest_start
        if step < start:
            return 1.0
        done = min((step - start) / self.rule.decay_steps, 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * done))

    def scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        # A plain function, not the bound method: LambdaLR's state_dict skips functions and would try to save a
        # method's attributes.
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: self.factor(step))

    def find_start(self, log_history: list[dict[str, Any]]) -> int | None:
        """The first logged step past warmup and `window` whose logged losses over the last `window` steps (each
        the mean over its `logging_steps`) average below `below`, or None."""
        losses = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
        for step, _ in losses:
            if step < max(self.warmup_steps, self.rule.window) or step > self.latest_start:
                continue
            recent = [loss for past, loss in losses if step - self.rule.window < past <= step]
            if sum(recent) / len(recent) < self.rule.below:
                return step
        return None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self.decay_from = self.find_start(state.log_history)  # a resumed run: where the interrupted one began it
        if self.decay_from is not None:
            logger.info("decay_on_loss: resumed, the rate decays from step %d", self.decay_from)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **kwargs):
        if self.decay_from is None and logs and "loss" in logs:
            self.decay_from = self.find_start(state.log_history)
            if self.decay_from is not None:
                logger.info(
                    "decay_on_loss: loss below %.3g over the last %d steps at step %d; the rate decays to 0 by step %d",
                    self.rule.below,
                    self.rule.window,
                    self.decay_from,
                    self.decay_from + self.rule.decay_steps,
                )

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if state.global_step == self.latest_start and self.decay_from is None:
            logger.warning(
                "decay_on_loss: the loss did not fall below %.3g by step %d; decaying anyway to end at max_steps %d",
                self.rule.below,
                self.latest_start,
                self.max_steps,
            )
        if self.decay_from is not None and state.global_step >= self.decay_from + self.rule.decay_steps:
            control.should_training_stop = True
            control.should_save = True  # a checkpoint of the last step: its log is the stage's whole curve
        return control
