"""recipes/evidence/compare.py: tables and plots over arms x seeds, and running the arms."""

from __future__ import annotations

import json
import os
import statistics

import pytest

from recipes.evidence import compare

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_run(directory, arm_value, seed, accuracy, losses, swap_rate):
    """A run directory as the recipes leave it: all_results.json and trainer_state.json."""
    directory.mkdir(parents=True)
    results = {
        "primary_metric": "eval_accuracy",
        "eval_accuracy": accuracy,
        "eval_loss": 1 - accuracy,
        "eval_runtime": 1.0,
        "eval_samples": 10,
        "train_loss": losses[-1],
        "sse_swap_rate": swap_rate,
        "train_samples_per_second": 100.0 + seed,
        "wall_time_s": 5.0,
        "seed": seed,
    }
    if arm_value:
        results["arm"] = arm_value
    (directory / "all_results.json").write_text(json.dumps(results))
    history = [{"step": 10 * (i + 1), "loss": loss} for i, loss in enumerate(losses)] + [
        {"step": 30, "eval_loss": 0.3}
    ]
    (directory / "trainer_state.json").write_text(json.dumps({"log_history": history}))


def test_collect_writes_mean_and_std_per_arm_and_a_plot(tmp_path):
    fake_run(tmp_path / "runs" / "baseline" / "seed-1", None, 1, 0.50, [0.9, 0.7, 0.6], 0.0)
    fake_run(tmp_path / "runs" / "baseline" / "seed-2", None, 2, 0.70, [0.8, 0.6, 0.5], 0.0)
    fake_run(tmp_path / "runs" / "sse" / "seed-1", None, 1, 0.80, [0.9, 0.8, 0.7], 0.1)
    fake_run(tmp_path / "elsewhere" / "x", "sse", 2, 0.90, [0.9, 0.7, 0.6], 0.1)  # arm named in all_results.json
    report = tmp_path / "report"
    summary = compare.main(
        ["collect", str(tmp_path / "runs"), str(tmp_path / "elsewhere" / "x"), "--output_dir", str(report)]
    )

    assert summary["metric"] == "eval_accuracy"
    baseline, sse = summary["arms"]["baseline"], summary["arms"]["sse"]
    assert baseline["runs"] == sse["runs"] == 2
    assert baseline["stats"]["eval_accuracy"]["mean"] == pytest.approx(0.6)
    assert baseline["stats"]["eval_accuracy"]["std"] == pytest.approx(statistics.stdev([0.5, 0.7]))
    assert sse["stats"]["eval_accuracy"]["mean"] == pytest.approx(0.85)
    assert "eval_runtime" not in summary["columns"] and "eval_samples" not in summary["columns"]
    table = (report / "comparison.md").read_text()
    assert "| baseline | 2 | 0.6 ± 0.14 |" in table and "| sse | 2 | 0.85 ± 0.071 |" in table
    written = json.loads((report / "comparison.json").read_text())["arms"]["sse"]
    assert written["seeds"] == [1, 2]
    assert all(not os.path.isabs(d) and (report / d / "all_results.json").is_file() for d in written["dirs"])
    assert (report / "comparison.png").read_bytes()[:8] == PNG_MAGIC
    assert compare.training_losses(str(tmp_path / "runs" / "sse" / "seed-1")) == [(10, 0.9), (20, 0.8), (30, 0.7)]


def test_collect_fails_clearly_on_a_directory_without_runs(tmp_path):
    with pytest.raises(FileNotFoundError, match="No all_results.json under"):
        compare.main(["collect", str(tmp_path), "--output_dir", str(tmp_path / "report")])


def test_run_arms_times_seeds_with_run_glue(tmp_path, tiny_model_dir, sentiment_files):
    out = tmp_path / "cmp"
    summary = compare.main(
        [
            "run",
            "--output_dir",
            str(out),
            "--seeds",
            "1",
            "2",
            "--arm",
            "baseline=--sse False",
            "--arm",
            "sse=--sse_p 0.4",
            "--",
            "--model_name_or_path",
            tiny_model_dir,
            "--train_file",
            sentiment_files["train"],
            "--validation_file",
            sentiment_files["validation"],
            "--max_steps",
            "2",
            "--logging_steps",
            "1",
            "--per_device_train_batch_size",
            "8",
            "--save_strategy",
            "no",
            "--report_to",
            "none",
            "--max_seq_length",
            "32",
            "--log_level",
            "warning",
        ]
    )
    assert set(summary["arms"]) == {"baseline", "sse"}
    assert all(summary["arms"][arm]["runs"] == 2 for arm in ("baseline", "sse"))
    assert summary["arms"]["baseline"]["stats"]["sse_swap_rate"]["mean"] == 0.0
    assert summary["arms"]["sse"]["stats"]["sse_swap_rate"]["mean"] == pytest.approx(0.4, abs=0.15)
    assert json.loads((out / "sse" / "seed-2" / "all_results.json").read_text())["arm"] == "sse"
    assert len(compare.training_losses(str(out / "sse" / "seed-1"))) == 2
    assert (out / "comparison.png").read_bytes()[:8] == PNG_MAGIC


def test_run_refuses_arguments_it_sets_itself(tmp_path):
    with pytest.raises(ValueError, match="sets --output_dir and --seed"):
        compare.main(["run", "--output_dir", str(tmp_path), "--", "--seed", "3"])
    with pytest.raises(ValueError, match="NAME=ARGS"):
        compare.parse_arm("--sse_p 0.1")
