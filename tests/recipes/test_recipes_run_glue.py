"""recipes/run_glue.py end to end on a tiny BERT and small local files, plus its task table, metrics and errors."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value

from recipe_helpers import RECIPES, fast_args, read_results, sentiment_rows, write_csv, write_jsonl
from recipes import run_glue
from recipes.kit import glue_metrics, glue_tasks
from recipes.kit.run_setup import OutputDirectoryError, parse_args
from sse_hf import SSEArguments, SSEConfig, patch_model

# The Hub schema of each task, written out here independently of recipes/glue_tasks.py:
# text columns, label names (None: regression), the GLUE metrics.
HUB_SCHEMAS = {
    "cola": (["sentence"], ["unacceptable", "acceptable"], ["matthews_correlation"]),
    "sst2": (["sentence"], ["negative", "positive"], ["accuracy"]),
    "mrpc": (["sentence1", "sentence2"], ["not_equivalent", "equivalent"], ["f1", "accuracy"]),
    "qqp": (["question1", "question2"], ["not_duplicate", "duplicate"], ["f1", "accuracy"]),
    "stsb": (["sentence1", "sentence2"], None, ["pearson", "spearmanr"]),
    "mnli": (["premise", "hypothesis"], ["entailment", "neutral", "contradiction"], ["accuracy"]),
    "qnli": (["question", "sentence"], ["entailment", "not_entailment"], ["accuracy"]),
    "rte": (["sentence1", "sentence2"], ["entailment", "not_entailment"], ["accuracy"]),
    "wnli": (["sentence1", "sentence2"], ["not_entailment", "entailment"], ["accuracy"]),
    "imdb": (["text"], ["neg", "pos"], ["accuracy"]),
}
WORDS = "the movie plot was good bad dull fun a man sat on mat why is it the same".split()


def hub_rows(task: str, n: int, seed: int) -> list[dict]:
    """Rows shaped like the task's Hub split: its text columns, an int (or float) label, GLUE's idx."""
    columns, names, _ = HUB_SCHEMAS[task]
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row = {c: " ".join(rng.choice(WORDS, size=5)) for c in columns}
        row["label"] = float(round(rng.uniform(0, 5), 2)) if names is None else int(i % len(names))
        if task != "imdb":
            row["idx"] = i
        rows.append(row)
    return rows


def hub_dataset(task: str, n: int = 6) -> Dataset:
    columns, names, _ = HUB_SCHEMAS[task]
    features = {c: Value("string") for c in columns}
    features["label"] = Value("float32") if names is None else ClassLabel(names=names)
    if task != "imdb":
        features["idx"] = Value("int32")
    return Dataset.from_list(hub_rows(task, n, seed=0), features=Features(features))


# ----- the task table ----------------------------------------------------------------------------
def test_every_glue_task_and_imdb_is_known():
    assert set(glue_tasks.TASKS) == set(HUB_SCHEMAS)
    assert glue_tasks.get_task("SST-2").name == "sst2" and glue_tasks.get_task("sts-b").name == "stsb"
    assert glue_tasks.TASKS["mnli"].eval_splits == {"eval": "validation_matched", "eval_mm": "validation_mismatched"}
    assert glue_tasks.TASKS["imdb"].hub_name == "stanfordnlp/imdb"
    assert all(glue_tasks.TASKS[t].hub_name == "nyu-mll/glue" for t in HUB_SCHEMAS if t != "imdb")


@pytest.mark.parametrize("task", sorted(HUB_SCHEMAS))
def test_task_columns_labels_and_metric_on_hub_shaped_rows(task):
    columns, names, metrics = HUB_SCHEMAS[task]
    spec = glue_tasks.get_task(task)
    dataset = hub_dataset(task)
    chosen = glue_tasks.resolve_text_columns({"train": dataset.column_names}, {}, spec, "label")
    assert list(chosen) == columns
    space = glue_tasks.resolve_labels({"train": dataset}, "label", spec, "train")
    assert space.is_regression == (names is None)
    assert space.num_labels == (1 if names is None else len(names))
    assert list(spec.metrics) == metrics
    encoded = glue_tasks.encode_split_labels(dataset, "train", "test rows", "label", space)
    if names is None:
        assert encoded["labels"] == pytest.approx(dataset["label"])
    else:
        assert encoded["labels"] == dataset["label"]  # ClassLabel ids in the Hub order
    logits = np.random.default_rng(0).normal(size=(len(dataset), space.num_labels))
    predictions = glue_metrics.predictions_from_logits(logits, space.is_regression)
    scores = glue_metrics.compute_metrics(spec.metrics, predictions, np.asarray(encoded["labels"]))
    assert set(metrics) <= set(scores)


@pytest.mark.parametrize("task", sorted(HUB_SCHEMAS))
def test_run_glue_end_to_end_for_each_task_on_hub_shaped_files(task, tmp_path, tiny_model_dir):
    columns, names, metrics = HUB_SCHEMAS[task]
    train = write_jsonl(tmp_path / "train.jsonl", hub_rows(task, 12, seed=1))
    validation = write_jsonl(tmp_path / "validation.jsonl", hub_rows(task, 8, seed=2))
    extra = (
        ["--validation_mismatched_file", write_jsonl(tmp_path / "mm.jsonl", hub_rows(task, 6, seed=3))]
        if task == "mnli"
        else []
    )
    out = tmp_path / "out"
    results = run_glue.main(
        [
            "--model_name_or_path",
            tiny_model_dir,
            "--task_name",
            task,
            "--train_file",
            train,
            "--validation_file",
            validation,
            *extra,
            "--do_train",
            "--do_eval",
            *fast_args(out, steps=2),
        ]
    )
    assert results == read_results(out)
    assert results["task"] == task and results["primary_metric"] == f"eval_{metrics[0]}"
    for metric in metrics:
        assert f"eval_{metric}" in results
    assert results["eval_samples"] == 8
    if task == "mnli":
        assert results["eval_mm_samples"] == 6 and "eval_mm_accuracy" in results
    with open(out / "config.json") as handle:
        config = json.load(handle)
    if names is None:
        assert config["problem_type"] == "regression" and len(config["id2label"]) == 1
    else:
        assert [config["id2label"][str(i)] for i in range(len(names))] == names


# ----- metrics, computed locally (served through evaluate: test_recipes_glue_evaluate.py) ---------
def test_metrics_match_hand_computed_values():
    predictions, labels = np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0])
    assert glue_metrics.accuracy(predictions, labels) == 0.75
    assert glue_metrics.f1(predictions, labels) == pytest.approx(2 / 3)
    assert glue_metrics.matthews_correlation(predictions, labels) == pytest.approx(2 / math.sqrt(12))
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    gold = np.array([0.0, 0.5, 0.2, 1.0])
    assert glue_metrics.pearson(scores, gold) == pytest.approx(np.corrcoef(scores, gold)[0, 1])
    assert glue_metrics.spearmanr(scores, gold) == pytest.approx(1.0)
    both = glue_metrics.compute_metrics(("f1", "accuracy"), predictions, labels)
    assert both["combined_score"] == pytest.approx((2 / 3 + 0.75) / 2)
    assert math.isnan(glue_metrics.pearson(np.ones(4), gold))  # constant predictions: no correlation, no crash


# ----- a full run: files, metrics, SSE settings ---------------------------------------------------
def test_train_eval_predict_writes_model_metrics_and_predictions(tmp_path, tiny_model_dir, sentiment_files):
    out = tmp_path / "run"
    results = run_glue.main(
        [
            "--model_name_or_path",
            tiny_model_dir,
            "--train_file",
            sentiment_files["train"],
            "--validation_file",
            sentiment_files["validation"],
            "--test_file",
            sentiment_files["test"],
            "--do_train",
            "--do_eval",
            "--do_predict",
            "--sse_p",
            "0.2",
            "--logging_steps",
            "2",
            *fast_args(out),
        ]
    )
    for name in (
        "all_results.json",
        "train_results.json",
        "eval_results.json",
        "trainer_state.json",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "sse_config.json",
    ):
        assert (out / name).is_file(), name
    assert results == read_results(out)
    assert results["task"] == "local" and results["primary_metric"] == "eval_accuracy"
    assert 0.0 <= results["eval_accuracy"] <= 1.0 and math.isfinite(results["eval_loss"])
    assert {"eval_f1", "train_loss", "train_samples_per_second", "wall_time_s"} <= set(results)
    assert results["train_samples"] == 64 and results["eval_samples"] == 24
    assert results["train_samples_per_second"] > 0 and results["wall_time_s"] > results["train_runtime"]
    assert results["sse_enabled"] is True and results["sse_p"] == 0.2
    assert results["sse_swap_rate"] == pytest.approx(0.2, abs=0.1)
    assert results["num_processes"] == 1
    assert results["sse_swap_rate"] == results["sse_tokens_swapped"] / results["sse_tokens_eligible"]
    assert SSEConfig.from_pretrained(out).p == 0.2
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    lines = (out / "predict_results_local.txt").read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 17
    assert {line.split("\t")[1] for line in lines[1:]} <= {"negative", "positive"}
    assert not any(key.startswith("predict_") for key in results)  # the test file has no labels: nothing to score
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert any("loss" in entry and "sse/swap_rate" in entry for entry in history)
    summary = history[-1]  # the callback's end-of-training summary: the record's SSE figures come from it
    assert [summary[f"sse/tokens_{key}"] for key in ("seen", "eligible", "swapped")] == [
        results[f"sse_tokens_{key}"] for key in ("seen", "eligible", "swapped")
    ]
    assert summary["sse/swap_rate"] == results["sse_swap_rate"] and results["sse_swap_rate_by_role"] == {}

    # Evaluating the saved model alone uses the label names it was saved with, and gives the same numbers.
    again = run_glue.main(
        [
            "--model_name_or_path",
            str(out),
            "--validation_file",
            sentiment_files["validation"],
            "--do_eval",
            "--output_dir",
            str(tmp_path / "eval-only"),
            "--per_device_eval_batch_size",
            "8",
            "--max_seq_length",
            "32",
            "--report_to",
            "none",
        ]
    )
    assert again["eval_accuracy"] == results["eval_accuracy"]
    assert again["eval_loss"] == pytest.approx(results["eval_loss"], abs=1e-6)
    assert "sse_swap_rate" not in again  # nothing was trained


def test_sse_p_reaches_the_model(tmp_path, tiny_model_dir, sentiment_files):
    def run(name, *sse):
        return run_glue.main(
            [
                "--model_name_or_path",
                tiny_model_dir,
                "--train_file",
                sentiment_files["train"],
                "--validation_file",
                sentiment_files["validation"],
                *sse,
                *fast_args(tmp_path / name),
            ]
        )

    off, high, switched_off = run("p0", "--sse_p", "0"), run("p06", "--sse_p", "0.6"), run("off", "--sse", "False")
    assert off["sse_enabled"] is False and off["sse_swap_rate"] == 0.0 and off["sse_tokens_swapped"] == 0
    assert switched_off["sse_enabled"] is False and switched_off["sse_tokens_swapped"] == 0
    assert high["sse_enabled"] is True and high["sse_swap_rate"] == pytest.approx(0.6, abs=0.1)
    assert high["sse_tokens_eligible"] > 100


def test_evaluation_during_training_sees_the_original_inputs(tmp_path, tiny_model_dir, sentiment_files):
    """With p=1 every eligible training token is swapped; the eval loss logged mid-training must still be the
    loss of the checkpoint on the unswapped validation data (recomputed here by hand)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    # A classifier head with large weights, so that the loss clearly depends on the input tokens.
    sensitive = tmp_path / "sensitive"
    AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, num_labels=2, initializer_range=1.0
    ).save_pretrained(sensitive)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(sensitive)
    out = tmp_path / "run"
    run_glue.main(
        [
            "--model_name_or_path",
            str(sensitive),
            "--train_file",
            sentiment_files["train"],
            "--validation_file",
            sentiment_files["validation"],
            "--do_train",
            "--do_eval",
            "--sse_p",
            "1.0",
            *fast_args(out),
            "--eval_strategy",
            "steps",
            "--eval_steps",
            "2",
            "--save_strategy",
            "steps",
            "--save_steps",
            "2",
        ]  # later flags win over fast_args' --save_strategy no
    )
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    logged = next(entry["eval_loss"] for entry in history if entry.get("step") == 2 and "eval_loss" in entry)

    tokenizer = AutoTokenizer.from_pretrained(out)
    rows = sentiment_rows(24, seed=2)
    features = [
        dict(tokenizer(r["sentence"], truncation=True, max_length=32), labels=int(r["label"] == "positive"))
        for r in rows
    ]
    collate = DataCollatorWithPadding(tokenizer)

    def validation_loss(model) -> float:
        total = 0.0
        for start in range(0, len(features), 8):
            batch = collate(features[start : start + 8])
            total += model(**batch).loss.item() * len(batch["labels"])
        return total / len(features)

    tolerance = 1e-5
    model = AutoModelForSequenceClassification.from_pretrained(out / "checkpoint-2").eval()
    with torch.no_grad():
        assert validation_loss(model) == pytest.approx(logged, abs=tolerance)
    # The check has teeth: the same checkpoint on swapped inputs (a training-mode pass, dropout off) lands far
    # outside that tolerance. (How far varies with the tiny model's vocabulary, which the WordPiece trainer
    # does not order the same way every session: 2e-4 to 5e-3 seen, so the bar is 10 x the tolerance.)
    swapped = AutoModelForSequenceClassification.from_pretrained(
        out / "checkpoint-2", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0
    ).train()
    with patch_model(swapped, SSEConfig(p=1.0, seed=0), tokenizer=tokenizer) as handle:
        assert abs(validation_loss(swapped) - logged) > 10 * tolerance
        assert handle.tokens_swapped > 0


