"""Where `SSECallback` reaches past the callback API into `transformers.Trainer`, each part with the transformers
behaviour it works around, so that a transformers release that changes one of them breaks this module alone.

1. Reading the running Trainer off the call stack (`running_trainer`, `training_trainer`).
2. Continuing Trainer's open loss window on resume (`open_log_window`, `continue_log_window`).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from transformers.trainer_callback import CallbackHandler, TrainerCallback

from .validation import is_integer, is_number


# ----- 1. the running Trainer, read off the call stack ------------------------------------------------------------
# transformers gives a callback no handle on the Trainer or its CallbackHandler, yet SSECallback needs them for
# three things a plain callback cannot do:
#  * CallbackHandler calls the callbacks in list order, and Trainer puts its reporting callbacks (report_to:
#    TensorBoard, W&B, ...) before the user's; `Trainer.log` also appends a copy of `logs` to `state.log_history`
#    before `on_log`. So what a user callback adds to `logs` reaches neither the trackers nor log_history, unless
#    the callback runs before the reporters (`_move_to_front`) and updates the copy too (`on_log`). It goes right
#    after DefaultFlowCallback, which sets `control.should_save` in `on_step_end`/`on_epoch_end`: every process
#    then knows a checkpoint follows and sums its counts for it (`_sum_counts_for_checkpoint`).
#    tests/test_callback.py::test_transformers_still_calls_reporters_first_and_copies_logs_before_on_log fails when
#    transformers changes this order, and this workaround can then go.
#  * one SSECallback per Trainer, checked against the handler's list;
#  * the Trainer's `compute_loss_func`, `resume_from_checkpoint` and trial output folder (`_get_output_dir`).
# Everything that walks the stack is in the two functions below.
def _on_stack(predicate) -> dict | None:
    """The locals of the innermost caller whose `self` satisfies `predicate`, found on the call stack."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            if predicate(frame.f_locals.get("self")):
                return frame.f_locals
            frame = frame.f_back
    finally:
        del frame
    return None


def running_trainer(callback: TrainerCallback) -> tuple[Any, CallbackHandler | None, Any]:
    """The trainer whose CallbackHandler dispatches the current event to `callback`, that handler and the checkpoint
    the trainer resumes from; (None, None, None) when no handler dispatches it (an event method called directly)."""

    def dispatches(obj: Any) -> bool:
        return isinstance(obj, CallbackHandler) and any(cb is callback for cb in obj.callbacks)

    handler = _on_stack(dispatches)
    handler = None if handler is None else handler["self"]
    found = _on_stack(lambda obj: getattr(obj, "callback_handler", None) is handler is not None)
    if found is None:
        return None, handler, None
    return found["self"], handler, found.get("resume_from_checkpoint")


def training_trainer(callback: TrainerCallback) -> Any:
    """The trainer on the call stack that holds `callback`, also outside an event (its `_save_checkpoint` calls
    `state()`); None when there is none."""

    def holds(obj: Any) -> bool:
        handler = getattr(obj, "callback_handler", None)
        return isinstance(handler, CallbackHandler) and any(cb is callback for cb in handler.callbacks)

    found = _on_stack(holds)
    return None if found is None else found["self"]


# ----- 2. the loss window a checkpoint does not keep ---------------------------------------------------------------
# The part of Trainer's logging state that a checkpoint does not keep (`Trainer._tr_loss`, the training loss summed
# since the previous log, and `_globalstep_last_logged`): a resume from a checkpoint between two logs logs the mean
# loss of the steps since the resume, not since the previous log. SSECallback saves both (`log_window`), and under
# the adaptive schedule, whose p follows that logged loss, gives them back to the resumed Trainer, so that it logs,
# and p follows, exactly the loss of the uninterrupted run.
def open_log_window(trainer: Any) -> tuple[int, float] | None:
    """The trainer's (step of its previous log, training loss summed since) in this process; None if unreadable."""
    last, loss = getattr(trainer, "_globalstep_last_logged", None), getattr(trainer, "_tr_loss", None)
    if not is_integer(last) or not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        return None
    return int(last), float(loss.detach().float().item())


def continue_log_window(trainer: Any, step: int, last_logged_step: int, loss_sum: float, sums: list[float]) -> bool:
    """Give a resumed Trainer back the loss window open at its checkpoint (`loss_sum`, this process's sum since
    `last_logged_step`; `sums`, every process's), so that it logs the uninterrupted run's loss; False, changing
    nothing, when this Trainer's logging state is not the one this was written for (a fresh window at `step`)."""
    if open_log_window(trainer) != (step, 0.0) or not is_number(getattr(trainer, "_total_loss_scalar", None)):
        return False
    trainer._tr_loss += loss_sum  # the same float32 sum the uninterrupted run holds here
    trainer._globalstep_last_logged = last_logged_step
    # Trainer adds the processes' mean to its total at each log: train_loss stays the mean of this call's steps
    trainer._total_loss_scalar -= sum(sums) / len(sums)
    return True
