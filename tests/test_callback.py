"""SSECallback inside a real Trainer: patch, log, save, resume, and leave nothing behind."""

import copy
import inspect
import json
import os
import warnings

import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from sse_hf import SSECallback, SSEConfig, SSEGraph, get_handle
from tiny_models import record_lookups, tiny_bert, word_ids


def _dataset(rows=32, seed=0):
    ids = word_ids(rows=rows, seed=seed)
    return Dataset.from_dict(
        {
            "input_ids": ids.tolist(),
            "attention_mask": (ids != 0).long().tolist(),
            "labels": (ids[:, 1] % 2).tolist(),
        }
    )


def _args(tmp_path, **overrides):
    settings = dict(
        output_dir=str(tmp_path),
        max_steps=4,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        logging_steps=1,
        save_steps=2,
        learning_rate=1e-2,
        report_to=[],
        use_cpu=True,
        seed=7,
        disable_tqdm=True,
    )
    settings.update(overrides)
    return TrainingArguments(**settings)


class LogRecorder(TrainerCallback):
    """Stands in for a reporting integration: it sees `logs` in the order trackers do."""

    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


def _hook_count(model):
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())


def test_train_patches_logs_and_leaves_no_hook(tokenizer, tmp_path):
    model = tiny_bert()
    recorder = LogRecorder()
    callback = SSECallback(SSEConfig(p=0.3), tokenizer=tokenizer)
    trainer = Trainer(
        model=model,
        args=_args(tmp_path, report_to=["tensorboard"]),
        train_dataset=_dataset(),
        callbacks=[recorder, callback],  # the recorder is registered first, like Trainer's own reporters
    )
    trainer.train()
    names = [type(cb).__name__ for cb in trainer.callback_handler.callbacks]
    # right after DefaultFlowCallback (it sees the save decision) and before every reporter (they see SSE's logs)
    assert names[:3] == ["DefaultFlowCallback", "SSECallback", "TensorBoardCallback"]
    train_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(train_logs) == 4
    assert all(entry["sse/p"] == 0.3 for entry in train_logs)
    assert all(0.1 < entry["sse/swap_rate"] < 0.55 for entry in train_logs)
    recorded = [entry for entry in recorder.logs if "loss" in entry]
    assert [entry["sse/swap_rate"] for entry in recorded] == [entry["sse/swap_rate"] for entry in train_logs]
    assert abs(callback.swap_rate - 0.3) < 0.08
    assert get_handle(model) is None and _hook_count(model) == 0
    assert SSEConfig.from_pretrained(tmp_path) == SSEConfig(p=0.3)
    for step in (2, 4):
        assert SSEConfig.from_pretrained(tmp_path / f"checkpoint-{step}") == SSEConfig(p=0.3)
    # the real TensorBoard reporter received the SSE scalars
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    event_dirs = [path.parent for path in tmp_path.rglob("events.out.tfevents.*")]
    assert event_dirs
    accumulator = EventAccumulator(str(event_dirs[0]))
    accumulator.Reload()
    assert {"train/sse/swap_rate", "train/sse/p"} <= set(accumulator.Tags()["scalars"])
    scalars = accumulator.Scalars("train/sse/swap_rate")
    assert [event.value for event in scalars[:4]] == pytest.approx([entry["sse/swap_rate"] for entry in train_logs])
    summary = trainer.state.log_history[-1]
    assert "train_loss" in summary and summary["sse/swap_rate"] == pytest.approx(callback.swap_rate)
    assert scalars[-1].value == pytest.approx(callback.swap_rate)


def test_evaluation_during_training_sees_original_ids(tokenizer, tmp_path):
    model = tiny_bert()
    eval_set = _dataset(rows=8, seed=3)
    records = []
    model.get_input_embeddings().register_forward_hook(
        lambda mod, args, out: records.append((mod.training, args[0].clone()))
    )
    trainer = Trainer(
        model=model,
        args=_args(tmp_path, eval_strategy="steps", eval_steps=2, save_strategy="no"),
        train_dataset=_dataset(),
        eval_dataset=eval_set,
        callbacks=[SSECallback(p=1.0, tokenizer=tokenizer)],
    )
    trainer.train()
    eval_batches = [ids for training, ids in records if not training]
    train_batches = [ids for training, ids in records if training]
    expected = torch.tensor(eval_set["input_ids"])
    assert len(eval_batches) == 2 and all(torch.equal(ids, expected) for ids in eval_batches)
    assert all((ids != 0).sum() > 0 for ids in train_batches)
    original_rows = {tuple(row) for row in _dataset()["input_ids"]}
    assert all(tuple(row) not in original_rows for ids in train_batches for row in ids.tolist())
    predictions = trainer.predict(eval_set)
    assert torch.equal(records[-1][1], expected) and predictions.predictions.shape == (8, 2)