# ----- arguments ----------------------------------------------------------------------------------
def test_sse_arguments_mirror_every_sse_config_field():
    twins = {f.name: f for f in dataclasses.fields(SSEArguments)}
    for field in dataclasses.fields(SSEConfig):
        twin = twins[f"sse_{field.name}"]
        assert twin.metadata.get("help", "").startswith(field.metadata.get("help", ""))
        default = field.default_factory() if field.default is dataclasses.MISSING else field.default
        twin_default = twin.default_factory() if twin.default is dataclasses.MISSING else twin.default
        assert twin_default == default
    (args,) = parse_args([SSEArguments], ["--sse_p", "0.25", "--sse_exclude_token_ids", "5", "6", "--sse_seed", "3"])
    config = args.to_config()
    assert (config.p, config.exclude_token_ids, config.seed) == (0.25, [5, 6], 3)
    assert args.is_active()
    with pytest.raises(SystemExit):  # argparse's usage and "error: argument --sse_p: ..." (test_recipes_cli)
        parse_args([SSEArguments], ["--sse_p", "1.5"])


def test_a_single_json_file_holds_all_arguments(tmp_path, tiny_model_dir, sentiment_files):
    out = tmp_path / "run"
    arguments = {
        "model_name_or_path": tiny_model_dir,
        "train_file": sentiment_files["train"],
        "validation_file": sentiment_files["validation"],
        "output_dir": str(out),
        "max_steps": 2,
        "per_device_train_batch_size": 8,
        "report_to": "none",
        "save_strategy": "no",
        "sse_p": 0.3,
        "do_train": True,
        "do_eval": True,
        "max_train_samples": 16,
        "max_eval_samples": 8,
    }
    (tmp_path / "args.json").write_text(json.dumps(arguments))
    results = run_glue.main([str(tmp_path / "args.json")])
    assert results["sse_p"] == 0.3 and results["train_samples"] == 16 and results["eval_samples"] == 8


