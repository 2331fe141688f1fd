"""The tuned study's bookkeeping on tiny local files: the carved split, the job graph and its choices, a real
run of the harness on a tiny BERT, and the report (trivial references, Holm, reliability plot)."""

import json
import os
import subprocess

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
    rows = [line for line in text.splitlines() if line.startswith("| cola | sse-se-p0.1 |")]
    paired = [line for line in rows if line.count("|") == 10]  # one metric per row, with its Holm column
    # 4 metrics against the baseline, then NLL and ECE against the baseline after temperature scaling
    assert [line.split(" | ")[3] for line in paired] == ["primary", "nll", "ece", "brier", "nll", "ece"]
    assert [" + TS |" in line for line in paired] == [False] * 4 + [True] * 2
    verdicts = [line for line in rows if line.count("|") == 9]  # one competitor per row, every metric in it
    assert len(verdicts) == 2 and verdicts[0].endswith("| no difference shown |")
    assert " + TS |  | " in verdicts[1]  # scaling leaves the task metric as it is: no cell for it
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
        {**diff, "metric": "primary", "mean": -0.02, "low": -0.05, "high": 0.01, "p_holm": 0.5},
        {**diff, "metric": "nll", "mean": 0.01, "low": 0.0, "high": 0.02, "p_holm": 1.0},
    ]
    lines = study_tuned_report.curve_table(runs, labels, rows)
    assert lines[0].startswith(
        "| training rows | tuned lr | tuned baseline | chosen SSE-SE | SSE-SE minus baseline (Holm p): f1 |"
    )
    assert lines[2] == "| 250 | 2e-05 | pending | pending | not run yet | not run yet | not run yet |  |"
    assert lines[3] == (
        "| 3268 | 2e-05 | pending | sse-se-p0.05 | -2.0 [-5.0, +1.0] (0.50) | "
        "+0.0100 [+0.0000, +0.0200] (1.00) | not run yet | 1/5 |"
    )
    assert len(lines) == 4  # mrpc-n1000 has no record: no row
    curve_grids = {line.split(" | ")[0] for line in study_tuned_report.tuning_table(runs, "mrpc-n250")[2:]}
    assert curve_grids == {"| baseline", "| sse-se"}  # the curve tunes SSE-SE only


def test_the_verdict_names_what_survives_holm_and_which_way():
    def row(right, metric, mean, p_holm):
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
            "p_holm": p_holm,
        }

    rows = [
        row("baseline", "primary", 0.02, 0.01),  # higher score, significant: better
        row("baseline", "brier", 0.03, 0.02),  # higher Brier, significant: worse
        row("baseline", "ece", -0.01, 0.30),  # not significant: not named
        row("neftune", "ece", -0.02, 0.04),  # lower ECE, significant: better
    ]
    lines = tuned_comparisons.verdict_table(rows)
    assert lines[2].startswith(
        "| mrpc | sse-se-p0.02 | baseline | +2.0 [+1.0, +3.0] (0.01) |  | -0.0100 [-0.0200, +0.0000] (0.30) | +0.0300"
    )
    assert lines[2].endswith("| better on task metric; worse on Brier |")
    assert lines[3].startswith("| mrpc | sse-se-p0.02 | neftune |  |  | -0.0200")
    assert lines[3].endswith("| better on ECE |") and len(lines) == 4


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