def test_resume_from_checkpoint_continues_exactly(tokenizer, tmp_path):
    def run(output_dir, max_steps, resume=None):
        torch.manual_seed(0)
        model = tiny_bert()
        callback = SSECallback(p=0.3, tokenizer=tokenizer)
        trainer = Trainer(
            model=model,
            args=_args(output_dir, max_steps=max_steps, lr_scheduler_type="constant"),
            train_dataset=_dataset(),
            callbacks=[callback],
        )
        trainer.train(resume_from_checkpoint=resume)
        return model, callback, trainer

    straight, straight_cb, _ = run(tmp_path / "straight", 4)
    run(tmp_path / "interrupted", 2)
    resumed, resumed_cb, trainer = run(
        tmp_path / "interrupted", 4, resume=str(tmp_path / "interrupted" / "checkpoint-2")
    )
    for key, value in straight.state_dict().items():
        assert torch.allclose(value, resumed.state_dict()[key], atol=1e-6), key
    assert resumed_cb.totals == straight_cb.totals and resumed_cb.totals[0] > 0
    state = json.loads((tmp_path / "interrupted" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["stateful_callbacks"]["SSECallback"]["attributes"]["counts"]["input"] == straight_cb.totals


def test_context_manager_removes_hooks_when_training_raises(tokenizer, tmp_path):
    class Boom(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            raise RuntimeError("boom")

    model = tiny_bert()
    callback = SSECallback(p=0.2, tokenizer=tokenizer)
    trainer = Trainer(model=model, args=_args(tmp_path), train_dataset=_dataset(), callbacks=[callback, Boom()])
    with pytest.raises(RuntimeError, match="boom"):
        with callback:
            trainer.train()
    assert get_handle(model) is None and _hook_count(model) == 0


def test_train_again_after_a_failed_run_replaces_the_callbacks_own_hooks(tokenizer, tmp_path):
    class BoomOnce(TrainerCallback):
        fired = False

        def on_step_end(self, args, state, control, **kwargs):
            if not self.fired:
                self.fired = True
                raise RuntimeError("boom")

    model = tiny_bert()
    callback = SSECallback(p=0.2, tokenizer=tokenizer)
    trainer = Trainer(
        model=model,
        args=_args(tmp_path, save_strategy="no"),
        train_dataset=_dataset(),
        callbacks=[callback, BoomOnce()],
    )
    with pytest.raises(RuntimeError):
        trainer.train()
    assert get_handle(model) is callback.handle
    trainer.train()
    assert get_handle(model) is None and _hook_count(model) == 0


def test_processing_class_is_used_as_tokenizer(tokenizer, tmp_path):
    model = tiny_bert()
    callback = SSECallback(p=0.2)
    seen = {}

    class Spy(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            seen["vocabulary"] = callback.handle.vocabulary

    trainer = Trainer(
        model=model,
        args=_args(tmp_path, max_steps=1, save_strategy="no"),
        train_dataset=_dataset(),
        processing_class=tokenizer,
        callbacks=[callback, Spy()],
    )
    trainer.train()
    assert seen["vocabulary"].size == len(tokenizer)


def test_callback_bad_arguments():
    with pytest.raises(ValueError, match=r"SSEConfig\.p"):
        SSECallback(p=3)
    with pytest.raises(TypeError, match="SSEConfig"):
        SSECallback(config=0.1)
    assert SSECallback({"p": 0.05}).config == SSEConfig(p=0.05)


def test_swaps_reach_the_lookup_during_trainer_steps(tokenizer, tmp_path):
    model = tiny_bert()
    records, _ = record_lookups(model.get_input_embeddings())
    Trainer(
        model=model,
        args=_args(tmp_path, max_steps=2, save_strategy="no"),
        train_dataset=_dataset(),
        callbacks=[SSECallback(p=0.5, tokenizer=tokenizer)],
    ).train()
    originals = {tuple(row) for row in _dataset()["input_ids"]}
    assert all(tuple(row) not in originals for batch in records for row in batch.tolist())


def test_label_and_table_rates_are_logged_and_kept_after_training(tokenizer, tmp_path):
    model = tiny_bert()
    callback = SSECallback(SSEConfig(p=0.1, label_p=0.5, table_p={"token_type_embeddings": 0.5}), tokenizer=tokenizer)
    trainer = Trainer(
        model=model, args=_args(tmp_path, save_strategy="no"), train_dataset=_dataset(), callbacks=[callback]
    )
    trainer.train()
    table = "bert.embeddings.token_type_embeddings"
    step_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert all(entry["sse/labels/p"] == 0.5 and f"sse/{table}/swap_rate" in entry for entry in step_logs)
    stats = callback.stats()
    assert set(stats) == {"input", "labels", table}
    assert stats["labels"]["tokens_eligible"] == 16 and 0 < stats["labels"]["tokens_swapped"] < 16
    assert 0.2 < stats[table]["swap_rate"] < 0.8 and stats["input"]["tokens_seen"] == callback.totals[0]
    summary = trainer.state.log_history[-1]  # the end-of-training summary: rates over all of training, per role
    assert "train_loss" in summary and summary["sse/swap_rate"] == callback.swap_rate
    assert summary["sse/labels/swap_rate"] == stats["labels"]["swap_rate"] > 0
    assert summary[f"sse/{table}/swap_rate"] == stats[table]["swap_rate"] > 0


def test_the_summary_gives_the_inputs_totals_in_what_train_returns(tokenizer, tmp_path):
    """The end-of-training summary (the dict `trainer.train()` returns as `metrics`) carries the inputs' counts over
    all training, summed over the processes: in one process, the callback's own totals. Label SSE stays apart."""
    callback = SSECallback(SSEConfig(p=0.3, label_p=0.5), tokenizer=tokenizer)
    trainer = Trainer(
        model=tiny_bert(), args=_args(tmp_path, save_strategy="no"), train_dataset=_dataset(), callbacks=[callback]
    )
    metrics = trainer.train().metrics
    seen, eligible, swapped = callback.totals
    stats = callback.stats()
    assert [metrics[f"sse/tokens_{key}"] for key in ("seen", "eligible", "swapped")] == [seen, eligible, swapped]
    assert seen == stats["input"]["tokens_seen"] and 0 < swapped < eligible <= seen
    assert metrics["sse/swap_rate"] == swapped / eligible
    assert metrics["sse/labels/swap_rate"] == stats["labels"]["swap_rate"] and stats["labels"]["tokens_seen"] == 16
    assert trainer.state.log_history[-1]["sse/tokens_eligible"] == eligible
    step_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert step_logs and not any("sse/tokens_seen" in entry for entry in step_logs)  # the counts: summary only


@pytest.mark.parametrize("seed", [None, 123])
def test_resume_after_sigkill_matches_the_uninterrupted_run(tmp_path, seed):
    import subprocess
    import sys
    from pathlib import Path

    import resume_run

    straight_model, straight_cb, straight = resume_run.train(str(tmp_path / "straight"), seed)
    out = tmp_path / "killed"
    script = Path(resume_run.__file__)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(script), str(out), str(seed).lower(), str(resume_run.KILL_AT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr[-3000:]  # killed by SIGKILL at step 13, after checkpoint-8
    assert (out / "checkpoint-8").is_dir() and not (out / "checkpoint-16").exists()
    resumed_model, resumed_cb, resumed = resume_run.train(str(out), seed, resume=True)

    assert resumed_cb.stats() == straight_cb.stats() and resumed_cb.totals[2] > 0

    def rates(trainer):
        return {
            e["step"]: (e["sse/p"], e["sse/swap_rate"], e["sse/labels/swap_rate"])
            for e in trainer.state.log_history
            if "loss" in e
        }

    after = {step: value for step, value in rates(straight).items() if step > 8}
    assert {step: value for step, value in rates(resumed).items() if step > 8} == after and len(after) == 16
    for key, value in straight_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key  # bit-identical


@pytest.mark.parametrize(
    "counts",
    ["abc", {"input": "12"}, {"input": [1, 2]}, {"input": [5, -1, 0]}, {"input": [1, 2, 3]}, {"input": [4.0, 2, 1]}],
)
def test_corrupted_callback_state_in_a_checkpoint_is_a_clear_error(tokenizer, tmp_path, counts):
    def trainer(max_steps):
        return Trainer(
            model=tiny_bert(),
            args=_args(tmp_path, max_steps=max_steps, save_steps=2),
            train_dataset=_dataset(),
            callbacks=[SSECallback(p=0.3, tokenizer=tokenizer)],
        )

    trainer(2).train()
    state_file = tmp_path / "checkpoint-2" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["stateful_callbacks"]["SSECallback"]["attributes"]["counts"] = counts
    state_file.write_text(json.dumps(state))
    resumed = trainer(4)
    with pytest.raises(ValueError, match=r"trainer_state\.json holds a corrupted SSECallback state.*counts"):
        resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    assert json.loads(state_file.read_text()) == state  # nothing the user had is changed
    assert resumed.state.global_step == 2 and not (tmp_path / "checkpoint-4").exists()


def test_stats_is_a_method_on_the_callback_as_on_the_handle(tokenizer, tmp_path):
    callback = SSECallback(p=0.3, tokenizer=tokenizer)
    Trainer(
        model=tiny_bert(), args=_args(tmp_path, save_strategy="no"), train_dataset=_dataset(), callbacks=[callback]
    ).train()
    stats = callback.stats()
    assert type(stats) is dict and stats["input"]["tokens_seen"] == callback.totals[0] > 0
    assert inspect.ismethod(callback.stats) and stats == callback.stats()  # a plain method: no dict-like shim


def test_transformers_still_calls_reporters_first_and_copies_logs_before_on_log(tmp_path):
    """The transformers behaviours that the workaround in sse_hf/trainer_internals.py exists for (`running_trainer`,
    `_move_to_front`, the log_history update in `on_log`). If this fails, transformers changed its event order:
    revisit the workaround (it may be deletable)."""
    seen = []

    class Probe(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            seen.append((state.log_history[-1] is not logs, dict(state.log_history[-1]), dict(logs)))

    probe = Probe()
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, save_strategy="no", report_to=["tensorboard"]),
        train_dataset=_dataset(),
        callbacks=[probe],
    )
    names = [type(cb).__name__ for cb in trainer.callback_handler.callbacks]
    assert names.index("TensorBoardCallback") < names.index("Probe")  # reporters run before the user's callbacks
    assert names[0] == "DefaultFlowCallback"  # it decides the saves before any other callback's on_step_end
    trainer.train()
    copied, history, logs = seen[0]
    assert copied and history == {**logs, "step": history["step"]}  # log_history holds a copy made before on_log


def test_logged_swap_rate_is_the_rate_since_the_previous_log_and_follows_the_schedule(tokenizer, tmp_path):
    """Checked against the ids the embedding actually received, counted by the test itself."""
    steps = []

    class Spy(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            embedding = model.get_input_embeddings()
            embedding.register_forward_pre_hook(lambda m, a: steps.append([a[0].clone()]), prepend=True)  # before SSE
            embedding.register_forward_hook(lambda m, a, out: steps[-1].append(a[0].clone()))  # after SSE

    callback = SSECallback(SSEConfig(p=0.8, p_schedule="linear_decay", seed=3), tokenizer=tokenizer)
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, max_steps=8, logging_steps=2, save_strategy="no"),
        train_dataset=_dataset(),
        callbacks=[callback, Spy()],
    )
    trainer.train()
    measured = []
    for first in range(0, 8, 2):
        interval = steps[first : first + 2]
        eligible = sum(int(((before >= 8) & (before < 48)).sum()) for before, _ in interval)
        swapped = sum(int((before != after).sum()) for before, after in interval)
        measured.append(swapped / eligible)
    logged = [entry["sse/swap_rate"] for entry in trainer.state.log_history if "loss" in entry]
    assert logged == pytest.approx(measured, abs=1e-12)
    assert measured == sorted(measured, reverse=True) and measured[-1] < 0.3 < 0.6 < measured[0]
    assert trainer.state.log_history[-1]["sse/swap_rate"] == pytest.approx(callback.swap_rate)


# ----- issue 17: Trainer re-entry paths, config checks and warnings -------------------------------------------------
def test_restore_callback_states_from_checkpoint_is_refused_with_a_clear_error(tokenizer, tmp_path):
    """Trainer would replace the user's SSECallback by one rebuilt from JSON, without its tokenizer."""

    def trainer(max_steps, **extra):
        return Trainer(
            model=tiny_bert(),
            args=_args(tmp_path, max_steps=max_steps, save_steps=2, **extra),
            train_dataset=_dataset(),
            callbacks=[SSECallback(p=0.3, tokenizer=tokenizer)],
        )

    trainer(2, restore_callback_states_from_checkpoint=True).train()  # fine when nothing is restored
    state_file = tmp_path / "checkpoint-2" / "trainer_state.json"
    before = state_file.read_text()
    resumed = trainer(4, restore_callback_states_from_checkpoint=True)
    with pytest.raises(ValueError, match="restore_callback_states_from_checkpoint.*SSECallback restores its own"):
        resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    assert state_file.read_text() == before and not (tmp_path / "checkpoint-4").exists()
    assert get_handle(resumed.model) is None


def test_state_attributes_are_real_attributes_restored_by_from_state(tokenizer, tmp_path):
    """transformers' ExportableState contract: from_state(state()) gives back the same state."""
    callback = SSECallback(SSEConfig(p=0.3, p_schedule="adaptive"), tokenizer=tokenizer)
    Trainer(
        model=tiny_bert(), args=_args(tmp_path, save_strategy="no"), train_dataset=_dataset(), callbacks=[callback]
    ).train()
    state = callback.state()
    assert set(state["attributes"]) <= set(dir(callback))
    restored = SSECallback.from_state(json.loads(json.dumps(state)))
    assert restored.state() == state and restored.totals == callback.totals and restored.totals[0] > 0


def test_two_sse_callbacks_in_one_trainer_is_a_clear_error(tokenizer, tmp_path):
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, save_strategy="no"),
        train_dataset=_dataset(),
        callbacks=[SSECallback(p=0.1, tokenizer=tokenizer), SSECallback(p=0.2, tokenizer=tokenizer)],
    )
    with pytest.raises(ValueError, match="one SSECallback per Trainer"):
        trainer.train()
    assert get_handle(trainer.model) is None


def test_resuming_under_a_different_sse_config_warns_naming_the_fields(tokenizer, tmp_path):
    def trainer(max_steps, **sse):
        return Trainer(
            model=tiny_bert(),
            args=_args(tmp_path, max_steps=max_steps, save_steps=2),
            train_dataset=_dataset(),
            callbacks=[SSECallback(tokenizer=tokenizer, **sse)],
        )

    trainer(2, p=0.5).train()
    with pytest.warns(UserWarning, match=r"different SSE settings.*p: 0\.5 in the checkpoint, 0\.05 now.*seed"):
        trainer(4, p=0.05, seed=3).train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        trainer(6, p=0.05, seed=3).train(resume_from_checkpoint=str(tmp_path / "checkpoint-4"))


@pytest.mark.parametrize("logging", [{"logging_strategy": "no"}, {"logging_steps": 10}])
def test_adaptive_schedule_without_step_logs_warns_at_train_begin(tokenizer, tmp_path, logging):
    callback = SSECallback(SSEConfig(p=0.3, p_schedule="adaptive"), tokenizer=tokenizer)
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, save_strategy="no", **logging),
        train_dataset=_dataset(),
        callbacks=[callback],
    )
    with pytest.warns(UserWarning, match="p_schedule='adaptive'.*no training loss is logged.*logging_steps"):
        trainer.train()
    assert callback.totals[2] == 0


