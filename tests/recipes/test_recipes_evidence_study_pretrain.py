"""The pre-training studies' bookkeeping: their two designs, the corpus files, the pilot's table and the report."""

import json

import pandas as pd
import pytest

from recipes.evidence import study_pretrain
from recipes.evidence.study_pretrain import DESIGNS


def _write_run(folder, results, history):
    folder.mkdir(parents=True)
    (folder / "all_results.json").write_text(json.dumps(results))
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": history}))


def test_report_shows_the_train_heldout_gap_and_each_seed(tmp_path):
    for arm, seed, perplexity, final_loss, accuracy in [
        ("baseline", 1, 600.0, 6.30, 0.60),
        ("baseline", 2, 620.0, 6.40, 0.62),
        ("sse-se-p0.1", 1, 590.0, 6.50, 0.61),
        ("sse-se-p0.1", 2, 610.0, 6.60, 0.63),
    ]:
        _write_run(
            tmp_path / "runs" / arm / f"seed-{seed}",
            {"arm": arm, "seed": seed, "perplexity": perplexity, "mlm_eval_loss": 6.4, "test_accuracy": accuracy},
            [{"step": 10, "loss": 9.0}, {"step": 20, "loss": final_loss}, {"step": 20, "train_loss": 7.0}],
        )
    table = study_pretrain.report(str(tmp_path))
    baseline = next(line for line in table.splitlines() if line.startswith("| baseline |"))
    assert [cell.strip() for cell in baseline.strip("|").split("|")][1:4] == ["2", "610 ± 14", "6.35 ± 0.071"]
    assert "| 2 | 620.00 / 610.00 | 0.6200 / 0.6300 |" in table
    assert (tmp_path / "pretrain.md").read_text() == table