# ----- bad input ----------------------------------------------------------------------------------
def test_unknown_task_lists_the_valid_ones(tmp_path, tiny_model_dir):
    with pytest.raises(
        ValueError, match="Unknown task 'glu'.*cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli, imdb"
    ):
        run_glue.main(["--model_name_or_path", tiny_model_dir, "--task_name", "glu", "--output_dir", str(tmp_path)])


def test_local_file_without_the_task_columns_names_them(tmp_path, tiny_model_dir):
    rows = [{"text": "the movie was good", "label": 1}] * 4
    train = write_csv(tmp_path / "train.csv", rows)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) 'sentence1', 'sentence2'.*has 'text', 'label'"):
        run_glue.main(
            [
                "--model_name_or_path",
                tiny_model_dir,
                "--task_name",
                "rte",
                "--train_file",
                train,
                "--do_train",
                *fast_args(tmp_path / "out"),
            ]
        )


def test_local_file_without_a_label_column_says_so(tmp_path, tiny_model_dir):
    train = write_csv(tmp_path / "train.csv", [{"sentence": "the movie was good", "stars": 1}] * 4)
    with pytest.raises(ValueError, match="no label column 'label'.*--label_column_name"):
        run_glue.main(
            [
                "--model_name_or_path",
                tiny_model_dir,
                "--train_file",
                train,
                "--text_column_names",
                "sentence",
                "--do_train",
                *fast_args(tmp_path / "out"),
            ]
        )


