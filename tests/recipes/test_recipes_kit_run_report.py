"""recipes.kit.run_report and run_setup: one SSE config per run, the callback only when SSE swaps something, the
run's record saved through Trainer.save_metrics, and parsing that leaves the environment alone."""

import json
import os

import pytest
import torch
from transformers import Trainer, TrainingArguments

from recipes.kit.run_report import save_run_record, sse_counts, sse_settings
from recipes.kit.run_setup import parse_args, use_cpu_when_launched_without_accelerator
from sse_hf import SSEArguments, SSECallback
from tiny_models import tiny_bert


def _sse(*argv):
    """What run_glue and run_mlm do with the --sse_* options: one config, the callback and the record from it."""
    (args,) = parse_args([SSEArguments], list(argv))
    config = args.to_config()
    return SSECallback(config) if args.is_active() else None, sse_settings(args, config)


def test_the_callback_and_the_record_come_from_one_config():
    callback, record = _sse("--sse_p", "0.2", "--sse_p_schedule", "adaptive")
    assert isinstance(callback, SSECallback) and callback.config.p == 0.2 and callback.config.p_schedule == "adaptive"
    assert record["sse_enabled"] is True and record["sse_p"] == 0.2 and record["sse_p_schedule"] == "adaptive"


def test_no_callback_when_sse_is_off_or_swaps_nothing():
    for argv in (["--sse", "False"], ["--sse_p", "0"], ["--no_sse"]):
        callback, record = _sse(*argv)
        assert callback is None and record["sse_enabled"] is False, argv
    callback, record = _sse("--sse_p", "0", "--sse_label_p", "0.1")  # label SSE alone still swaps
    assert callback is not None and record["sse_enabled"] is True


def test_the_sse_counts_come_from_the_callbacks_summary_and_are_zero_without_it():
    """The record keeps the summary's global figures under run names; `sse/p` (the last effective p) never
    overwrites the `sse_p` setting."""
    table = "bert.embeddings.token_type_embeddings"
    summary = {
        "train_loss": 1.0,
        "sse/p": 0.0,
        "sse/swap_rate": 0.25,
        "sse/tokens_seen": 40,
        "sse/tokens_eligible": 20,
        "sse/tokens_swapped": 5,
        "sse/labels/p": 0.5,
        "sse/labels/swap_rate": 0.5,
        f"sse/{table}/swap_rate": 0.1,
    }
    counts = {"sse_tokens_seen": 40, "sse_tokens_eligible": 20, "sse_tokens_swapped": 5}
    rates = {"labels": 0.5, table: 0.1}
    assert sse_counts(summary) == {"sse_swap_rate": 0.25, **counts, "sse_swap_rate_by_role": rates}
    zeros = {"sse_tokens_seen": 0, "sse_tokens_eligible": 0, "sse_tokens_swapped": 0}
    assert sse_counts({"train_loss": 1.0}) == {"sse_swap_rate": 0.0, **zeros, "sse_swap_rate_by_role": {}}


def test_the_run_record_adds_the_wall_time_and_merges_into_all_results(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    trainer = Trainer(model=tiny_bert(), args=args)
    trainer.save_metrics("eval", {"eval_accuracy": 0.5})
    results = save_run_record(trainer, {"task": "local"}, started=0.0)
    assert results["wall_time_s"] > 0 and results["task"] == "local"
    assert json.loads((tmp_path / "run_results.json").read_text()) == results
    # Trainer's own mechanism: every split merged once into all_results.json
    assert json.loads((tmp_path / "all_results.json").read_text()) == {**results, "eval_accuracy": 0.5}


def test_parsing_the_arguments_leaves_the_environment_alone(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under accelerate launch / torchrun
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    before = dict(os.environ)
    parse_args([SSEArguments], ["--sse_p", "0.1"])
    assert dict(os.environ) == before


@pytest.mark.skipif(torch.accelerator.is_available(), reason="the CPU switch is for machines with no accelerator")
def test_a_launch_on_a_machine_with_no_accelerator_switches_accelerate_to_the_cpu(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert use_cpu_when_launched_without_accelerator() is False and "ACCELERATE_USE_CPU" not in os.environ
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert use_cpu_when_launched_without_accelerator() is True and os.environ["ACCELERATE_USE_CPU"] == "true"
