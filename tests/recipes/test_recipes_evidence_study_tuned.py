"""The tuned study's bookkeeping on tiny local files: the carved split, the job graph and its choices, a real
run of the harness on a tiny BERT, and the report (trivial references, Holm, reliability plot)."""

import json
import math
import os
import subprocess

import numpy as np
import pandas as pd
import pytest

from recipe_helpers import sentiment_rows
from recipes.evidence import job_queue, study_tuned, study_tuned_report, tuned_comparisons, tuned_plan
from recipes.evidence.tuned_scores import carved_choice, select_epoch


def _glue_dir(tmp_path, rows=480):
    """<task>_train.csv / <task>_validation.csv for MRPC, RTE and CoLA in the real files' shapes."""
    directory = tmp_path / "glue"
    directory.mkdir()
    texts = [row["sentence"] for row in sentiment_rows(rows)]
    for task, columns in tuned_plan.TEXT_COLUMNS.items():
        label = (
            ["entailment" if i % 3 else "not_entailment" for i in range(rows)]
            if task == "rte"
            else [i % 3 > 0 for i in range(rows)]
        )
        frame = pd.DataFrame({**{c: [f"{t} {c} {i}" for i, t in enumerate(texts)] for c in columns}, "label": label})
        if task != "rte":
            frame["label"] = frame["label"].astype(int)
        frame.to_csv(directory / f"{task}_train.csv", index=False)
        frame.head(30).to_csv(directory / f"{task}_validation.csv", index=False)
    return directory


def test_carved_split_is_disjoint_reproducible_and_each_seed_draws_its_own_subset(tmp_path, monkeypatch):
    glue = _glue_dir(tmp_path)
    pool, carved, dev, names = study_tuned.read_task(str(glue), "rte")
    assert names == ["entailment", "not_entailment"]
    assert len(carved[1]) == tuned_plan.CARVED_SIZE and len(pool[1]) == 80 and len(dev[1]) == 30
    assert not set(carved[0]) & set(pool[0])
    assert study_tuned.read_task(str(glue), "rte")[1] == carved
    whole = study_tuned.training_subset(pool, "rte", 1)  # TRAIN_SIZE None: the whole pool, in the seed's order
    assert sorted(zip(*whole)) == sorted(zip(*pool)) and whole != pool
    monkeypatch.setitem(tuned_plan.TRAIN_SIZE, "rte", 50)
    one, two = study_tuned.training_subset(pool, "rte", 1), study_tuned.training_subset(pool, "rte", 2)
    assert len(one[1]) == 50 and one != two and one == study_tuned.training_subset(pool, "rte", 1)
    with pytest.raises(SystemExit, match="cola_train.csv does not exist"):
        (glue / "cola_train.csv").unlink()
        study_tuned.read_task(str(glue), "cola")


