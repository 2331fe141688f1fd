"""The over-fitting study's bookkeeping on a made-up IMDB-shaped file: the split, the paired training subsets,
the job graph (tuning, choice, gates before SSE's final seeds), its rules, and a real run on a tiny BERT."""

import json
import os

import numpy as np
import pytest

from recipe_helpers import sentiment_rows, write_csv
from recipes.evidence import overfit_plan, overfit_report, overfit_rules, study_overfit
from recipes.evidence.classifier_run import finetune


def _imdb(tmp_path, rows=2000):
    """imdb-2000.csv's shape: columns text and label (1 positive), each text unique."""
    made_up = [
        {"text": f"{r['sentence']} ({i})", "label": int(r["label"] == "positive")}
        for i, r in enumerate(sentiment_rows(rows))
    ]
    return write_csv(tmp_path / "imdb.csv", made_up)


def _fake(records, arm, seed, accuracy, nll=0.5, last_nll=None, train_loss=0.05):
    """A record with only what the rules read: per-epoch choice scores (2 epochs), kept epoch, training loss."""
    scores = [{"accuracy": accuracy, "nll": nll}, {"accuracy": accuracy - 0.01, "nll": last_nll or nll + 0.1}]
    path = study_overfit.record_path(str(records), arm, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(
            {"seed": seed, "kept_epoch": 1, "choice_scores": scores, "epoch_train_loss": [0.5, train_loss]}, handle
        )


def test_the_split_is_disjoint_and_each_seed_draws_the_same_rows_for_both_arms(tmp_path):
    splits = study_overfit.read_splits(_imdb(tmp_path))
    assert [len(splits[k][1]) for k in ("pool", "choice", "test")] == [700, 500, 800]
    texts = [set(splits[k][0]) for k in ("pool", "choice", "test")]
    assert not texts[0] & texts[1] and not texts[0] & texts[2] and not texts[1] & texts[2]
    one = study_overfit.training_subset(splits["pool"], 1)
    assert len(one[1]) == 250 and one == study_overfit.training_subset(splits["pool"], 1)
    assert one != study_overfit.training_subset(splits["pool"], 2)
    with pytest.raises(SystemExit, match="needs columns text and label and 2000 rows"):
        study_overfit.read_splits(_imdb(tmp_path, rows=100))
    with pytest.raises(SystemExit, match="does not exist"):
        study_overfit.read_splits(str(tmp_path / "missing.csv"))


def test_sse_is_tuned_at_the_chosen_regularisation_and_its_final_seeds_wait_for_the_gates(tmp_path):
    records = tmp_path / "records"
    first = list(study_overfit.jobs(str(records)))
    assert first[-1] is None and len(first) == 2 * len(overfit_plan.BASELINE_GRID) + 1
    for i, arm in enumerate(overfit_plan.BASELINE_GRID):
        for seed in overfit_plan.TUNING_SEEDS:
            _fake(records, arm, seed, accuracy=0.8 if "d0.2" in arm and "lr0.0001" in arm else 0.7)
    jobs = [job for job in study_overfit.jobs(str(records)) if job is not None]
    sse_arms = {arm for _, arm, _ in jobs if arm.startswith("sse")}
    assert sse_arms == set(overfit_plan.sse_grid(0.2, 0.05)) and len(sse_arms) == 6
    baseline = overfit_plan.baseline_arm(1e-4, 0.2, 0.05)
    assert [seed for _, arm, seed in jobs if arm == baseline][2:] == list(overfit_plan.FINAL_SEEDS)
    for arm in sse_arms:
        for seed in overfit_plan.TUNING_SEEDS:
            _fake(records, arm, seed, accuracy=0.81 if "p0.1-lr5e-05" in arm else 0.75)
    for seed in overfit_plan.FINAL_SEEDS:
        _fake(records, baseline, seed, accuracy=0.8, train_loss=0.5)  # does not memorise: the gates fail
    chosen = overfit_plan.sse_arm(5e-5, 0.1, 0.2, 0.05)
    after = list(study_overfit.jobs(str(records)))
    assert None not in after and not [job for job in after if job[1] == chosen and job[2] in overfit_plan.FINAL_SEEDS]
    for seed in overfit_plan.FINAL_SEEDS:
        _fake(records, baseline, seed, accuracy=0.8)
    finals = [job for job in study_overfit.jobs(str(records)) if job[1] == chosen and job[2] not in (101, 102)]
    assert finals == [("imdb-250", chosen, seed) for seed in overfit_plan.FINAL_SEEDS]


def test_the_epoch_is_kept_on_accuracy_with_nll_then_the_earlier_epoch_breaking_ties():
    scores = [{"accuracy": 0.8, "nll": 0.5}, {"accuracy": 0.82, "nll": 0.6}, {"accuracy": 0.82, "nll": 0.4}]
    assert overfit_rules.select_epoch(scores) == 2
    assert overfit_rules.select_epoch(scores[:2] + [{"accuracy": 0.82, "nll": 0.6}]) == 1


def test_the_gates_read_the_over_fitting_and_the_learning_of_the_baseline(tmp_path):
    runs = []
    for seed in overfit_plan.FINAL_SEEDS:
        _fake(tmp_path, "b", seed, accuracy=0.8, nll=0.45, last_nll=0.45 + (0.06 if seed <= 15 else 0.01))
        runs.append(study_overfit.load_record(str(tmp_path), "b", seed))
    verdict = overfit_rules.gates(runs)
    assert verdict["overfit_seeds"] == 15 and verdict["valid"]
    runs[0]["choice_scores"][-1]["nll"] = 0.46
    assert overfit_rules.gates(runs)["overfit_seeds"] == 14 and not overfit_rules.gates(runs)["valid"]
    runs[0]["choice_scores"][-1]["nll"] = 0.6
    for run in runs:
        run["choice_scores"][0]["accuracy"] = 0.65
    assert not overfit_rules.gates(runs)["learns"]


def test_the_decision_rule_confirms_refutes_or_stays_inconclusive():
    rng = np.random.default_rng(0)
    small = list(rng.normal(0, 0.001, 20))
    confirmed = overfit_rules.decision([2.0 + d * 100 for d in small], small)
    assert confirmed["verdict"] == "confirmed" and confirmed["accuracy"]["ahead"] == 20
    by_nll = overfit_rules.decision([d * 100 for d in small], [-0.05 + d for d in small])
    assert by_nll["verdict"] == "confirmed" and by_nll["scaled_nll"]["ahead"] == 20
    assert overfit_rules.decision([d * 100 for d in small], small)["verdict"] == "refuted"
    wide = list(rng.normal(0, 3, 20))
    assert overfit_rules.decision(wide, small)["verdict"] == "inconclusive"
    assert overfit_rules.decision([d * 100 for d in small], [d * 50 for d in small])["verdict"] == "inconclusive"


def test_the_kept_epoch_weights_score_later_splits_exactly_as_that_epoch_scored(tmp_path, tiny_model_dir):
    rows = sentiment_rows(96)
    texts, labels = [(r["sentence"],) for r in rows], [int(r["label"] == "positive") for r in rows]
    train, choice = (texts[:64], labels[:64]), (texts[64:], labels[64:])
    out = finetune(
        tiny_model_dir,
        train,
        {"choice": choice},
        num_labels=2,
        max_length=32,
        seed=3,
        learning_rate=1e-3,
        epochs=3,
        batch_size=16,
        warmup_ratio=0.1,
        weight_decay=0.01,
        output_dir=str(tmp_path / "run"),
        config_overrides={"hidden_dropout_prob": 0.3},
        training_overrides={"logging_strategy": "epoch"},
        kept_splits={"again": choice},
        keep=lambda epochs: 1,  # the second epoch, whatever the scores
    )
    assert len(out["loss_log"]) == 3  # one training-loss entry per epoch
    kept, epochs = np.asarray(out["kept_logits"]["again"]), [np.asarray(e["choice"]) for e in out["epoch_logits"]]
    assert np.abs(kept - epochs[1]).max() < 1e-6 < np.abs(kept - epochs[2]).max() / 100


def test_a_real_study_runs_tuning_gates_and_final_seeds_and_reports_a_verdict(tmp_path, tiny_model_dir, monkeypatch):
    data = _imdb(tmp_path)
    monkeypatch.setattr(overfit_plan, "EPOCHS", 2)
    monkeypatch.setattr(overfit_plan, "MAX_LENGTH", 32)
    monkeypatch.setattr(overfit_plan, "TUNING_SEEDS", (101,))
    monkeypatch.setattr(overfit_plan, "FINAL_SEEDS", (1, 2))
    monkeypatch.setattr(overfit_plan, "LEARNING_RATES", (1e-3,))
    monkeypatch.setattr(overfit_plan, "SSE_P", (0.1,))
    monkeypatch.setattr(
        overfit_plan,
        "BASELINE_GRID",
        {
            overfit_plan.baseline_arm(1e-3, 0.1, 0.01): dict(
                learning_rate=1e-3, dropout=0.1, weight_decay=0.01, sse_p=0.0
            )
        },
    )
    # a tiny random model neither learns nor memorises in 2 epochs: open the gates so the final seeds run
    monkeypatch.setattr(overfit_plan, "GATE_ACCURACY", 0.0)
    monkeypatch.setattr(overfit_plan, "GATE_NLL", 10.0)
    monkeypatch.setattr(overfit_plan, "GATE_TRAIN_LOSS", 10.0)
    monkeypatch.setattr(overfit_plan, "GATE_OVERFIT_NATS", -10.0)
    monkeypatch.setattr(overfit_plan, "GATE_OVERFIT_SEEDS", 0)
    records, study = str(tmp_path / "records"), str(tmp_path / "study")
    study_overfit.work(data, records, study, poll_seconds=0, model_dir=tiny_model_dir)
    sse = overfit_plan.sse_arm(1e-3, 0.1, 0.1, 0.01)
    record = study_overfit.load_record(records, sse, 2)
    assert len(record["choice_scores"]) == 2 and record["kept_epoch"] in (1, 2)
    assert len(record["test_margins"]) == 800 and len(record["choice_margins"]) == 500
    assert record["sse_stats"]["input"]["tokens_swapped"] > 0 and record["settings"]["sse_p"] == 0.1
    assert len(record["epoch_train_loss"]) == 2 and 0 <= record["truncated_share"]["test"] <= 1
    labels = study_overfit.read_splits(data)["test"][1]
    assert overfit_rules.test_accuracy(record, labels) == pytest.approx(record["test_scores"]["accuracy"], abs=1e-6)
    text = overfit_report.report(data, records, figures=str(tmp_path))
    assert "| trivial: majority class / class prior |" in text and "The gates pass" in text
    assert "Trivial reference on the choice split: majority class" in text
    assert f"written by code commit(s) {record['code']['commit']}" in text
    assert "**Verdict by the pre-registered rule:" in text and "| test accuracy (points) |" in text
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "paired.png").stat().st_size > 0