def test_report_pairs_the_design_sse_arm_by_seed_with_a_confidence_interval(tmp_path):
    values = {  # seed -> (baseline perplexity, SSE perplexity, baseline accuracy, SSE accuracy)
        1: (20.0, 18.0, 0.80, 0.81),
        2: (22.0, 21.0, 0.79, 0.78),
        3: (21.0, 18.0, 0.82, 0.84),
    }
    for seed, (base_ppl, sse_ppl, base_acc, sse_acc) in values.items():
        for arm, ppl, acc in (("baseline", base_ppl, base_acc), ("sse-se-p0.05", sse_ppl, sse_acc)):
            _write_run(
                tmp_path / "runs" / arm / f"seed-{seed}",
                {"arm": arm, "seed": seed, "perplexity": ppl, "mlm_eval_loss": 3.0, "test_accuracy": acc},
                [{"step": 5, "loss": 2.0}],
            )
    table = study_pretrain.report(str(tmp_path), sse_arm="sse-se-p0.05")
    row = next(line for line in table.splitlines() if line.startswith("| held-out MLM perplexity |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert float(cells[1]) == pytest.approx(-2.0)  # diffs -2, -1, -3
    low, high = (float(x) for x in cells[2].strip("[]").split(","))
    assert low == pytest.approx(-2.0 - 4.303 * 1.0 / 3**0.5, abs=1e-2) and high == pytest.approx(
        -2.0 + 2.484, abs=1e-2
    )
    assert cells[3] == "3 of 3"
    accuracy = next(line for line in table.splitlines() if line.startswith("| sentiment test accuracy"))
    assert [cell.strip() for cell in accuracy.strip("|").split("|")][3] == "2 of 3"  # +1, -1, +2 points


def test_write_text_takes_the_rows_asked_for_one_review_per_line(tmp_path):
    pd.DataFrame({"text": ["first<br />line  one", "second\n review", "third"], "label": [0, 1, 0]}).to_csv(
        tmp_path / "train-1000.csv", index=False
    )
    path = study_pretrain.write_text(str(tmp_path), "train-1000", (1, 3), "part.txt")
    assert open(path, encoding="utf-8").read() == "second review\nthird\n"
    path = study_pretrain.write_text(str(tmp_path), "train-1000", (0, 1), "part.txt")
    assert open(path, encoding="utf-8").read() == "first line one\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part.txt", "train-1000.csv"]  # no scratch file left


def test_pilot_held_out_text_lies_outside_every_split_the_continued_study_uses():
    design = DESIGNS["checkpoint"]
    start, stop = study_pretrain.PILOT_HELDOUT_ROWS
    assert start >= 250 > design.corpus_rows  # train-250 is the first 250 pool rows; the corpus its first 100
    assert design.finetune_split == "train-250" and stop <= 1000


def test_the_designs_start_where_they_say_and_differ_only_by_the_arm_flags(tmp_path, monkeypatch):
    scratch = study_pretrain.mlm_argv(DESIGNS["scratch"], "t.txt", "h.txt", "baseline", 1, "out")
    assert "--model_name_or_path" not in scratch and "--model_type" in scratch
    # The checkpoint's folder comes from the optional package; any folder stands in for it here.
    monkeypatch.setattr(study_pretrain, "checkpoint_dir", lambda: str(tmp_path / "model"))
    design = DESIGNS["checkpoint"]
    base = study_pretrain.mlm_argv(design, "t.txt", "h.txt", "baseline", 2, "out")
    sse = study_pretrain.mlm_argv(design, "t.txt", "h.txt", design.sse_arm, 2, "out")
    assert base[base.index("--model_name_or_path") + 1] == str(tmp_path / "model")
    assert [a for a in base if a not in ("--sse", "False")] == [a for a in sse if a not in ("--sse_p", "0.05")]
    assert base[base.index("--seed") + 1] == "2" and design.sse_arm == "sse-se-p0.05"


def test_pilot_refuses_the_scratch_design(tmp_path):
    with pytest.raises(SystemExit, match="only the --start checkpoint design"):
        study_pretrain.pilot(DESIGNS["scratch"], str(tmp_path), str(tmp_path / "records"), "1e-4")


def test_pilot_table_gives_each_epochs_mean_training_loss_beside_its_heldout_loss(tmp_path):
    history = [
        {"epoch": 0.5, "loss": 4.0, "step": 5},
        {"epoch": 1.0, "loss": 3.0, "step": 10},
        {"epoch": 1.0, "eval_loss": 3.25, "step": 10},
        {"epoch": 1.5, "loss": 2.0, "step": 15},
        {"epoch": 2.0, "loss": 1.0, "step": 20},
        {"epoch": 2.0, "eval_loss": 3.5, "step": 20},
        {"epoch": 2.0, "train_loss": 2.5, "step": 20},
    ]
    _write_run(tmp_path / "pilot", {"arm": "baseline", "seed": 0, "eval_loss": 3.5}, history)
    table = study_pretrain.pilot_table(str(tmp_path / "pilot"))
    assert "| 1 | 3.500 | 3.250 |" in table and "| 2 | 1.500 | 3.500 |" in table
    assert (tmp_path / "pilot" / "pilot.md").read_text() == table


def test_report_compares_each_arm_with_the_fine_tune_that_had_no_pretraining(tmp_path):
    for seed, direct in ((1, 0.80), (2, 0.81), (4, 0.90)):  # seed 4 has no pre-trained counterpart
        _write_run(
            tmp_path / "direct" / f"seed-{seed}", {"arm": "baseline", "seed": seed, "test_accuracy": direct}, []
        )
    for seed, base, sse in ((1, 0.82, 0.83), (2, 0.80, 0.82)):
        for arm, accuracy in (("baseline", base), ("sse-se-p0.05", sse)):
            _write_run(
                tmp_path / "runs" / arm / f"seed-{seed}",
                {"arm": arm, "seed": seed, "perplexity": 150.0, "mlm_eval_loss": 5.0, "test_accuracy": accuracy},
                [{"step": 5, "loss": 4.0}],
            )
    table = study_pretrain.report(str(tmp_path), "sse-se-p0.05", str(tmp_path / "direct"))
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.count("|") == 6}
    assert "| baseline | 2 | +0.50 |" in rows["baseline"] and "1 of 2 |" in rows["baseline"]  # +2, -1 points
    assert "| sse-se-p0.05 | 2 | +2.00 |" in rows["sse-se-p0.05"] and "2 of 2 |" in rows["sse-se-p0.05"]


def test_a_learning_rate_outside_the_pilot_is_a_clear_error_not_ignored(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        study_pretrain.main(["run", "--start", "checkpoint", "--learning_rate", "1e-4", "--study_dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--learning_rate is for the pilot step only" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing was written