@pytest.mark.parametrize("option", [{"label_smoothing_factor": 0.1}, "compute_loss_func"])
def test_label_p_where_trainer_takes_the_labels_away_is_a_clear_error(tokenizer, tmp_path, option):
    extra = {}
    if option == "compute_loss_func":

        def loss(outputs, labels, num_items_in_batch=None):
            return torch.nn.functional.cross_entropy(outputs.logits, labels)

        extra["compute_loss_func"] = loss
        option = {}
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, save_strategy="no", **option),
        train_dataset=_dataset(),
        callbacks=[SSECallback(p=0.1, label_p=0.5, tokenizer=tokenizer)],
        **extra,
    )
    with pytest.raises(ValueError, match="label_p.*label_smoothing_factor.*compute_loss_func"):
        trainer.train()
    assert get_handle(trainer.model) is None


def test_a_multimodal_processor_gives_its_tokenizer(tokenizer, tmp_path):
    from transformers import CLIPImageProcessor, LlavaProcessor

    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    processor = LlavaProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer, patch_size=14)
    seen = {}

    class Spy(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            seen["vocabulary"] = callback.handle.vocabulary

    callback = SSECallback(p=0.2)
    Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, max_steps=1, save_strategy="no"),
        train_dataset=_dataset(),
        processing_class=processor,
        callbacks=[callback, Spy()],
    ).train()
    vocabulary = seen["vocabulary"]
    assert vocabulary.size == len(tokenizer) == 49 and 48 in vocabulary.protected
    assert max(vocabulary.candidates) < 48


