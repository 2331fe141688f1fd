"""SSECallback's logged rates under torch.distributed: every process's counts summed before logging (2 CPU
processes over gloo), as transformers' MoERouterHealthCallback all-reduces."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(__file__))  # tiny_models in the spawned processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _folder(parent: str, name: str) -> Path:
    folder = Path(parent) / name
    folder.mkdir()
    return folder


def _process(rank: int, port: int, out_dir: str) -> None:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from sse_hf import SSECallback
    from sse_hf.statistics import sum_across_processes
    from tiny_models import tiny_bert, tiny_tokenizer, word_ids

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        summed = sum_across_processes({"input": [10 * (rank + 1), 5 * (rank + 1), rank + 1], "labels": [rank, 0, 0]})
        torch.manual_seed(rank)
        args = TrainingArguments(output_dir=os.path.join(out_dir, f"run{rank}"), report_to=[], use_cpu=True)
        state, control = TrainerState(max_steps=4), TrainerControl()
        callback = SSECallback(p=0.5, tokenizer=tiny_tokenizer(_folder(out_dir, f"tokenizer{rank}")))
        model = tiny_bert().train()
        callback.on_train_begin(args, state, control, model=model)
        for _ in range(rank + 1):  # the processes see different numbers of tokens
            model(input_ids=word_ids())
        own = callback.handle.counts()["input"]
        step_logs = {"loss": 1.0}
        callback.on_log(args, state, control, logs=step_logs)
        summary = {"train_loss": 1.0}
        callback.on_log(args, state, control, logs=summary)
        callback.on_train_end(args, state, control)
        with open(os.path.join(out_dir, f"{rank}.json"), "w") as handle:
            json.dump(
                {
                    "summed": summed,
                    "own": own,
                    "step": step_logs,
                    "summary": summary,
                    "stats": callback.stats()["input"],
                },
                handle,
            )
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_logged_rates_sum_the_counts_of_every_process(tmp_path):
    mp.spawn(_process, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in (0, 1)]
    for result in results:
        assert result["summed"] == {"input": [30, 15, 3], "labels": [1, 0, 0]}
    eligible = sum(result["own"][1] for result in results)
    swapped = sum(result["own"][2] for result in results)
    assert results[0]["own"] != results[1]["own"] and eligible > results[0]["own"][1]
    for result in results:  # each process logs the global rate, not its own
        assert result["step"]["sse/swap_rate"] == pytest.approx(swapped / eligible)
        assert result["summary"]["sse/swap_rate"] == pytest.approx(swapped / eligible)
        assert [result["summary"][f"sse/tokens_{key}"] for key in ("eligible", "swapped")] == [eligible, swapped]
        assert result["summary"]["sse/tokens_seen"] == sum(other["own"][0] for other in results)
        assert "sse/tokens_seen" not in result["step"]
    for result in results:  # stats() stays this process's own (no collective call outside on_log)
        assert [result["stats"][key] for key in ("tokens_seen", "tokens_eligible", "tokens_swapped")] == result["own"]


def _resume(rank: int, port: int, out_dir: str) -> None:
    import warnings

    from transformers import TrainerControl, TrainerState, TrainingArguments

    from sse_hf import SSECallback
    from tiny_models import tiny_bert, tiny_tokenizer

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        args = TrainingArguments(output_dir=os.path.join(out_dir, f"run{rank}"), report_to=[], use_cpu=True)
        saved = {"args": {}, "attributes": {"counts": {"input": [40, 30, 3]}}}  # what the main process saved
        state = TrainerState(max_steps=4, global_step=2, stateful_callbacks={"SSECallback": saved})
        callback = SSECallback(p=0.5, tokenizer=tiny_tokenizer(_folder(out_dir, f"tokenizer{rank}")))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            callback.on_train_begin(args, state, TrainerControl(), model=tiny_bert().train())
        callback.on_train_end(args, state, TrainerControl())
        messages = [str(w.message) for w in caught if "main process's SSE counts" in str(w.message)]
        (Path(out_dir) / f"resume{rank}.json").write_text(json.dumps(messages))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_a_distributed_resume_says_the_restored_counts_are_the_main_process_s(tmp_path):
    mp.spawn(_resume, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        messages = json.loads((tmp_path / f"resume{rank}.json").read_text())
        assert len(messages) == 1 and "resuming with 2 processes" in messages[0]
