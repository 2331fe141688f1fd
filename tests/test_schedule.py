"""p schedules: values at chosen steps, the handle's set_step, and resuming under Trainer."""

import math

import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from sse_hf import SSECallback, SSEConfig, patch_model
from sse_hf.schedule import adaptive_factor, schedule_factor
from tiny_models import tiny_bert, word_ids


@pytest.mark.parametrize(
    "schedule, warmup, step, expected",
    [
        ("constant", 0.0, 0, 1.0),
        ("constant", 0.5, 3, 1.0),
        ("linear_warmup", 0.2, 0, 0.0),
        ("linear_warmup", 0.2, 10, 0.5),
        ("linear_warmup", 0.2, 20, 1.0),
        ("linear_warmup", 0.2, 90, 1.0),
        ("linear_decay", 0.0, 0, 1.0),
        ("linear_decay", 0.0, 25, 0.75),
        ("linear_decay", 0.0, 100, 0.0),
        ("linear_decay", 0.2, 10, 0.5),
        ("linear_decay", 0.2, 60, 0.5),
        ("cosine", 0.0, 0, 1.0),
        ("cosine", 0.0, 50, 0.5),
        ("cosine", 0.0, 100, 0.0),
        ("cosine", 0.0, 25, 0.5 * (1 + math.cos(math.pi / 4))),
        ("cosine", 0.0, 150, 0.0),
    ],
)
def test_schedule_values(schedule, warmup, step, expected):
    assert schedule_factor(schedule, step, 100, warmup) == pytest.approx(expected)


def test_schedule_errors():
    with pytest.raises(ValueError, match="Unknown p schedule 'step'"):
        schedule_factor("step", 1, 10)
    with pytest.raises(ValueError, match="total number of steps"):
        schedule_factor("cosine", 1, 0)
    with pytest.raises(ValueError, match="p_schedule must be one of"):
        SSEConfig(p_schedule="exp")
    with pytest.raises(ValueError, match="needs p_warmup_ratio > 0"):
        SSEConfig(p_schedule="linear_warmup")
    with pytest.raises(ValueError, match="p_warmup_ratio"):
        SSEConfig(p_warmup_ratio=1.0)


def test_handle_set_step_scales_every_p(tokenizer):
    model = tiny_bert().train()
    handle = patch_model(model, p=0.4, label_p=0.2, p_schedule="linear_decay", tokenizer=tokenizer)
    assert handle.effective_p == 0.4
    handle.set_step(50, 100)
    assert handle.effective_p == pytest.approx(0.2) and handle.effective_p_by_role()["labels"] == pytest.approx(0.1)
    handle.set_step(100, 100)
    ids = word_ids()
    records = []
    model.get_input_embeddings().register_forward_hook(lambda m, a, o: records.append(a[0]))
    model(input_ids=ids, labels=torch.zeros(8, dtype=torch.long))
    assert torch.equal(records[-1], ids) and handle.tokens_swapped == 0


