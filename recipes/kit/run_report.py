"""What a recipe records about its run, through `Trainer.save_metrics` (each split merged into all_results.json):
the train metrics with the SSE settings and the SSE counts SSECallback logged (summed over the processes), what ran."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from transformers import Trainer
from transformers.trainer_utils import TrainOutput

from sse_hf import SSEArguments, SSEConfig
from sse_hf.arguments import PREFIX

logger = logging.getLogger(__name__)

RESULTS_NAME = "all_results.json"  # where Trainer.save_metrics merges every split
SUMMARY_COUNTS = ("tokens_seen", "tokens_eligible", "tokens_swapped")  # the inputs' counts in the callback's summary


def sse_counts(train_metrics: dict[str, Any]) -> dict[str, Any]:
    """The run's SSE figures over all training and every process, from SSECallback's end-of-training summary (the
    `sse/*` keys of `trainer.train().metrics`, summed over the processes): the inputs' counts and realised rate, and
    the rate of each role logged apart (label SSE, decoder inputs, other tables). Zeros when SSE was off."""
    record: dict[str, Any] = {"sse_swap_rate": float(train_metrics.get("sse/swap_rate", 0.0))}
    record.update({f"sse_{key}": int(train_metrics.get(f"sse/{key}", 0)) for key in SUMMARY_COUNTS})
    record["sse_swap_rate_by_role"] = {
        key[len("sse/") : -len("/swap_rate")]: value
        for key, value in train_metrics.items()
        if key.startswith("sse/") and key.endswith("/swap_rate") and key != "sse/swap_rate"
    }
    return record


def print_process_counts(trainer: Trainer, callback) -> None:
    """Each process prints its own SSE counts (read locally, no collective call): under DDP, what shows that SSE
    swapped on every process, while the record keeps the sums."""
    if callback is None:
        return
    args = trainer.args
    counts = json.dumps(callback.counts, sort_keys=True)
    line = (
        f"[process {args.process_index} of {args.world_size}] SSE counts on this process, per role "
        f"[tokens seen, eligible, swapped]: {counts}\n"
    )
    # One write with its newline: `print` writes the text and the newline separately, and on an unbuffered stdout
    # shared by the processes another process's output can land between the two.
    sys.stdout.write(line)
    sys.stdout.flush()


def sse_settings(sse_args: SSEArguments, config: SSEConfig) -> dict[str, Any]:
    """The SSE a run trained with: whether it was on, and every SSEConfig field as `sse_<field>`."""
    return {"sse_enabled": sse_args.is_active(), **{PREFIX + k: v for k, v in config.to_dict().items()}}


def save_train_results(
    trainer: Trainer, train_result: TrainOutput, train_samples: int, sse_args: SSEArguments, sse_callback
) -> dict[str, Any]:
    """After `trainer.train()`: save the model and the trainer state, log the train metrics and save them with the
    SSE settings and the run's SSE counts (`train_results.json`, merged into all_results.json).

    The counts are the callback's end-of-training summary, already summed over the processes (`num_processes`
    says over how many); each process prints its own. The SSE record goes with the train metrics, so an
    evaluation-only run in the same folder leaves it as it is. The interval `sse/*` rates stay in log_history.
    Every process must reach it (`save_model` under DeepSpeed/FSDP gathers the weights).
    """
    metrics = {k: v for k, v in train_result.metrics.items() if not k.startswith("sse/")}
    metrics["train_samples"] = train_samples
    trainer.save_model()  # the model and its tokenizer
    trainer.log_metrics("train", metrics)
    print_process_counts(trainer, sse_callback)
    metrics.update(sse_settings(sse_args, sse_args.to_config()))
    metrics.update(sse_counts(train_result.metrics))
    metrics["num_processes"] = trainer.args.world_size
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    return metrics


def save_run_record(trainer: Trainer, record: dict[str, Any], started: float) -> dict[str, Any]:
    """Save what ran (task, model, seed...) and its wall time since `started` (a `time.perf_counter()`) as the
    `run` split: `run_results.json`, merged into all_results.json like every split. Returns the record saved."""
    record = {**record, "wall_time_s": time.perf_counter() - started}
    trainer.save_metrics("run", record)
    if trainer.is_world_process_zero():
        logger.info("Wrote %s", os.path.join(trainer.args.output_dir, RESULTS_NAME))
    return record
