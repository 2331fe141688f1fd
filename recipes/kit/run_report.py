"""What a recipe records about its run, through `Trainer.save_metrics` (each split merged into all_results.json):
the train metrics with the SSE settings and the swap counts gathered from every process, and what ran."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from accelerate import PartialState
from accelerate.utils import gather_object
from transformers import Trainer
from transformers.trainer_utils import TrainOutput

from sse_hf import SSEArguments, SSEConfig
from sse_hf.arguments import PREFIX

logger = logging.getLogger(__name__)

RESULTS_NAME = "all_results.json"  # where Trainer.save_metrics merges every split


def local_sse_counts(callback) -> dict[str, Any]:
    """This process's SSE counts over all of training (resumed runs included); zeros when SSE was off."""
    seen, eligible, swapped = callback.totals if callback is not None else (0, 0, 0)
    return {
        "process_index": PartialState().process_index,
        "tokens_seen": int(seen),
        "tokens_eligible": int(eligible),
        "tokens_swapped": int(swapped),
        "swap_rate": swapped / eligible if eligible else 0.0,
    }


def gather_sse_counts(callback) -> dict[str, Any]:
    """Every process's counts (a collective call: all processes must reach it), and the overall realised rate.

    Each process also prints its own rate, so a distributed run shows that SSE swapped on every one.
    """
    state = PartialState()
    mine = local_sse_counts(callback)
    print(
        f"[process {state.process_index}/{state.num_processes}] SSE realised swap rate {mine['swap_rate']:.4f} "
        f"({mine['tokens_swapped']} of {mine['tokens_eligible']} eligible tokens)",
        flush=True,
    )
    per_process = sorted(gather_object([mine]), key=lambda counts: counts["process_index"])
    eligible = sum(counts["tokens_eligible"] for counts in per_process)
    swapped = sum(counts["tokens_swapped"] for counts in per_process)
    return {
        "sse_swap_rate": swapped / eligible if eligible else 0.0,
        "sse_tokens_seen": sum(counts["tokens_seen"] for counts in per_process),
        "sse_tokens_eligible": eligible,
        "sse_tokens_swapped": swapped,
        "sse_swap_rate_per_process": [counts["swap_rate"] for counts in per_process],
        "num_processes": state.num_processes,
        # per role (word pieces, labels, other tables) on the main process: label SSE's realised rate is here
        "sse_stats_main_process": callback.stats() if callback is not None else {},
    }


def sse_settings(sse_args: SSEArguments, config: SSEConfig) -> dict[str, Any]:
    """The SSE a run trained with: whether it was on, and every SSEConfig field as `sse_<field>`."""
    return {"sse_enabled": sse_args.is_active(), **{PREFIX + k: v for k, v in config.to_dict().items()}}


def save_train_results(
    trainer: Trainer, train_result: TrainOutput, train_samples: int, sse_args: SSEArguments, sse_callback
) -> dict[str, Any]:
    """After `trainer.train()`: save the model and the trainer state, log the train metrics and save them with the
    SSE settings and the swap counts of every process (`train_results.json`, merged into all_results.json).

    The SSE record goes with the train metrics, so an evaluation-only run in the same folder leaves it as it is.
    A collective call under DDP: every process must reach it. The interval `sse/*` rates stay in log_history.
    """
    metrics = {k: v for k, v in train_result.metrics.items() if not k.startswith("sse/")}
    metrics["train_samples"] = train_samples
    trainer.save_model()  # the model and its tokenizer
    trainer.log_metrics("train", metrics)
    metrics.update(sse_settings(sse_args, sse_args.to_config()))
    metrics.update(gather_sse_counts(sse_callback))
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