class StopAt(TrainerCallback):
    """Interrupts training after `step`, as a crash would, once its checkpoint is saved."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_save = True
            control.should_training_stop = True


def _train(output_dir, tokenizer, stop_at=None, resume=None):
    ids = word_ids(rows=32)
    data = Dataset.from_dict({"input_ids": ids.tolist(), "labels": (ids[:, 1] % 2).tolist()})
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=8,
        per_device_train_batch_size=4,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=3,
        lr_scheduler_type="constant",
    )
    callback = SSECallback(SSEConfig(p=0.4, p_schedule="linear_decay"), tokenizer=tokenizer)
    callbacks = [callback] + ([StopAt(stop_at)] if stop_at else [])
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=data, callbacks=callbacks)
    trainer.train(resume_from_checkpoint=resume)
    return [entry["sse/p"] for entry in trainer.state.log_history if "loss" in entry]


def test_callback_logs_the_schedule_and_resume_continues_it(tokenizer, tmp_path):
    straight = _train(tmp_path / "a", tokenizer)
    assert straight == pytest.approx([0.4 * (1 - step / 8) for step in range(8)])
    interrupted = _train(tmp_path / "b", tokenizer, stop_at=4)
    assert interrupted == pytest.approx(straight[:4])
    resumed = _train(tmp_path / "b", tokenizer, resume=str(tmp_path / "b" / "checkpoint-4"))
    assert resumed == pytest.approx(straight)  # log_history of steps 1-4 restored, steps 5-8 continue the decay


# ----- the adaptive schedule: p follows the training loss -----------------------------------------


@pytest.mark.parametrize(
    "loss, expected",
    [(2.0, 0.0), (1.0, 0.0), (0.5, 0.0), (0.3, 0.5), (0.1, 1.0), (0.01, 1.0), (float("nan"), 0.0)],
)
def test_adaptive_factor_values(loss, expected):
    # reference 1.0, start 0.5, full 0.1: 0 above half the first loss, 1 at a tenth of it, linear between
    assert adaptive_factor(loss, 1.0, 0.5, 0.1) == pytest.approx(expected)


def test_adaptive_config_errors():
    with pytest.raises(ValueError, match="adaptive_full .* must be below adaptive_start"):
        SSEConfig(p_schedule="adaptive", adaptive_start=0.2, adaptive_full=0.3)
    with pytest.raises(ValueError, match="adaptive_start must be a fraction"):
        SSEConfig(adaptive_start=0.0)
    with pytest.raises(ValueError, match="adaptive_full must be a fraction"):
        SSEConfig(adaptive_full=True)
    with pytest.raises(ValueError, match="follows the training loss"):
        schedule_factor("adaptive", 1, 10)


def test_handle_observe_loss_drives_p(tokenizer):
    model = tiny_bert().train()
    handle = patch_model(model, p=0.4, p_schedule="adaptive", tokenizer=tokenizer)
    ids = word_ids(rows=16)
    model(input_ids=ids)
    assert (
        handle.effective_p == 0.0 and handle.tokens_swapped == 0
    )  # no loss seen yet: the model is assumed to under-fit
    handle.set_step(50, 100)  # step schedules do not move it
    assert handle.effective_p == 0.0
    assert handle.observe_loss(float("nan")) == 0.0 and handle.reference_loss is None  # no usable reference
    assert handle.observe_loss(0.8) == 0.0 and handle.reference_loss == 0.8
    assert handle.observe_loss(0.24) == pytest.approx(0.5) and handle.effective_p == pytest.approx(0.2)
    model(input_ids=ids)
    assert handle.tokens_swapped > 0
    assert handle.observe_loss(0.05) == 1.0 and handle.effective_p == pytest.approx(0.4)
    assert handle.observe_loss(0.7) == 0.0  # the model under-fits again (e.g. the swaps raised the loss): p backs off


def test_step_schedules_ignore_observe_loss(tokenizer):
    handle = patch_model(tiny_bert(), p=0.4, p_schedule="linear_decay", tokenizer=tokenizer)
    handle.set_step(50, 100)
    assert handle.observe_loss(0.01) == pytest.approx(0.5) and handle.reference_loss is None


def _train_adaptive(output_dir, tokenizer, stop_at=None, resume=None, max_steps=28):
    ids = word_ids(rows=32)
    data = Dataset.from_dict({"input_ids": ids.tolist(), "labels": (ids[:, 1] % 2).tolist()})
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=8,
        logging_steps=2,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=3,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
    )
    callback = SSECallback(
        SSEConfig(p=0.3, p_schedule="adaptive", adaptive_start=0.9, adaptive_full=0.5), tokenizer=tokenizer
    )
    callbacks = [callback] + ([StopAt(stop_at)] if stop_at else [])
    torch.manual_seed(0)  # the same initial model in every run, so that losses (and so p) match
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=data, callbacks=callbacks)
    trainer.train(resume_from_checkpoint=resume)
    return [(entry["loss"], entry["sse/p"]) for entry in trainer.state.log_history if "loss" in entry], callback


def test_callback_adaptive_p_follows_the_logged_loss(tokenizer, tmp_path):
    logs, callback = _train_adaptive(tmp_path / "a", tokenizer)
    losses, ps = zip(*logs)
    assert ps[0] == 0.0  # the first interval runs before any loss is known
    reference = losses[0]
    for previous_loss, p in zip(losses, ps[1:]):  # each interval's p comes from the loss logged before it
        assert p == pytest.approx(0.3 * adaptive_factor(previous_loss, reference, 0.9, 0.5))
    assert max(ps) > 0 and callback.stats()["input"]["tokens_swapped"] > 0  # the model fit, and p rose


def test_callback_adaptive_schedule_resumes_where_it_stopped(tokenizer, tmp_path):
    straight, _ = _train_adaptive(tmp_path / "a", tokenizer)
    _train_adaptive(tmp_path / "b", tokenizer, stop_at=24)
    resumed, _ = _train_adaptive(tmp_path / "b", tokenizer, resume=str(tmp_path / "b" / "checkpoint-24"))
    assert [p for _, p in resumed] == pytest.approx([p for _, p in straight])


@pytest.mark.parametrize("corrupted", [{"reference_loss": "0.7", "factor": 0.5}, {"factor": 2.0}, [0.7, 0.5]])
def test_corrupted_adaptive_state_in_a_checkpoint_is_a_clear_error(tokenizer, tmp_path, corrupted):
    import json

    _train_adaptive(tmp_path / "b", tokenizer, stop_at=24)
    state_file = tmp_path / "b" / "checkpoint-24" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["stateful_callbacks"]["SSECallback"]["attributes"]["adaptive"] = corrupted
    state_file.write_text(json.dumps(state))
    before = state_file.read_text()
    with pytest.raises(ValueError, match="attributes.adaptive must be"):
        _train_adaptive(tmp_path / "b", tokenizer, resume=str(tmp_path / "b" / "checkpoint-24"))
    assert state_file.read_text() == before
