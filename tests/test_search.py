"""`Trainer.hyperparameter_search` over SSE fields: each trial trains at its own p, from fresh SSE state."""

import json

import pytest
from datasets import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from sse_hf import SSECallback, SSEConfig, best_sse_config, sse_hp_space
from sse_hf.search import trial_config, trial_overrides
from tiny_models import tiny_bert, word_ids

optuna = pytest.importorskip("optuna")

GRID = [0.05, 0.35, 0.8]


def _dataset(rows=16, seed=0):
    ids = word_ids(rows=rows, seed=seed)
    return Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": (ids != 0).long().tolist(), "labels": (ids[:, 1] % 2).tolist()}
    )


class TrialRecorder(TrainerCallback):
    """What each trial saw: its parameters, the SSE state it started from, and the SSE state it ended with."""

    def __init__(self, sse: SSECallback):
        self.sse = sse
        self.trials = []

    def on_train_begin(self, args, state, control, **kwargs):  # runs after SSECallback's, which moves to the front
        handle = self.sse.handle
        self.trials.append(
            {
                "params": dict(state.trial_params),
                "p": self.sse.config.p,
                "start_counts": self.sse.stats(),
                "start_adaptive": (handle.reference_loss, handle.factor),
            }
        )

    def on_train_end(self, args, state, control, **kwargs):
        self.trials[-1].update(
            stats=self.sse.stats()["input"],
            swap_rate=self.sse.swap_rate,
            log_history=list(state.log_history),
            adaptive=self.sse.state()["attributes"].get("adaptive"),
        )


def _search(tokenizer, tmp_path, config, n_trials=3, hp_space=None, grid=None, sampler=None, **space):
    sse = SSECallback(config, tokenizer=tokenizer)
    recorder = TrialRecorder(sse)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=4,
        per_device_train_batch_size=4,
        logging_steps=1,
        save_steps=2,
        learning_rate=1e-2,
        report_to=[],
        use_cpu=True,
        seed=7,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model_init=lambda: tiny_bert(),
        args=args,
        train_dataset=_dataset(),
        eval_dataset=_dataset(8, 1),
        callbacks=[sse, recorder],
    )
    grid = grid or {f"sse_{name}": values for name, values in space.items()}
    sampler = sampler or optuna.samplers.GridSampler(grid, seed=0)
    best = trainer.hyperparameter_search(
        hp_space=hp_space or sse_hp_space(**space),
        backend="optuna",
        n_trials=n_trials,
        direction="minimize",
        sampler=sampler,
    )
    return best, recorder.trials, sse


def test_each_trial_trains_at_its_own_p_from_fresh_counts(tokenizer, tmp_path):
    best, trials, sse = _search(tokenizer, tmp_path, SSEConfig(seed=1), p=GRID)
    assert sorted(trial["params"]["sse_p"] for trial in trials) == GRID
    assert sorted({trial["p"] for trial in trials}) == GRID  # the callback applied each trial's p
    for number, trial in enumerate(trials):
        assert trial["p"] == trial["params"]["sse_p"]
        assert {role: set(stats.values()) for role, stats in trial["start_counts"].items()} == {"input": {0}}  # fresh
        stats = trial["stats"]
        assert stats["tokens_seen"] == trials[0]["stats"]["tokens_seen"] == 4 * 4 * 12  # one trial's tokens only
        assert stats["swap_rate"] == pytest.approx(trial["p"], abs=0.12)
        logs = [entry for entry in trial["log_history"] if "loss" in entry]
        assert all(entry["sse/p"] == trial["p"] for entry in logs)
        assert trial["log_history"][-1]["sse/swap_rate"] == trial["swap_rate"] == stats["swap_rate"]
        # sse_config.json and the counts go into this trial's own run folder and checkpoints
        run = tmp_path / f"run-{number}"
        assert SSEConfig.from_pretrained(run).p == trial["p"]
        for step in (2, 4):
            assert SSEConfig.from_pretrained(run / f"checkpoint-{step}").p == trial["p"]
        saved = json.loads((run / "checkpoint-4" / "trainer_state.json").read_text())["stateful_callbacks"]
        counts = saved["SSECallback"]["attributes"]["counts"]["input"]
        assert counts == [stats["tokens_seen"], stats["tokens_eligible"], stats["tokens_swapped"]]
    assert not (tmp_path / "sse_config.json").exists()  # no top-level copy holding the last trial's p
    chosen = best_sse_config(best, SSEConfig(seed=1))
    assert chosen == SSEConfig(seed=1, p=best.hyperparameters["sse_p"])
    assert chosen == SSEConfig.from_pretrained(tmp_path / f"run-{best.run_id}")
    assert sse.config.p == trials[-1]["p"]


