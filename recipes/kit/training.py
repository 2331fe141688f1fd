"""The steps every recipe shares around `Trainer`: its SSE callback, training, and recording what a split scored."""

from __future__ import annotations

import time
from typing import Any

from transformers import Trainer

from recipes.kit.run_report import gather_sse_counts, write_all_results
from recipes.kit.sse_args import build_sse_callback, sse_settings, to_sse_config
from sse_hf import SSECallback


def sse_for_run(sse_args: Any, tokenizer) -> tuple[SSECallback | None, dict[str, Any]]:
    """The run's SSE callback (None when SSE is off) and its settings for all_results.json, from one config."""
    config = to_sse_config(sse_args)
    return build_sse_callback(sse_args, config, tokenizer=tokenizer), sse_settings(sse_args, config)


def train_and_save(trainer: Trainer, sse_callback: SSECallback | None, checkpoint, train_samples: int) -> dict[str, Any]:
    """Train (resuming from `checkpoint`), save model and state, record the train metrics and the SSE counts.

    The SSE hooks are removed even if training raises. The interval `sse/*` rates stay in log_history.
    """
    if sse_callback is not None:
        with sse_callback:
            train_result = trainer.train(resume_from_checkpoint=checkpoint)
    else:
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = {k: v for k, v in train_result.metrics.items() if not k.startswith("sse/")}
    metrics["train_samples"] = train_samples
    trainer.save_model()  # the model and its tokenizer
    record(trainer, "train", metrics)
    trainer.save_state()
    return {**metrics, **gather_sse_counts(sse_callback)}


def record(trainer: Trainer, split: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """Print and save one split's metrics (`<split>_results.json`); returns them."""
    trainer.log_metrics(split, metrics)
    trainer.save_metrics(split, metrics)
    return metrics


def finish(output_dir: str, results: dict[str, Any], started: float) -> dict[str, Any]:
    """Add the run's wall time (since `started`, a `time.perf_counter()`) and write all_results.json; returns it."""
    results["wall_time_s"] = time.perf_counter() - started
    write_all_results(output_dir, results)
    return results
