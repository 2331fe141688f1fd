"""SSECallback under torch.distributed: every process's counts summed before logging and before each checkpoint
(2 CPU processes over gloo), as transformers' MoERouterHealthCallback all-reduces."""

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

pytestmark = pytest.mark.slow  # each test spawns 2 processes (about 15 s each to import torch and transformers here)


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
    from tiny_models import tiny_bert, tiny_tokenizer, word_ids

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(rank)
        args = TrainingArguments(output_dir=os.path.join(out_dir, f"run{rank}"), report_to=[], use_cpu=True)
        tokenizer = tiny_tokenizer(_folder(out_dir, f"tokenizer{rank}"))
        # the run before the checkpoint: steps 1-2, the processes seeing different numbers of tokens
        state = TrainerState(max_steps=4)
        callback = SSECallback(p=0.5, tokenizer=tokenizer)
        model = tiny_bert().train()
        callback.on_train_begin(args, state, TrainerControl(), model=model)
        for _ in range(rank + 1):
            model(input_ids=word_ids())
        state.global_step = 1
        callback.on_step_end(args, state, TrainerControl())  # no save follows: nothing summed
        unsaved, own_at_step_1 = callback.state()["attributes"]["counts"]["input"], callback.handle.counts()["input"]
        for _ in range(rank + 1):
            model(input_ids=word_ids())
        state.global_step = 2
        callback.on_step_end(args, state, TrainerControl(should_save=True))  # DefaultFlowCallback decided a save
        checkpoint = callback.state()  # what Trainer writes into trainer_state.json on the main process
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            callback.on_save(args, state, TrainerControl())
        before = callback.handle.counts()["input"]
        callback.on_train_end(args, state, TrainerControl())
        # a save asked for after SSECallback's on_step_end: the sums at step 2 plus this process's own since
        late = SSECallback(p=0.5, tokenizer=tokenizer)
        late_state = TrainerState(max_steps=4, is_world_process_zero=rank == 0)  # as Trainer sets it
        late.on_train_begin(args, late_state, TrainerControl(), model=model)
        model(input_ids=word_ids())
        late_state.global_step = 1
        late.on_step_end(args, late_state, TrainerControl(should_save=True))
        late_at_step_1 = late.handle.counts()["input"]
        model(input_ids=word_ids())
        late_own = late.handle.counts()["input"]
        late_summed = late.state()["attributes"]["counts"]["input"]
        late_state.global_step = 2
        with warnings.catch_warnings(record=True) as late_caught:
            warnings.simplefilter("always")
            late.on_save(args, late_state, TrainerControl())
        late.on_train_end(args, late_state, TrainerControl())
        (Path(out_dir) / f"before{rank}.json").write_text(
            json.dumps(
                {
                    "unsaved": unsaved,
                    "own_at_step_1": own_at_step_1,
                    "before": before,
                    "checkpoint": checkpoint,
                    "warned": [str(w.message) for w in caught if "sse_hf" in str(w.message)],
                    "late_at_step_1": late_at_step_1,
                    "late_own": late_own,
                    "late_summed": late_summed,
                    "late_warned": [str(w.message) for w in late_caught if "sse_hf" in str(w.message)],
                }
            )
        )
        dist.barrier()
        saved = json.loads((Path(out_dir) / "before0.json").read_text())["checkpoint"]  # the main process's file
        # every process resumes from the main process's checkpoint and trains steps 3-4
        state = TrainerState(max_steps=4, global_step=2, stateful_callbacks={"SSECallback": saved})
        resumed, model = SSECallback(p=0.5, tokenizer=tokenizer), tiny_bert().train()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            resumed.on_train_begin(args, state, TrainerControl(), model=model)
        for _ in range(2 * rank + 1):
            model(input_ids=word_ids())
        after = resumed.handle.counts()["input"]
        summary = {"train_loss": 1.0}
        resumed.on_log(args, state, TrainerControl(), logs=summary)
        resumed.on_train_end(args, state, TrainerControl())
        (Path(out_dir) / f"after{rank}.json").write_text(
            json.dumps({"after": after, "summary": summary, "warned": [str(w.message) for w in caught]})
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_a_distributed_resume_restores_the_counts_of_every_process(tmp_path):
    """Trainer saves the callback state from the main process alone: the counts it saves are already summed over
    the processes (where DefaultFlowCallback decided the save), so a resume's end-of-training totals are exact."""
    mp.spawn(_resume, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    before = [json.loads((tmp_path / f"before{rank}.json").read_text()) for rank in (0, 1)]
    after = [json.loads((tmp_path / f"after{rank}.json").read_text()) for rank in (0, 1)]
    assert before[0]["before"] != before[1]["before"]
    total_before = [sum(values) for values in zip(*(result["before"] for result in before))]
    for result in before:
        assert result["unsaved"] == result["own_at_step_1"]  # no save followed step 1: this process's own counts
        assert result["checkpoint"]["attributes"]["counts"]["input"] == total_before  # every process's, summed
        assert result["warned"] == []
    # a save asked for after SSECallback's on_step_end: the sums at step 1 plus this process's own since, and a warning
    summed_at_step_1 = [sum(values) for values in zip(*(result["late_at_step_1"] for result in before))]
    for result in before:
        since = [own - then for own, then in zip(result["late_own"], result["late_at_step_1"])]
        assert since != [0, 0, 0]
        assert result["late_summed"] == [a + b for a, b in zip(summed_at_step_1, since)]
    late_warned = before[0]["late_warned"]
    assert len(late_warned) == 1 and "up to step 1 and the main process's own since" in late_warned[0]
    assert before[1]["late_warned"] == []  # the main process warns
    total = [sum(values) for values in zip(total_before, *(result["after"] for result in after))]
    assert after[0]["after"] != after[1]["after"]
    for result in after:
        assert result["warned"] == []
        summary = result["summary"]
        assert [summary[f"sse/tokens_{key}"] for key in ("seen", "eligible", "swapped")] == total
        assert summary["sse/swap_rate"] == pytest.approx(total[2] / total[1])


def _train(rank: int, port: int, out_dir: str, strategy: str) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    from datasets import Dataset
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from sse_hf import SSECallback
    from tiny_models import tiny_bert, tiny_tokenizer, word_ids

    ids = word_ids(rows=24)
    data = Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": (ids != 0).long().tolist(), "labels": (ids[:, 1] % 2).tolist()}
    )
    own = {}

    class Probe(TrainerCallback):  # each process's own counts at each save
        def on_save(self, args, state, control, **kwargs):
            own[state.global_step] = callback.handle.counts()["input"]

    callback = SSECallback(p=0.5, tokenizer=tiny_tokenizer(_folder(out_dir, f"tokenizer{rank}")))
    extra = {"eval_strategy": "steps", "eval_steps": 1, "metric_for_best_model": "loss"} if strategy == "best" else {}
    args = TrainingArguments(
        output_dir=os.path.join(out_dir, "run"),
        max_steps=5 if strategy != "epoch" else -1,
        num_train_epochs=2,
        per_device_train_batch_size=4,
        save_steps=2,
        save_strategy=strategy,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        seed=7,
        disable_tqdm=True,
        **extra,
    )
    trainer = Trainer(
        model=tiny_bert(), args=args, train_dataset=data, eval_dataset=data, callbacks=[callback, Probe()]
    )
    trainer.train()
    (Path(out_dir) / f"own{rank}.json").write_text(json.dumps(own))
    # Tearing down DDP's gloo group at exit can abort ("terminate called without an active exception") or deadlock
    # (the Reducer's destructor joins a gloo thread that waits for the GIL): both ranks meet, then leave at once.
    dist.barrier()
    os._exit(0)


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
@pytest.mark.parametrize("strategy", ["steps", "epoch", "best"])
def test_trainer_checkpoints_hold_the_counts_of_every_process(tmp_path, strategy):
    """A real 2-process Trainer: every checkpoint (step saves and the final one, epoch saves, the best ones) holds the
    counts of both processes at that step, though Trainer writes it from the main process alone."""
    mp.spawn(_train, args=(_free_port(), str(tmp_path), strategy), nprocs=2, join=True)
    own = [json.loads((tmp_path / f"own{rank}.json").read_text()) for rank in (0, 1)]
    assert own[0] and own[0].keys() == own[1].keys()
    for step in own[0]:
        saved = json.loads((tmp_path / "run" / f"checkpoint-{step}" / "trainer_state.json").read_text())
        counts = saved["stateful_callbacks"]["SSECallback"]["attributes"]["counts"]["input"]
        assert own[1][step][0] > 0  # what the main process's own counts would miss
        assert counts == [a + b for a, b in zip(own[0][step], own[1][step])]


def _knn_on_sharded_weights(rank: int, port: int, out_dir: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor

    from sse_hf import SSEConfig, patch_model
    from tiny_models import record_lookups, tiny_bert, tiny_tokenizer, word_ids

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        tokenizer = tiny_tokenizer(_folder(out_dir, f"tokenizer{rank}"))
        config = SSEConfig(p=1.0, graph="knn", graph_k=3)
        torch.manual_seed(0)  # the same weights on both processes, and in the unsharded copy
        model = tiny_bert().train()
        unsharded = patch_model(model, config, tokenizer=tokenizer)
        expected = unsharded.graph.to_dict()
        unsharded.remove()
        mesh = init_device_mesh("cpu", (2,))
        for layer in model.bert.encoder.layer:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)  # the embedding weight is now a DTensor: each process holds half its rows
        weight = model.get_input_embeddings().weight
        handle = patch_model(model, config, tokenizer=tokenizer)
        still_sharded = isinstance(model.get_input_embeddings().weight, DTensor)  # gathered for the graph alone
        records, _ = record_lookups(model.get_input_embeddings())
        ids = word_ids()
        model(input_ids=ids)
        swapped = records[-1] != ids
        neighbours = handle.graph.to_dict()
        allowed = all(int(new) in neighbours[int(old)] for old, new in zip(ids[swapped], records[-1][swapped]))
        (Path(out_dir) / f"{rank}.json").write_text(
            json.dumps(
                {
                    "sharded": isinstance(weight, DTensor) and tuple(weight.to_local().shape) == (32, 16),
                    "still_sharded": still_sharded,
                    "equal": {str(k): v for k, v in neighbours.items()} == {str(k): v for k, v in expected.items()},
                    "edges": handle.graph.num_edges,
                    "swapped": int(swapped.sum()),
                    "only_to_neighbours": allowed,
                }
            )
        )
        handle.remove()
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_knn_graph_of_fsdp2_sharded_embeddings_equals_the_unsharded_models(tmp_path):
    """FSDP2 shards the embedding weight (a DTensor, half the rows on each process): graph="knn" gathers it, so each
    process builds the graph of the whole table, the same as the unsharded model's, and swaps along it."""
    mp.spawn(_knn_on_sharded_weights, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        result = json.loads((tmp_path / f"{rank}.json").read_text())
        assert result["sharded"] and result["still_sharded"], result
        assert result["equal"] and result["edges"] > 0, result
        assert result["swapped"] > 0 and result["only_to_neighbours"], result