def test_adaptive_schedule_state_starts_afresh_in_every_trial(tokenizer, tmp_path):
    _, trials, _ = _search(tokenizer, tmp_path, SSEConfig(p_schedule="adaptive", seed=1), n_trials=2, p=[0.2, 0.4])
    for number, trial in enumerate(trials):
        assert trial["start_adaptive"] == (None, 0.0)  # fresh: no reference loss yet, p starts at 0
        first_loss = next(entry["loss"] for entry in trial["log_history"] if "loss" in entry)
        assert trial["adaptive"]["reference_loss"] == pytest.approx(first_loss)  # this trial's own first loss
        saved = json.loads((tmp_path / f"run-{number}" / "checkpoint-4" / "trainer_state.json").read_text())
        assert saved["stateful_callbacks"]["SSECallback"]["attributes"]["adaptive"] == trial["adaptive"]


def test_search_space_over_several_fields_and_json_text(tokenizer, tmp_path):
    _, trials, _ = _search(
        tokenizer,
        tmp_path,
        SSEConfig(),
        n_trials=2,
        p=[0.1],
        label_p=[0.0, 0.3],
        table_p=['{"token_type_embeddings": 0.5}'],
    )
    assert sorted(trial["params"]["sse_label_p"] for trial in trials) == [0.0, 0.3]
    for number, trial in enumerate(trials):
        saved = SSEConfig.from_pretrained(tmp_path / f"run-{number}" / "checkpoint-4")
        assert saved == SSEConfig(
            p=0.1, label_p=trial["params"]["sse_label_p"], table_p={"token_type_embeddings": 0.5}
        )


def test_trial_parameters_map_to_config_fields():
    params = {"sse_p": 0.2, "sse_p_schedule": "cosine", "learning_rate": 1e-3, "sse_exclude_token_ids": "[9]"}
    assert trial_overrides(params) == {"p": 0.2, "p_schedule": "cosine", "exclude_token_ids": [9]}
    assert trial_config(SSEConfig(seed=4), params) == SSEConfig(
        seed=4, p=0.2, p_schedule="cosine", exclude_token_ids=[9]
    )
    assert trial_overrides(None) == {}
    with pytest.raises(ValueError, match=r"'sse_q'.*no field 'q'.*'sse_p'"):
        trial_overrides({"sse_q": 0.1})
    with pytest.raises(ValueError, match=r"search set \{'p': 1.5\}.*SSEConfig.p must be in \[0, 1\]"):
        trial_config(SSEConfig(), {"sse_p": 1.5})
    with pytest.raises(ValueError, match=r"sse_table_p='\{oops' is not valid JSON"):
        trial_overrides({"sse_table_p": "{oops"})
    with pytest.raises(TypeError, match="BestRun"):
        best_sse_config(0.1)


@pytest.mark.parametrize(
    "space, message",
    [
        ({}, r"at least one field"),
        ({"q": [0.1]}, r"'q', which is no SSEConfig field"),
        ({"p": (0.1,)}, r"\(low, high\) tuple"),
        ({"p": (0.3, 0.1)}, r"low must not be above high"),
        ({"p": "0.1"}, r"non-empty list"),
        ({"p": []}, r"non-empty list"),
        ({"p": [0.1, 2.0]}, r"SSEConfig.p must be in \[0, 1\]"),
        ({"p_schedule": ["cosine", "sideways"]}, r"p_schedule must be one of"),
        ({"p": [0.1, 0.1]}, r"p lists 0.1 twice"),
        ({"p": [0, 0.0]}, r"p lists 0.0 twice"),
        ({"graph_k": (3.5, 6)}, r"graph_k=.*\(low, high\) tuple of integers"),
        ({"p_schedule": ("constant", "cosine")}, r"range needs a number field"),
        (
            {"p_schedule": ["constant", "linear_warmup"], "p_warmup_ratio": [0.0, 0.1]},
            r"combination p_schedule='linear_warmup', p_warmup_ratio=0.0 is no valid SSE setting",
        ),
        ({"p_schedule": ["linear_warmup"]}, r"add them to the space as one-value lists"),
    ],
)
def test_bad_search_spaces_are_clear_errors(space, message):
    with pytest.raises(ValueError, match=message):
        sse_hp_space(**space)