def test_a_tokenizer_path_string_is_a_clear_error(tokenizer, tmp_path):
    with pytest.raises(TypeError, match=r"SSECallback\(tokenizer=\).*AutoTokenizer\.from_pretrained"):
        SSECallback(p=0.1, tokenizer=str(tmp_path))


def test_knn_graph_is_kept_with_the_checkpoint_so_a_resume_is_exact(tokenizer, tmp_path):
    def run(output_dir, max_steps, resume=None):
        torch.manual_seed(0)
        model = tiny_bert()
        callback = SSECallback(p=0.5, graph="knn", graph_k=3, seed=1, tokenizer=tokenizer)
        graphs = []

        class Spy(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                graphs.append(callback.handle._lookups[0].sampler.graph)

        trainer = Trainer(
            model=model,
            args=_args(output_dir, max_steps=max_steps, lr_scheduler_type="constant", learning_rate=0.2),
            train_dataset=_dataset(),
            callbacks=[callback, Spy()],
        )
        trainer.train(resume_from_checkpoint=resume)
        return model, callback, graphs[-1]

    straight, straight_cb, straight_graph = run(tmp_path / "straight", 4)
    run(tmp_path / "interrupted", 2)
    assert (tmp_path / "interrupted" / "checkpoint-2" / "sse_graph.safetensors").is_file()
    checkpoint = str(tmp_path / "interrupted" / "checkpoint-2")
    resumed, resumed_cb, resumed_graph = run(tmp_path / "interrupted", 4, resume=checkpoint)
    assert torch.equal(resumed_graph.neighbors, straight_graph.neighbors)
    assert torch.equal(resumed_graph.cumulative_weights, straight_graph.cumulative_weights)
    for key, value in straight.state_dict().items():
        assert torch.allclose(value, resumed.state_dict()[key], atol=1e-6), key
    assert resumed_cb.totals == straight_cb.totals


def test_tokens_seen_while_p_is_zero_count_so_rates_are_over_all_training_tokens(tokenizer, tmp_path):
    callback = SSECallback(SSEConfig(p=0.5, p_schedule="linear_warmup", p_warmup_ratio=0.5), tokenizer=tokenizer)
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, save_strategy="no"),
        train_dataset=_dataset(rows=16),
        callbacks=[callback],
    )
    trainer.train()
    ids = word_ids(rows=16)
    seen, eligible, swapped = callback.totals
    assert seen == 4 * 4 * ids.shape[1]  # 4 steps of 4 rows, step 0 at p = 0 included
    assert eligible == int(((ids >= 8) & (ids < 48)).sum())
    assert 0 < swapped and callback.swap_rate == swapped / eligible
    first = trainer.state.log_history[0]
    assert first["sse/p"] == 0.0 and first["sse/swap_rate"] == 0.0