def test_unseen_labels_at_evaluation_are_reported(tmp_path, tiny_model_dir, sentiment_files):
    validation = write_csv(
        tmp_path / "validation.csv", sentiment_rows(6) + [{"sentence": "it was ok", "label": "neutral"}]
    )
    with pytest.raises(
        ValueError, match=r"eval data \(--validation_file .*validation.csv\) has label\(s\) \['neutral'\]"
    ):
        run_glue.main(
            [
                "--model_name_or_path",
                tiny_model_dir,
                "--train_file",
                sentiment_files["train"],
                "--validation_file",
                validation,
                *fast_args(tmp_path / "out"),
            ]
        )


def test_hub_name_offline_fails_fast_and_suggests_local_files(tmp_path, tiny_model_dir):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(tmp_path / "cache"),
    }
    env["PYTHONPATH"] = os.pathsep.join(
        [str(RECIPES.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    )  # this tree
    done = subprocess.run(
        [
            sys.executable,
            str(RECIPES / "run_glue.py"),
            "--model_name_or_path",
            tiny_model_dir,
            "--task_name",
            "rte",
            "--output_dir",
            str(tmp_path / "out"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # a guard against a hang, not a timing
    )
    assert done.returncode != 0
    # The error comes from the offline check, not from a network call that timed out.
    assert "nyu-mll/glue" in done.stderr and "--train_file" in done.stderr and "Offline mode is on" in done.stderr
    assert "ConnectTimeout" not in done.stderr and "Max retries" not in done.stderr


def test_existing_output_dir_is_kept_unless_overwrite_is_asked(tmp_path, tiny_model_dir, sentiment_files):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    arguments = [
        "--model_name_or_path",
        tiny_model_dir,
        "--train_file",
        sentiment_files["train"],
        "--validation_file",
        sentiment_files["validation"],
        *fast_args(out, steps=2),
    ]
    with pytest.raises(OutputDirectoryError, match="--overwrite_output_dir"):
        run_glue.main(arguments)
    assert sorted(os.listdir(out)) == ["notes.txt"] and (out / "notes.txt").read_text() == "my notes"
    run_glue.main(arguments + ["--overwrite_output_dir"])
    assert (out / "notes.txt").read_text() == "my notes" and (out / "all_results.json").is_file()


def test_a_run_resumes_from_its_last_checkpoint(tmp_path, tiny_model_dir, sentiment_files):
    out = tmp_path / "run"
    arguments = [
        "--model_name_or_path",
        tiny_model_dir,
        "--train_file",
        sentiment_files["train"],
        "--do_train",
        "--sse_p",
        "0.3",
        *fast_args(out),
    ]
    run_glue.main(arguments + ["--max_steps", "2", "--save_strategy", "steps", "--save_steps", "2"])
    state_path = out / "checkpoint-2" / "trainer_state.json"
    state = json.loads(state_path.read_text())
    state["log_history"].insert(0, {"step": 0, "marker": "first run"})
    state_path.write_text(json.dumps(state))
    results = run_glue.main(arguments + ["--max_steps", "4", "--save_strategy", "steps", "--save_steps", "2"])
    final = json.loads((out / "trainer_state.json").read_text())
    assert final["global_step"] == 4 and final["log_history"][0].get("marker") == "first run"
    assert (out / "checkpoint-4").is_dir()
    assert results["sse_swap_rate"] == pytest.approx(0.3, abs=0.12)


def test_a_model_fine_tuned_with_another_label_order_keeps_it():
    """E.g. roberta-large-mnli says CONTRADICTION, NEUTRAL, ENTAILMENT; GLUE's ids are entailment, neutral, contradiction."""
    spec = glue_tasks.get_task("mnli")
    space = glue_tasks.model_label_order(
        glue_tasks.LabelSpace(spec.label_names), ["CONTRADICTION", "NEUTRAL", "ENTAILMENT"]
    )
    assert space.names == ("contradiction", "neutral", "entailment")
    hub_ids = Dataset.from_list([{"label": 0}, {"label": 1}, {"label": 2}])  # plain ints, as in a jsonl export
    encoded = glue_tasks.encode_split_labels(hub_ids, "eval", "rows", "label", space, spec.label_names)
    assert encoded["labels"] == [2, 1, 0]
    hub = hub_dataset("mnli")  # ClassLabel ids go through their names
    encoded = glue_tasks.encode_split_labels(hub, "eval", "rows", "label", space, spec.label_names)
    assert [space.names[i] for i in encoded["labels"]] == [hub.features["label"].int2str(i) for i in hub["label"]]
    unrelated = glue_tasks.model_label_order(
        glue_tasks.LabelSpace(spec.label_names), ["LABEL_0", "LABEL_1", "LABEL_2"]
    )
    assert unrelated.names == spec.label_names


def test_label_sse_and_schedule_options_reach_the_run(tmp_path, tiny_model_dir, sentiment_files):
    results = run_glue.main(
        [
            "--model_name_or_path",
            tiny_model_dir,
            "--train_file",
            sentiment_files["train"],
            "--validation_file",
            sentiment_files["validation"],
            "--sse_p",
            "0.2",
            "--sse_label_p",
            "0.5",
            "--sse_p_schedule",
            "linear_decay",
            *fast_args(tmp_path / "label", "--logging_steps", "1"),
        ]
    )
    rates = results["sse_swap_rate_by_role"]  # the roles logged apart from the inputs, over every process
    assert set(rates) == {"labels"} and 0.1 < rates["labels"] < 0.9 and results["sse_tokens_eligible"] > 0
    assert results["sse_label_p"] == 0.5 and results["sse_p_schedule"] == "linear_decay"
    history = json.loads((tmp_path / "label" / "trainer_state.json").read_text())["log_history"]
    logged_p = [entry["sse/p"] for entry in history if "loss" in entry]
    assert logged_p[0] == pytest.approx(0.2) and logged_p == sorted(logged_p, reverse=True)


def test_labelled_test_file_is_scored_with_loss_and_metrics(tmp_path, tiny_model_dir, sentiment_files):
    """A --test_file with labels gets predict_* metrics and loss, the same as evaluating it as validation data."""
    out = tmp_path / "run"
    results = run_glue.main(
        [
            "--model_name_or_path",
            tiny_model_dir,
            "--train_file",
            sentiment_files["train"],
            "--validation_file",
            sentiment_files["validation"],
            "--test_file",
            sentiment_files["validation"],
            "--do_train",
            "--do_eval",
            "--do_predict",
            "--sse_p",
            "0.1",
            *fast_args(out),
        ]
    )
    for name in ("loss", "accuracy", "f1"):
        assert results[f"predict_{name}"] == pytest.approx(results[f"eval_{name}"], abs=1e-6), name
    assert results["predict_samples"] == 24
    assert json.loads((out / "predict_results.json").read_text())["predict_accuracy"] == results["predict_accuracy"]
    assert len((out / "predict_results_local.txt").read_text().splitlines()) == 25


# ----- issue 17: the wrong text, numeric options, long tokenizers, eval-only records ---------------------------------
@pytest.mark.parametrize("value", [{"text": "the movie was good"}, ["the movie", "was good"]])
def test_a_json_text_field_holding_an_object_or_a_list_is_a_clear_error(tmp_path, tiny_model_dir, value):
    train = write_jsonl(tmp_path / "train.jsonl", [{"sentence": value, "label": i % 2} for i in range(4)])
    with pytest.raises(ValueError, match=r"train data \(--train_file .*train\.jsonl\).*column 'sentence'.*not text"):
        run_glue.main(
            [
                "--model_name_or_path",
                tiny_model_dir,
                "--train_file",
                train,
                "--text_column_names",
                "sentence",
                "--do_train",
                *fast_args(tmp_path / "out"),
            ]
        )


def test_the_label_column_given_as_a_text_column_is_a_clear_error(tmp_path, tiny_model_dir, sentiment_files):
    with pytest.raises(ValueError, match=r"--text_column_names names 'label'.*label column"):
        run_glue.main(
            [
                "--model_name_or_path",
                tiny_model_dir,
                "--train_file",
                sentiment_files["train"],
                "--text_column_names",
                "sentence,label",
                "--do_train",
                *fast_args(tmp_path / "out"),
            ]
        )


@pytest.mark.parametrize(
    "option, value",
    [
        ("--max_seq_length", "-4"),
        ("--max_seq_length", "0"),
        ("--max_train_samples", "-1"),
        ("--max_eval_samples", "0"),
        ("--max_predict_samples", "-2"),
        ("--preprocessing_num_workers", "0"),
    ],
)
def test_numeric_data_options_are_validated_naming_them(tmp_path, tiny_model_dir, sentiment_files, option, value):
    with pytest.raises(ValueError, match=rf"{option} must be a positive integer, got {value}"):
        run_glue.main(
            [
                "--model_name_or_path",
                tiny_model_dir,
                "--train_file",
                sentiment_files["train"],
                "--do_train",
                *fast_args(tmp_path / "out"),
                option,
                value,
            ]
        )


def test_a_tokenizer_longer_than_the_position_table_is_capped_with_a_warning(tmp_path, tiny_model_dir, caplog):
    import shutil

    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    config_file = model_dir / "tokenizer_config.json"
    tokenizer_config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**tokenizer_config, "model_max_length": 512}))
    long_rows = [{"sentence": " ".join(["the movie was good and fun"] * 30), "label": i % 2} for i in range(8)]
    train = write_csv(tmp_path / "train.csv", long_rows)
    results = run_glue.main(
        [
            "--model_name_or_path",
            str(model_dir),
            "--train_file",
            train,
            "--do_train",
            *fast_args(tmp_path / "out", steps=1),
            "--max_seq_length",
            "128",
        ]
    )
    assert results["train_samples"] == 8
    assert any("max_position_embeddings" in record.getMessage() for record in caplog.records)


def test_an_eval_only_run_keeps_the_trained_runs_sse_record(tmp_path, tiny_model_dir, sentiment_files):
    out = tmp_path / "out"
    run_glue.main(
        [
            "--model_name_or_path",
            tiny_model_dir,
            "--train_file",
            sentiment_files["train"],
            "--do_train",
            "--sse_p",
            "0.2",
            *fast_args(out, steps=2),
        ]
    )
    trained = read_results(out)
    run_glue.main(
        [
            "--model_name_or_path",
            str(out),
            "--validation_file",
            sentiment_files["validation"],
            "--do_eval",
            *fast_args(out),
        ]
    )
    after = read_results(out)
    assert after["sse_p"] == trained["sse_p"] == 0.2 and after["sse_swap_rate"] == trained["sse_swap_rate"]
    assert "eval_accuracy" in after


def test_a_json_file_of_columns_is_a_clear_error_naming_the_file(tmp_path, tiny_model_dir):
    """datasets reads {"sentence": [...], "label": [...]} as one example holding lists."""
    rows = sentiment_rows(8)
    train = tmp_path / "columns.json"
    train.write_text(json.dumps({"sentence": [r["sentence"] for r in rows], "label": [r["label"] for r in rows]}))
    with pytest.raises(ValueError, match=r"columns\.json\).*list in label column 'label'.*one object per example"):
        run_glue.main(
            [
                "--model_name_or_path",
                tiny_model_dir,
                "--train_file",
                str(train),
                "--do_train",
                *fast_args(tmp_path / "out"),
            ]
        )