def test_search_space_for_ray_and_other_backends():
    space = sse_hp_space(p=(0.0, 0.2), p_schedule=["constant", "cosine"])
    with pytest.raises(TypeError, match=r"optuna and ray backends, got a dict trial"):
        space({"p": 0.1})
    tune = pytest.importorskip("ray.tune")
    ray_space = space(None)
    assert isinstance(ray_space["sse_p"], tune.search.sample.Float)
    assert (ray_space["sse_p"].lower, ray_space["sse_p"].upper) == (0.0, 0.2)
    assert ray_space["sse_p_schedule"].categories == ["constant", "cosine"]


@pytest.mark.parametrize(
    "hp_space, grid, message",
    [
        (  # a fixed value beside the suggestions: optuna's trial.params (state.trial_params) never holds it
            lambda trial: {**sse_hp_space(p=[0.1, 0.2])(trial), "sse_label_p": 0.5},
            {"sse_p": [0.1, 0.2]},
            r"returns sse_label_p=0.5, but optuna hands Trainer only the values it suggested",
        ),
        (  # a value changed after its suggestion: the trial would train on the suggested one
            lambda trial: {"sse_p": trial.suggest_float("sse_p", 0.0, 1.0) / 10},
            {"sse_p": [0.5, 1.0]},
            r"returns sse_p=0\.\d+ \(suggested as (0.5|1.0)\)",
        ),
        (  # suggested under another name: nothing would reach the callback
            lambda trial: {"sse_p": trial.suggest_categorical("p", [0.1, 0.2])},
            {"p": [0.1, 0.2]},
            r"returns sse_p=0\.[12], but optuna",
        ),
    ],
)
def test_sse_values_that_optuna_did_not_suggest_are_refused_before_training(
    tokenizer, tmp_path, hp_space, grid, message
):
    with pytest.raises(ValueError, match=message):
        _search(tokenizer, tmp_path, SSEConfig(), n_trials=2, hp_space=hp_space, grid=grid)
    assert not list(tmp_path.glob("run-*/checkpoint-*"))  # refused before the first trial trained a step


def test_an_integer_field_searched_over_a_range_trains_integer_values(tokenizer, tmp_path):
    sampler = optuna.samplers.RandomSampler(seed=0)  # draws inside the range (a grid would name integers itself)
    _, trials, _ = _search(tokenizer, tmp_path, SSEConfig(graph="knn"), n_trials=2, sampler=sampler, graph_k=(3, 6))
    assert len(trials) == 2
    for number, trial in enumerate(trials):
        saved = SSEConfig.from_pretrained(tmp_path / f"run-{number}")
        assert saved.graph_k == trial["params"]["sse_graph_k"] and isinstance(saved.graph_k, int)
        assert 3 <= saved.graph_k <= 6


def test_a_joint_space_is_checked_together():
    space = sse_hp_space(p_schedule=["linear_warmup"], p_warmup_ratio=[0.1, 0.2])
    trial = optuna.trial.FixedTrial({"sse_p_schedule": "linear_warmup", "sse_p_warmup_ratio": 0.2})
    assert trial_config(SSEConfig(), space(trial)) == SSEConfig(p_schedule="linear_warmup", p_warmup_ratio=0.2)


def test_list_and_dict_choices_reach_optuna_as_json_text():
    space = sse_hp_space(table_p=[{"token_type_embeddings": 0.5}], exclude_token_ids=[[9], [9, 10]])
    trial = optuna.trial.FixedTrial({"sse_table_p": '{"token_type_embeddings": 0.5}', "sse_exclude_token_ids": "[9]"})
    params = space(trial)  # FixedTrial accepts only what its choices hold: JSON text, which optuna stores
    assert params == {"sse_table_p": '{"token_type_embeddings": 0.5}', "sse_exclude_token_ids": "[9]"}
    assert trial_config(SSEConfig(), params) == SSEConfig(
        table_p={"token_type_embeddings": 0.5}, exclude_token_ids=[9]
    )


@pytest.mark.parametrize(
    "config, space, message",
    [
        (SSEConfig(), {"graph_k": [3, 6]}, r"graph_k changes nothing in any candidate \(.*'knn' only\)"),
        (
            SSEConfig(p_schedule="adaptive", adaptive_start=0.3),
            {"adaptive_full": [0.2, 0.4]},
            r"SSECallback's config: the combination adaptive_full=0.4 is no valid SSE setting",
        ),
    ],
)
def test_the_space_is_checked_with_the_callbacks_config_before_the_first_trial(
    tokenizer, tmp_path, config, space, message
):
    with pytest.raises(ValueError, match=message):
        _search(tokenizer, tmp_path, config, n_trials=2, **space)
    assert not list(tmp_path.glob("run-*/checkpoint-*"))  # no trial trained