def test_auto_find_batch_size_retry_counts_only_the_run_that_trains(tokenizer, tmp_path):
    """Trainer retries train with half the batch after an out-of-memory error, calling on_train_begin again."""

    class OutOfMemoryOnce(TrainerCallback):
        raised = False

        def on_step_end(self, args, state, control, **kwargs):
            if not self.raised:
                self.raised = True
                raise RuntimeError("DefaultCPUAllocator: can't allocate memory")  # what a CPU out-of-memory says

    callback = SSECallback(p=0.3, tokenizer=tokenizer)
    model = tiny_bert()
    args = _args(tmp_path, save_strategy="no", auto_find_batch_size=True, per_device_train_batch_size=8)
    trainer = Trainer(model=model, args=args, train_dataset=_dataset(), callbacks=[callback, OutOfMemoryOnce()])
    trainer.train()
    batch = trainer.state.train_batch_size
    assert batch < 8 and trainer.state.global_step == 4
    assert callback.totals[0] == 4 * batch * 12  # the successful run's tokens only, as Trainer's own counts
    assert trainer.state.log_history[-1]["sse/swap_rate"] == callback.swap_rate
    assert get_handle(model) is None and _hook_count(model) == 0


# ----- reuse: one callback, several train() calls and Trainers ----------------------------------------------------
@pytest.mark.slow  # Trainer runs
def test_one_callback_in_two_trainers_reports_each_runs_own_counts(tokenizer, tmp_path):
    """A fresh train() (not a resume) starts the counts and the adaptive schedule afresh, as Trainer starts its own
    state: the second Trainer's summary is its own run's, not both runs' mixed."""
    callback = SSECallback(SSEConfig(p=0.3, p_schedule="adaptive", adaptive_start=1.0), tokenizer=tokenizer)

    def train(output_dir, max_steps):
        args = _args(output_dir, max_steps=max_steps, save_strategy="no")
        trainer = Trainer(model=tiny_bert(), args=args, train_dataset=_dataset(), callbacks=[callback])
        trainer.train()
        return trainer

    first = train(tmp_path / "first", 4)
    assert callback.totals[0] == 4 * 4 * 12 and callback.adaptive["reference_loss"] is not None
    second = train(tmp_path / "second", 2)
    summary = second.state.log_history[-1]
    assert summary["sse/tokens_seen"] == callback.totals[0] == 2 * 4 * 12  # 96 tokens, not 96 + 192
    assert second.state.log_history[0]["sse/p"] == 0.0  # the adaptive schedule starts again from no reference
    again = first.train()  # the same Trainer again: a fresh run too
    assert again.metrics["sse/tokens_seen"] == callback.totals[0] == 4 * 4 * 12


