"""Schedules for the swap probability: a factor in [0, 1] that multiplies every configured p."""

from __future__ import annotations

import math

SCHEDULES = ("constant", "linear_warmup", "linear_decay", "cosine")


def schedule_factor(schedule: str, step: int, total_steps: int, warmup_ratio: float = 0.0) -> float:
    """The multiplier of p at optimizer step `step` of `total_steps`.

    constant: 1. linear_warmup: rises linearly from 0 to 1 over the warm-up steps, then stays.
    linear_decay and cosine: the same warm-up (if any), then fall to 0 at `total_steps`,
    linearly or along a half cosine, like the learning-rate schedules of the same names.
    """
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
