"""The GLUE study's bookkeeping: the carved split, the job queue, the choice of the best arm, the report."""

import json
from pathlib import Path

import pandas as pd
import pytest

from recipes.evidence import study_glue, study_glue_report


def _glue_dir(tmp_path):
    """Tiny <task>_train.csv / <task>_validation.csv files in the shapes of the real GLUE CSVs."""
    directory = tmp_path / "glue"
    directory.mkdir()
    for task in study_glue.TASKS:
        label = [f"{i / 10:.1f}" for i in range(600)] if task == "stsb" else [i % 2 for i in range(600)]
        columns = (
            {"sentence": [f"s {i}" for i in range(600)]}
            if task == "cola"
            else {"sentence1": [f"a {i}" for i in range(600)], "sentence2": [f"b {i}" for i in range(600)]}
        )
        pd.DataFrame({**columns, "label": label}).to_csv(directory / f"{task}_train.csv", index=False)
        pd.DataFrame({**columns, "label": label}).head(40).to_csv(directory / f"{task}_validation.csv", index=False)
    return directory


def test_split_carves_a_disjoint_choice_split_reproducibly(tmp_path):
    glue = _glue_dir(tmp_path)
    counts = study_glue.split(str(glue), str(tmp_path / "a"))
    study_glue.split(str(glue), str(tmp_path / "b"))
    assert counts["rte"] == {"choice": 200, "train-300": 300, "dev": 40}
    for task in study_glue.TASKS:
        choice = pd.read_csv(tmp_path / "a" / task / "choice.csv", keep_default_na=False)
        train = pd.read_csv(tmp_path / "a" / task / "train-300.csv", keep_default_na=False)
        key = choice.columns[0]
        assert len(choice) == 200 and len(train) == 300 and not set(choice[key]) & set(train[key])
        again = pd.read_csv(tmp_path / "b" / task / "choice.csv", keep_default_na=False)
        assert choice[key].tolist() == again[key].tolist()
    with pytest.raises(FileNotFoundError, match="cola_train.csv does not exist"):
        (glue / "cola_train.csv").unlink()
        study_glue.split(str(glue), str(tmp_path / "c"))


def test_jobs_run_whole_arms_first_and_workers_share_one_queue(tmp_path):
    every = study_glue.jobs([1, 2], ["baseline", "sse-se-p0.1"], (0, 1))
    assert every[:8] == [(seed, "baseline", task) for seed in (1, 2) for task in study_glue.TASKS]
    assert study_glue.claim(str(tmp_path), "rte", "baseline", 1) is True
    assert study_glue.claim(str(tmp_path), "rte", "baseline", 1) is False  # another worker holds it
    assert study_glue.claim(str(tmp_path), "rte", "baseline", 2) is True


def _record(records, task, arm, seed, score, loss):
    metrics = study_glue_report.METRICS[task]
    results = {"arm": arm, "seed": seed, "eval_loss": loss, "predict_loss": loss}
    for split in ("eval", "predict"):
        results.update({f"{split}_{metric}": score for metric in metrics})
    target = Path(records) / task / arm / f"seed-{seed}"
    target.mkdir(parents=True)
    (target / "all_results.json").write_text(json.dumps(results))


def test_best_arm_is_chosen_on_the_choice_split_and_the_report_pairs_seeds(tmp_path):
    records = tmp_path / "records"
    gains = {"baseline": 0.0, "sse-se-p0.1": 0.02, "sse-se-p0.2": -0.01, "neftune-5": 0.05}
    for task in study_glue.TASKS:
        for arm, gain in gains.items():
            for seed in (1, 2, 3):
                _record(records, task, arm, seed, 0.6 + gain + seed / 100, 0.5 - gain)
    assert study_glue.best_sse_arm(str(records)) == "sse-se-p0.1"  # NEFTune is not an SSE arm
    text = study_glue_report.report(str(records), str(tmp_path / "report"))
    glue4 = text.split("#### glue4")[1].split("####")[0]
    row = next(line for line in glue4.splitlines() if line.startswith("| sse-se-p0.1 |"))
    assert "| 3 | 64.00 ± 1.00 | +2.00 [+2.00, +2.00], 3/3 | -3.00 [-3.00, -3.00], 0/3 |" in row
    rte = text.split("#### rte")[1].split("####")[0]
    assert "| 0.480 ± 0.000 | -0.020 [-0.020, -0.020], 3/3 |" in rte  # loss 0.02 lower on every seed
    assert (tmp_path / "report" / "paired-glue4.png").stat().st_size > 0


def test_fit_table_reads_each_runs_loss_curve(tmp_path):
    records = tmp_path / "records"
    for seed, final in ((1, 0.2), (2, 0.4)):
        _record(records, "cola", "baseline", seed, 0.5, 0.6)
        history = [{"step": 4, "loss": 0.7}, {"step": 8, "loss": final}, {"step": 8, "train_loss": 0.5}]
        (records / "cola" / "baseline" / f"seed-{seed}" / "trainer_state.json").write_text(
            json.dumps({"log_history": history})
        )
    assert "| cola | baseline | 2 | 0.700 | 0.300 | 0.000 |" in study_glue_report.fit_table(str(records))


def test_adaptive_rates_divide_by_the_tokens_the_constant_arm_saw_at_the_same_seed(tmp_path):
    records = tmp_path / "records"
    for arm, swapped, eligible, logged in (("sse-se-p0.2-adaptive", 30, 250, 0.12), ("sse-se-p0.2", 200, 1000, 0.2)):
        target = records / "rte" / arm / "seed-1"
        target.mkdir(parents=True)
        results = {
            "arm": arm,
            "seed": 1,
            "sse_tokens_swapped": swapped,
            "sse_tokens_eligible": eligible,
            "sse_swap_rate": logged,
        }
        (target / "all_results.json").write_text(json.dumps(results))
    assert "| rte | 1 | 0.1200 | 0.0300 |" in study_glue_report.adaptive_rates(str(records))