@pytest.mark.slow  # Trainer runs
def test_a_resume_after_another_run_restores_the_checkpoint_not_the_last_run(tokenizer, tmp_path):
    callback = SSECallback(p=0.3, tokenizer=tokenizer)

    def trainer(output_dir, max_steps):
        args = _args(output_dir, max_steps=max_steps, save_steps=2)
        return Trainer(model=tiny_bert(), args=args, train_dataset=_dataset(), callbacks=[callback])

    trainer(tmp_path / "a", 2).train()
    at_checkpoint = callback.totals
    trainer(tmp_path / "b", 4).train()  # another run in between
    trainer(tmp_path / "a", 4).train(resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-2"))
    assert callback.totals[0] == at_checkpoint[0] + 2 * 4 * 12


# ----- resume under changed settings: what the warning announces is what happens -------------------------------
def _graph_run(tokenizer, output_dir, max_steps, resume=None, **sse):
    seen = []

    class Spy(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            seen.append(callback.handle.graph)

    callback = SSECallback(p=0.5, seed=1, tokenizer=tokenizer, **sse)
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(output_dir, max_steps=max_steps),
        train_dataset=_dataset(),
        callbacks=[callback, Spy()],
    )
    trainer.train(resume_from_checkpoint=resume)
    return seen[-1]


@pytest.mark.slow  # Trainer runs
def test_resuming_with_another_graph_k_builds_the_knn_graph_anew_and_says_so(tokenizer, tmp_path):
    _graph_run(tokenizer, tmp_path, 2, graph="knn", graph_k=2)
    kept = SSEGraph.load(str(tmp_path / "checkpoint-2" / "sse_graph.safetensors"))
    with pytest.warns(UserWarning, match=r"graph_k: 2 in the checkpoint, 5 now.*kNN graph is built anew.*graph_k=5"):
        resumed = _graph_run(tokenizer, tmp_path, 4, resume=str(tmp_path / "checkpoint-2"), graph="knn", graph_k=5)
    assert resumed.num_edges > kept.num_edges  # 5 neighbours per token now, not the checkpoint's 2


@pytest.mark.slow  # Trainer runs
def test_resuming_a_user_graph_run_with_knn_does_not_blame_an_older_sse_hf(tokenizer, tmp_path):
    saved = str(tmp_path / "user_graph.safetensors")
    SSEGraph.from_dict({10: [11, 12], 11: [10]}, vocab_size=48).save(saved)
    _graph_run(tokenizer, tmp_path, 2, graph=saved)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _graph_run(tokenizer, tmp_path, 4, resume=str(tmp_path / "checkpoint-2"), graph="knn", graph_k=3)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert any("user_graph.safetensors' in the checkpoint, 'knn' now" in m and "built anew" in m for m in messages)
    assert not any("older sse_hf" in m for m in messages)


@pytest.mark.slow  # Trainer runs
def test_resuming_with_other_adaptive_thresholds_says_when_they_apply(tokenizer, tmp_path):
    def trainer(max_steps, **sse):
        callback = SSECallback(SSEConfig(p=0.3, p_schedule="adaptive", **sse), tokenizer=tokenizer)
        args = _args(tmp_path, max_steps=max_steps, save_steps=2)
        return Trainer(model=tiny_bert(), args=args, train_dataset=_dataset(), callbacks=[callback])

    trainer(2, adaptive_start=1.0).train()
    with pytest.warns(UserWarning, match=r"adaptive_start apply from the next logged training loss on"):
        trainer(4, adaptive_start=0.95).train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))


