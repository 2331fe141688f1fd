"""Schedules for the swap probability: a factor in [0, 1] that multiplies every base p.

Step schedules (`schedule_factor`) follow the trainer's step; the `adaptive` schedule
(`adaptive_factor`) follows the training loss instead, so that p stays near 0 while the model
under-fits and rises as it starts to fit its training data closely (the regime where SSE helps).
`ScheduleState` holds the factor in force for one handle.
"""

from __future__ import annotations

import math
import typing
from typing import Any, Literal

# The p schedules by name: the type of SSEConfig.p_schedule, so that --help lists the choices.
PSchedule = Literal["constant", "linear_warmup", "linear_decay", "cosine", "adaptive"]
SCHEDULES = typing.get_args(PSchedule)
STEP_SCHEDULES = tuple(name for name in SCHEDULES if name != "adaptive")


def schedule_factor(schedule: str, step: int, total_steps: int, warmup_ratio: float = 0.0) -> float:
    """The multiplier of p at optimizer step `step` of `total_steps`.

    constant: 1. linear_warmup: rises linearly from 0 to 1 over the warm-up steps, then stays.
    linear_decay and cosine: the same warm-up (if any), then fall to 0 at `total_steps`,
    linearly or along a half cosine, like the learning-rate schedules of the same names.
    """
    if schedule == "adaptive":
        raise ValueError("The 'adaptive' p schedule follows the training loss, not the step: use adaptive_factor.")
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown p schedule {schedule!r}. Choose one of {list(SCHEDULES)}.")
    if schedule == "constant":
        return 1.0
    if total_steps <= 0:
        raise ValueError(f"The {schedule!r} schedule needs the total number of steps, got {total_steps}.")
    step = min(max(step, 0), total_steps)
    warmup_steps = math.ceil(warmup_ratio * total_steps)
    if step < warmup_steps:
        return step / warmup_steps
    if schedule == "linear_warmup":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if schedule == "linear_decay":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def adaptive_factor(loss: float, reference_loss: float, start: float, full: float) -> float:
    """The multiplier of p when the training loss is `loss` and was `reference_loss` at the start.

    While the loss is above `start` x reference the model still under-fits: 0. It rises linearly as the
    loss falls and is 1 once the loss is at or below `full` x reference (the model fits its training
    data closely). The swap itself raises the training loss, so p settles where the two balance.
    """
    if not (math.isfinite(loss) and math.isfinite(reference_loss)) or reference_loss <= 0:
        return 0.0
    ratio = loss / reference_loss
    return min(1.0, max(0.0, (start - ratio) / (start - full)))


class ScheduleState:
    """The factor of one handle's schedule now: moved by the step (`set_step`) or, for 'adaptive', by the training
    loss (`observe_loss`, whose first usable value is the reference). `config` is the handle's `SSEConfig`."""

    def __init__(self, config: Any):
        self.config = config
        self.factor = 0.0 if config.p_schedule == "adaptive" else 1.0
        self.reference_loss: float | None = None  # the adaptive schedule's first observed training loss

    def set_step(self, step: int, total_steps: int) -> float:
        """The factor at optimizer step `step` of `total_steps` (the 'adaptive' schedule keeps its own)."""
        if self.config.p_schedule != "adaptive":
            self.factor = schedule_factor(self.config.p_schedule, step, total_steps, self.config.p_warmup_ratio)
        return self.factor

    def observe_loss(self, loss: float) -> float:
        """The factor after a training loss of `loss` ('adaptive' only; other schedules ignore it)."""
        if self.config.p_schedule != "adaptive":
            return self.factor
        loss = float(loss)
        if self.reference_loss is None:
            if not (loss > 0 and loss != float("inf")):
                return self.factor  # no usable reference yet (nan, inf or 0): keep p where it is
            self.reference_loss = loss
        self.factor = adaptive_factor(loss, self.reference_loss, self.config.adaptive_start, self.config.adaptive_full)
        return self.factor