def _fake(records, task, arm, seed, carved_score, nll=0.5, train_size=32):
    """A record with only what the choices read: the carved scores of its epochs, the kept epoch and its size."""
    carved = dict.fromkeys(("accuracy", "acc_and_f1", "matthews_correlation"), carved_score)
    scores = [{"carved": {**carved, "nll": nll}, "dev": {}}]
    path = study_tuned.record_path(str(records), task, arm, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump({"seed": seed, "kept_epoch": 1, "epoch_scores": scores, "train_size": train_size}, handle)


def test_jobs_tune_the_learning_rate_first_then_wait_then_use_the_chosen_rate(tmp_path):
    records = tmp_path / "records"
    first = list(study_tuned.jobs(str(records)))
    lr_jobs = [job for job in first if job is not None]
    assert lr_jobs == [
        (t, a, 1, tuned_plan.BASELINE_ARMS[a]["learning_rate"])
        for t in tuned_plan.TASKS
        for a in tuned_plan.BASELINE_ARMS
    ]
    assert None in first  # everything else waits on the learning-rate choice
    for arm, score in zip(tuned_plan.BASELINE_ARMS, (0.6, 0.7, 0.65)):
        _fake(records, "mrpc", arm, 1, score)
    ready = [job for job in study_tuned.jobs(str(records)) if job is not None and job[0] == "mrpc"]
    assert ready[3:8] == [("mrpc", "baseline-lr5e-05", seed, 5e-5) for seed in tuned_plan.FINAL_SEEDS]
    assert ("mrpc", "sse-se-p0.05", 1, 5e-5) in ready and not any(
        job[1].startswith("sse-se") and job[2] > 1 for job in ready
    )


def test_regulariser_grids_run_only_on_tasks_whose_baseline_can_support_a_claim(tmp_path):
    records = tmp_path / "records"
    for task in ("mrpc", "rte"):
        for arm, score in zip(tuned_plan.BASELINE_ARMS, (0.6, 0.7, 0.65)):
            _fake(records, task, arm, 1, score)
    ready = [job for job in study_tuned.jobs(str(records)) if job is not None]
    assert ("rte", "baseline-lr5e-05", 5, 5e-5) in ready  # the tuned baseline still runs every seed
    assert not [job for job in ready if job[0] == "rte" and tuned_plan.family_of(job[1]) != "baseline"]
    assert ("mrpc", "sse-se-p0.05", 1, 5e-5) in ready
    assert tuned_plan.regularised("mrpc-n250") and not tuned_plan.regularised("rte")


def test_the_epoch_and_the_setting_are_chosen_on_the_carved_split_with_nll_breaking_ties():
    scores = [
        {"carved": {"accuracy": 0.7, "nll": 0.6}},
        {"carved": {"accuracy": 0.7, "nll": 0.5}},
        {"carved": {"accuracy": 0.6, "nll": 0.1}},
    ]
    assert select_epoch(scores, "rte") == 1
    records = {
        arm: {"kept_epoch": 1, "epoch_scores": [{"carved": {"matthews_correlation": s, "nll": n}}]}
        for arm, s, n in (("a", 0.3, 0.5), ("b", 0.4, 0.6), ("c", 0.4, 0.4))
    }
    assert carved_choice(records, "cola") == "c"


def test_a_claim_of_a_dead_worker_is_taken_over(tmp_path):
    job = ("rte", "baseline-lr2e-05", 1, 2e-5)
    assert job_queue.claim(str(tmp_path), job) is True
    assert job_queue.claim(str(tmp_path), job) is False  # this (live) process holds it
    (tmp_path / "claims" / "rte-baseline-lr2e-05-seed-1").write_text("999999999")
    assert job_queue.claim(str(tmp_path), job) is True


def test_a_real_run_records_every_epoch_and_the_report_shows_references_and_holm(
    tmp_path, tiny_model_dir, monkeypatch
):  # noqa: F811
    glue = _glue_dir(tmp_path, rows=432)
    monkeypatch.setattr(tuned_plan, "EPOCHS", 2)
    monkeypatch.setattr(tuned_plan, "FINAL_SEEDS", (1, 2))
    monkeypatch.setattr(tuned_plan, "TASKS", ("cola",))
    monkeypatch.setattr(tuned_plan, "FAMILIES", {"sse-se": {"sse-se-p0.1": {"sse_p": 0.1}}})
    records, study = str(tmp_path / "records"), str(tmp_path / "study")
    study_tuned.work(str(glue), records, study, poll_seconds=0, model_dir=tiny_model_dir)
    arms = sorted(os.listdir(os.path.join(records, "cola")))
    assert len(arms) == 4 and "sse-se-p0.1" in arms  # 3 learning rates and the one SSE setting
    sse = study_tuned.load_record(records, "cola", "sse-se-p0.1", 2)
    assert len(sse["epoch_scores"]) == 2 and sse["kept_epoch"] in (1, 2)
    assert len(sse["dev_margins"]) == 30 and len(sse["carved_margins"]) == tuned_plan.CARVED_SIZE
    assert sse["sse_stats"]["input"]["tokens_swapped"] > 0 and sse["code"]["sse_hf"]
    assert sse["train_size"] == 32 and sse["max_length"] >= 8
    study_tuned_report.write_labels(str(glue), records)
    text = open(study_tuned_report.report(records, str(tmp_path / "report" / "report.md"))).read()
    # the training rows are 2/3 class 1: always-1 scores 2/3 of dev; MCC of any constant is 0
    assert "| trivial reference (always '1'; class prior) | 0.0 | 66.7 |" in text
    assert "Seeds 1-2 for every row." in text and "| sse-se: sse-se-p0.1 |" in text
    rows = [line for line in text.splitlines() if line.startswith("| cola | sse-se-p0.1")]
    paired = [line for line in rows if line.count("|") == 11]  # one metric per row, with its family and Holm p
    # 4 metrics against the baseline (the primary family), then NLL, ECE and Brier with both arms temperature-scaled
    assert [line.split(" | ")[3] for line in paired] == ["primary", "nll", "ece", "brier", "nll", "ece", "brier"]
    assert all(
        line.split(" | ")[1] == "sse-se-p0.1 + TS" and line.split(" | ")[2].endswith(" + TS") for line in paired[4:]
    )
    assert [line.split(" | ")[8] for line in paired] == ["primary"] * 4 + ["exploratory"] * 3
    assert all(line.endswith("| n/a |") for line in paired[4:])  # exploratory: no adjusted p
    verdicts = [line for line in rows if line.count("|") == 9]  # one competitor per row, every metric in it
    assert len(verdicts) == 2 and verdicts[0].endswith("| none |") and "(Holm " in verdicts[0]
    assert " + TS |  | " in verdicts[1]  # scaling leaves the task metric as it is: no cell for it
    assert "| exploratory: " in verdicts[1] and "(p " in verdicts[1]  # exploratory: the unadjusted p, labelled
    assert "first step needs abs(t) >" in text and "| cola | baseline: baseline-lr" in text
    assert (tmp_path / "report" / "reliability-cola.png").stat().st_size > 0


def test_stsb_study_tunes_then_runs_seeds_in_sentence_transformer_trainer(tmp_path, monkeypatch):
    pytest.importorskip("sentence_transformers")
    from recipes.evidence import study_stsb
    from tiny_models import tiny_sentence_transformer

    texts = [row["sentence"] for row in sentiment_rows(440)]
    frame = pd.DataFrame(
        {"sentence1": texts, "sentence2": texts[1:] + texts[:1], "label": [f"{i % 51 / 10:.3f}" for i in range(440)]}
    )
    glue = tmp_path / "glue"
    glue.mkdir()
    frame.to_csv(glue / "stsb_train.csv", index=False)
    frame.head(40).to_csv(glue / "stsb_validation.csv", index=False)
    model_dir = str(tmp_path / "st")
    tiny_sentence_transformer(tmp_path / "st-src").save(model_dir)
    monkeypatch.setattr(study_stsb, "EPOCHS", 1)
    monkeypatch.setattr(study_stsb, "FINAL_SEEDS", (1, 2))
    monkeypatch.setattr(study_stsb, "SSE_ARMS", {"sse-se-p0.3": 0.3})
    records, study = str(tmp_path / "records"), str(tmp_path / "study")
    assert list(study_stsb.jobs(records))[-1] is None  # the rest waits on the learning rate
    job_queue.work(
        lambda: study_stsb.jobs(records),
        lambda job: os.path.isfile(study_stsb.record_path(records, job[1], job[2])),
        lambda job: study_stsb.run_job(str(glue), records, study, job, model_dir),
        study,
        0,
    )
    runs = study_stsb.load_records(records)
    base = study_stsb.choose(runs, list(study_stsb.BASELINE_ARMS))
    assert set(runs) == {*study_stsb.BASELINE_ARMS, "sse-se-p0.3"} and set(runs[base]) == {1, 2}
    sse = runs["sse-se-p0.3"][2]
    assert sse["sse_stats"]["input"]["tokens_swapped"] > 0 and len(sse["dev_cosines"]) == 40
    assert -1 <= sse["epoch_scores"][0]["dev"]["spearman"] <= 1
    row = study_stsb.comparison(records)
    assert row["left_arm"] == "sse-se-p0.3" and row["right_arm"] == base and 0 <= row["ahead"] <= 2


def test_the_learning_curve_is_regimes_of_one_task_each_tuned_with_only_sse_se(tmp_path):
    assert tuned_plan.base_task("mrpc-n250") == "mrpc" and tuned_plan.train_size("mrpc-n250") == 250
    assert tuned_plan.base_task("rte") == "rte" and tuned_plan.train_size("rte") == tuned_plan.TRAIN_SIZE["rte"]
    records = tmp_path / "records"
    for arm, score in zip(tuned_plan.BASELINE_ARMS, (0.7, 0.6, 0.65)):
        _fake(records, "mrpc-n250", arm, 1, score)
    ready = [job for job in study_tuned.jobs(str(records), ("mrpc-n250",), ("sse-se",)) if job is not None]
    assert {job[0] for job in ready} == {"mrpc-n250"}
    assert {tuned_plan.family_of(job[1]) for job in ready} == {"baseline", "sse-se"}
    assert ("mrpc-n250", "baseline-lr2e-05", 5, 2e-5) in ready and ("mrpc-n250", "sse-se-p0.1", 1, 2e-5) in ready
    pool = ([(f"s {i}",) for i in range(600)], [i % 2 for i in range(600)])
    assert len(study_tuned.training_subset(pool, "mrpc-n250", 3)[1]) == 250


def test_the_learning_curve_table_is_one_row_per_training_size_smallest_first(tmp_path):
    records = tmp_path / "records"
    for regime, size in (("mrpc", 3268), ("mrpc-n250", 250)):
        for arm, score in zip(tuned_plan.BASELINE_ARMS, (0.7, 0.6, 0.65)):
            _fake(records, regime, arm, 1, score, train_size=size)
    for arm, score in zip(tuned_plan.FAMILIES["sse-se"], (0.6, 0.75, 0.5)):
        _fake(records, "mrpc", arm, 1, score, train_size=3268)
    runs, labels = study_tuned_report.load(str(records))
    diff = {"task": "mrpc", "left": "sse-se", "right": "baseline", "seeds": [1, 2, 3, 4, 5], "ahead": 1}
    rows = [
        {**diff, "metric": "primary", "mean": -0.02, "low": -0.05, "high": 0.01, "p": 0.1, "p_holm": 0.5},
        {**diff, "metric": "nll", "mean": 0.01, "low": 0.0, "high": 0.02, "p": 0.3, "p_holm": 1.0},
    ]
    rows = [{**row, "family": "primary"} for row in rows]
    lines = study_tuned_report.curve_table(runs, labels, rows)
    assert lines[0].startswith(
        "| training rows | tuned lr | tuned baseline | chosen SSE-SE | SSE-SE minus baseline: f1 |"
    )
    assert lines[2] == "| 250 | 2e-05 | pending | pending | not run yet | not run yet | not run yet |  |"
    assert lines[3] == (
        "| 3268 | 2e-05 | pending | sse-se-p0.05 | -2.0 [-5.0, +1.0] (Holm 0.50) | "
        "+0.0100 [+0.0000, +0.0200] (Holm 1.00) | not run yet | 1/5 |"
    )
    assert len(lines) == 4  # mrpc-n1000 has no record: no row
    curve_grids = {line.split(" | ")[0] for line in study_tuned_report.tuning_table(runs, "mrpc-n250")[2:]}
    assert curve_grids == {"| baseline", "| sse-se"}  # the curve tunes SSE-SE only


def test_the_verdict_names_what_clears_0_05_on_holm_in_the_family_and_on_the_raw_p_when_exploratory():
    def row(right, metric, mean, p, p_holm, family="primary"):
        return {
            "task": "mrpc",
            "left": "sse-se",
            "right": right,
            "left_arm": "sse-se-p0.02",
            "right_arm": right,
            "metric": metric,
            "mean": mean,
            "low": mean - 0.01,
            "high": mean + 0.01,
            "p": p,
            "p_holm": p_holm,
            "family": family,
        }

    nan = float("nan")
    rows = [
        row("baseline", "primary", 0.02, 0.001, 0.01),  # higher score, significant after Holm: better
        row("baseline", "brier", 0.03, 0.004, 0.02),  # higher Brier, significant after Holm: worse
        row("baseline", "nll", 0.03, 0.01, 0.06),  # below 0.05 only before Holm: not named
        row("baseline", "ece", -0.01, 0.20, 0.30),  # not significant: not named
        row("neftune", "ece", -0.02, 0.04, nan, "exploratory"),  # lower ECE, raw p < 0.05: named, as exploratory
    ]
    lines = tuned_comparisons.verdict_table(rows)
    assert lines[2].startswith(
        "| mrpc | sse-se-p0.02 | baseline | +2.0 [+1.0, +3.0] (Holm 0.01) | +0.0300 [+0.0200, +0.0400] (Holm 0.06) | "
        "-0.0100 [-0.0200, +0.0000] (Holm 0.30) | +0.0300"
    )
    assert lines[2].endswith("| better on task metric; worse on Brier |")
    assert lines[3].startswith("| mrpc | sse-se-p0.02 | neftune |  |  | -0.0200 [-0.0300, -0.0100] (p 0.040) |")
    assert lines[3].endswith("| exploratory: better on ECE |") and len(lines) == 4


def _row(task, left, right, metric, p, **extra):
    return {"task": task, "left": left, "right": right, "metric": metric, "p": p, **extra}


def test_holm_adjusts_within_the_primary_family_only_and_every_other_comparison_stays_unadjusted():
    rows = [
        _row("mrpc", "sse-se", "baseline", "primary", 0.01),
        _row("mrpc", "sse-graph", "baseline", "nll", 0.02),
        _row("cola", "sse-se", "baseline", "brier", 0.04),
        _row("mrpc", "sse-se", "label-smoothing", "primary", 0.001),  # against another regulariser
        _row("mrpc-n1000", "sse-se", "baseline", "primary", 0.001),  # a curve regime
        _row("mrpc", "label-smoothing", "baseline", "primary", 0.001),  # no SSE arm
        _row("mrpc", "sse-se + TS", "baseline + TS", "nll", 0.001),  # both temperature-scaled
        _row("rte", "sse-se", "baseline", "primary", 0.001),  # a task whose regularisers did not run
        _row("stsb", "sse-se", "baseline", "spearman", 0.2, family="stsb"),  # another study's own family
    ]
    adjusted = tuned_comparisons.adjust_within_families(rows)
    assert [r["family"] for r in adjusted] == ["primary"] * 3 + ["exploratory"] * 5 + ["stsb"]
    # Holm over the 3 primary p only: 3 x 0.01, then max(0.03, 2 x 0.02), then max(0.04, 1 x 0.04)
    assert [round(r["p_holm"], 10) for r in adjusted[:3]] == [0.03, 0.04, 0.04]
    assert all(math.isnan(r["p_holm"]) for r in adjusted[3:8]) and adjusted[8]["p_holm"] == 0.2
    assert tuned_comparisons.p_cell(adjusted[3]) == "p 0.001" and tuned_comparisons.p_cell(adjusted[0]) == "Holm 0.03"


def _scored(seed, dev_margins, carved_margins, dev_labels, carved_labels, carved_score=0.7, **extra):
    """A record with real dev scores computed from its margins, and the carved scores the choices read."""
    from recipes.evidence.tuned_records import margins_to_logits
    from recipes.evidence.tuned_scores import split_scores

    dev = split_scores(margins_to_logits(dev_margins), np.array(dev_labels))
    carved = {**split_scores(margins_to_logits(carved_margins), np.array(carved_labels)), "acc_and_f1": carved_score}
    return {
        "seed": seed,
        "kept_epoch": 1,
        "epoch_scores": [{"carved": carved, "dev": dev}],
        "dev_margins": list(dev_margins),
        "carved_margins": list(carved_margins),
        **extra,
    }


def test_calibration_is_compared_with_both_arms_temperature_scaled_on_their_own_carved_split():
    rng = np.random.default_rng(0)
    dev_labels, carved_labels = list(rng.integers(0, 2, 60)), list(rng.integers(0, 2, 40))
    labels = {"names": ["0", "1"], "train_counts": [30, 70], "dev": dev_labels, "carved": carved_labels}

    def margins(truth, seed):
        noise = np.random.default_rng(seed).normal(0, 1.5, len(truth))
        return np.round(np.where(np.array(truth) == 1, 1.0, -1.0) + noise, 4)

    base, sse = {}, {}
    for seed in (1, 2, 3):
        dev, carved = margins(dev_labels, seed), margins(carved_labels, 10 + seed)
        base[seed] = _scored(seed, dev, carved, dev_labels, carved_labels)
        # the same model, twice as confident: temperature scaling takes the factor out exactly
        sse[seed] = _scored(seed, 2 * dev, 2 * carved, dev_labels, carved_labels)
    left, right = (
        ("sse-se" + tuned_comparisons.SCALED, "sse-se-p0.02", sse),
        ("baseline + TS", "baseline-lr0.0001", base),
    )
    for metric in ("nll", "ece", "brier"):
        row = tuned_comparisons.paired_row("mrpc", {"mrpc": labels}, left, right, metric)
        assert abs(row["mean"]) < 1e-6, (metric, row["mean"])  # both scaled: the same probabilities
        assert row["left_arm"] == "sse-se-p0.02 + TS" and row["right_arm"] == "baseline-lr0.0001 + TS"
    unscaled = tuned_comparisons.paired_row("mrpc", {"mrpc": labels}, ("sse-se", "sse-se-p0.02", sse), right, "nll")
    assert abs(unscaled["mean"]) > 0.01  # the unfair comparison: an unscaled arm against a scaled one differs


def _mrpc_runs(f1_gain, choice_gains, nll=0.5):
    """MRPC's learning-rate grid at seed 1 (lr 1e-4 wins on the carved split) and its 5 seeds, whose dev F1 and
    acc_and_f1 clear the trivial reference by the given points; with the labels the references come from."""
    dev_labels, carved_labels = [1] * 7 + [0] * 3, [1, 0, 1, 1]
    labels = {"names": ["0", "1"], "train_counts": [30, 70], "dev": dev_labels, "carved": carved_labels}
    ref = study_tuned_report.reference(labels, "mrpc")
    runs = {"mrpc": {}}
    for arm, score in zip(tuned_plan.BASELINE_ARMS, (0.6, 0.65, 0.7)):
        runs["mrpc"][arm] = {}
        seeds = tuned_plan.FINAL_SEEDS if arm == "baseline-lr0.0001" else (1,)
        for seed, gain in zip(seeds, choice_gains):
            dev = {
                "f1": ref["f1"] + f1_gain / 100,
                "acc_and_f1": ref["acc_and_f1"] + gain / 100,
                "accuracy": 0.8,
                "nll": nll,
                "ece": 0.1,
                "brier": 0.3,
            }
            runs["mrpc"][arm][seed] = {
                "seed": seed,
                "kept_epoch": 1,
                "epoch_scores": [{"carved": {"acc_and_f1": score, "nll": 0.6}, "dev": dev}],
                "dev_margins": [0.5] * 10,
                "carved_margins": [0.5, -0.5, 0.5, 0.5],
            }
    return runs, {"mrpc": labels}


def test_the_gate_table_shows_every_learned_rule_the_page_has_used():
    # MRPC's history: F1 alone clears the constant answer by less than 5 points, the choice metric by more
    runs, labels = _mrpc_runs(3.0, [6.0, 6.5, 7.0, 5.5, 6.0])
    lines = study_tuned_report.gate_table(runs, labels)
    assert lines[2].startswith("| mrpc | f1 +3.0 | acc_and_f1 +6.2 [+5.5, +6.9] | yes |")
    assert lines[2].endswith("| did not learn | learned | learned |")
    # a gain of a few points with a tight interval: the STS-B rule calls it learned, the page's rule does not
    runs, labels = _mrpc_runs(0.8, [2.4, 2.0, 2.8, 2.2, 2.6])
    assert study_tuned_report.gate_table(runs, labels)[2].endswith("| did not learn | did not learn | learned |")
    # dev NLL above the class prior's fails the page's rules whatever the margin
    runs, labels = _mrpc_runs(9.0, [9.0] * 5, nll=0.9)
    assert study_tuned_report.gate_table(runs, labels)[2].endswith("| no | did not learn | did not learn | learned |")


def test_the_fit_table_reads_the_last_epochs_training_loss_and_counts_seeds_whose_carved_nll_rose():
    runs, _ = _mrpc_runs(3.0, [6.0] * 5)
    for seed, record in runs["mrpc"]["baseline-lr0.0001"].items():
        log = [[step, 1.0 if step <= 20 else 0.2 + 0.1 * seed] for step in range(5, 31, 5)]
        record.update(steps=30, epochs=3, train_loss_log=json.dumps(log) if seed == 1 else log)
        carved = [0.6, 0.5, 0.55 if seed <= 2 else 0.45]  # seeds 1-2 rose by the last epoch, 3-5 still falling
        record["epoch_scores"] = [{"carved": {"acc_and_f1": 0.7, "nll": n}, "dev": {}} for n in carved]
        record["kept_epoch"] = 2 if seed <= 2 else 3
    lines = study_tuned_report.fit_table(runs)
    # last epoch: steps 25 and 30 (after step 20 of 30); mean over seeds of 0.2 + 0.1 x seed = 0.5
    assert lines[2] == "| mrpc | baseline: baseline-lr0.0001 | 0.50 | 2/5 | 3/5 |" and len(lines) == 3


def test_holm_power_gives_the_critical_t_and_a_power_that_simulation_confirms():
    from scipy import stats

    from recipes.evidence import holm_power

    assert holm_power.first_step_t(1, 5) == pytest.approx(2.776, abs=1e-3)  # t(0.975, 4 df), any table
    assert holm_power.first_step_t(85, 5) == pytest.approx(9.88, abs=0.01)
    assert holm_power.power(0.0, 1.0, 16, 5) == pytest.approx(0.05 / 16, rel=1e-6)  # no gain: the test's size
    rng = np.random.default_rng(0)
    draws = rng.normal(1.0, 2.0, size=(40_000, 5))
    t = draws.mean(axis=1) / (draws.std(axis=1, ddof=1) / np.sqrt(5))
    for family in (1, 4):
        simulated = float((np.abs(t) > stats.t.ppf(1 - 0.05 / family / 2, 4)).mean())
        assert holm_power.power(1.0, 2.0, family, 5) == pytest.approx(simulated, abs=0.01)
    with pytest.raises(ValueError, match="sd must be positive"):
        holm_power.power(1.0, 0.0, 1, 5)
    # in the report, an arm identical to the baseline on every seed (no spread, no t) shows no power, not a crash
    same = {
        **_row("mrpc", "sse-se", "baseline", "primary", 1.0),
        "family": "primary",
        "seeds": [1, 2],
        "low": 0,
        "high": 0,
    }
    lines = study_tuned_report.power_table([same])
    assert lines[2].startswith("| unadjusted | 1 | 12.71 |") and lines[2].endswith("| n/a |")
    with pytest.raises(ValueError, match="seeds at least 2"):
        holm_power.first_step_t(1, 1)


def test_the_report_says_in_bold_when_records_come_from_more_than_one_code_version():
    def record(commit, transformers):
        return {"code": {"commit": commit, "transformers": transformers}}

    one = {"cola": {"baseline-lr0.0001": {1: record("a" * 40, "5.24.0"), 2: record("a" * 40, "5.24.0")}}}
    lines = study_tuned_report.version_table(one)
    assert (
        lines[0].startswith("| commit |")
        and lines[2] == "| aaaaaaaaaaaa | 5.24.0 | 2 | cola/baseline-lr0.0001/1, cola/baseline-lr0.0001/2 |"
    )
    mixed = {"cola": {"baseline-lr0.0001": {1: record("a" * 40, "5.24.0"), 2: record("a" * 40, "5.25.0")}}}
    lines = study_tuned_report.version_table(mixed)
    assert lines[0].startswith("**These records come from 2 code versions") and len(lines) == 6


def test_a_rerun_is_compared_with_its_record_margin_by_margin(tmp_path):
    from recipes.evidence import tuned_rerun_check

    def write(folder, commit, dev_margins, kept_epoch=2):
        record = {
            "task": "cola",
            "arm": "sse-se-p0.05",
            "seed": 2,
            "kept_epoch": kept_epoch,
            "epoch_scores": [{"dev": {"nll": 0.6}}, {"dev": {"nll": 0.5}}],
            "carved_margins": [0.5, -1.25],
            "dev_margins": dev_margins,
            "code": {"commit": commit * 40, "transformers": "5.25.0"},
        }
        path = tmp_path / folder / "cola" / "sse-se-p0.05" / "seed-2.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))

    write("ledger", "a", [0.1, 0.2, -0.3])
    write("same", "b", [0.1, 0.2, -0.3])
    write("moved", "b", [0.1, 0.25, -0.3], kept_epoch=1)
    same = tuned_rerun_check.table(str(tmp_path / "ledger"), str(tmp_path / "same"))
    assert (
        same[2]
        == "| cola/sse-se-p0.05/2 | aaaaaaa / transformers 5.25.0 | bbbbbbb / transformers 5.25.0 | same | identical | 0 | 0.0000 |"
    )
    moved = tuned_rerun_check.table(str(tmp_path / "ledger"), str(tmp_path / "moved"))
    assert moved[2].endswith("| differs | identical | 0 | 0.0500 |")


def test_a_worker_stops_when_the_code_under_it_moves_to_another_commit(tmp_path):
    from recipes.evidence import code_version

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "study.py").write_text("A = 1\n")
    git("add", "study.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    started = code_version.read_code_version(str(tmp_path))
    code_version.check_unchanged(started, str(tmp_path))  # the same commit: the worker goes on
    (tmp_path / "study.py").write_text("A = 2\n")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "two")
    with pytest.raises(RuntimeError, match="changed from commit .* frozen worktree"):
        code_version.check_unchanged(started, str(tmp_path))
    assert started["commit"] and "+dirty" not in started["commit"]


def test_the_queue_checks_before_each_job_it_takes(tmp_path):
    done, checks = [], []
    jobs = [("cola", "a", 1), ("cola", "b", 1)]
    job_queue.work(
        lambda: jobs,
        lambda job: job in done,
        done.append,
        str(tmp_path),
        poll_seconds=0,
        before_each=lambda: checks.append(len(done)),
    )
    assert done == jobs and checks == [0, 1]  # once before each job, before it runs