# ----- small mistakes get a hint ----------------------------------------------------------------------------------
def test_small_mistakes_in_sse_callback_arguments_get_a_hint(tokenizer):
    with pytest.raises(TypeError, match=r"got a tokenizer \(BertTokenizer\).*SSECallback\(\.\.\., tokenizer=tok\)"):
        SSECallback(tokenizer)
    with pytest.raises(TypeError, match=r"Unknown SSEConfig field prob= passed to SSECallback\. Did you mean p=\?"):
        SSECallback(prob=0.1)
    with pytest.raises(TypeError, match=r"Unknown SSEConfig field probability=.*Did you mean p=\?"):
        SSECallback({"probability": 0.1})
    with pytest.raises(TypeError, match=r"sse_label_p=.*Did you mean label_p=\?"):
        SSECallback(sse_label_p=0.1)


def test_the_docstring_documents_every_argument():
    """`help(SSECallback)` has an Args section naming each argument of `__init__`, as transformers documents its
    callbacks."""
    import inspect

    args = SSECallback.__doc__.split("    Args:\n", 1)[1]
    for name, parameter in inspect.signature(SSECallback.__init__).parameters.items():
        if name != "self":
            shown = f"**{name}:" if parameter.kind is parameter.VAR_KEYWORD else f"{name} (`"
            assert shown in args, name


def test_a_checkpoints_callback_state_from_a_newer_sse_hf_rebuilds_with_a_warning():
    """`state()` saves the config with its sse-hf version; `from_state` of a newer version's state drops the fields
    it does not know, with a warning, instead of refusing to resume."""
    import sse_hf

    state = SSECallback(p=0.2).state()
    assert state["args"]["config"]["sse_hf_version"] == sse_hf.__version__
    assert SSECallback.from_state(state).config == SSEConfig(p=0.2)
    state["args"]["config"].update(sse_hf_version="9.0.0", p_dropout_schedule="cosine")
    with pytest.warns(UserWarning, match="p_dropout_schedule"):
        assert SSECallback.from_state(state).config == SSEConfig(p=0.2)
