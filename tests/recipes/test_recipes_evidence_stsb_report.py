"""The STS-B study's report section from hand-written records: the zero-shot reference, the tuning tables, and
the "did not learn" label when fine-tuning does not beat the checkpoint's own score beyond the seed spread."""

import json
import os

from recipes.evidence import stsb_report, study_stsb


def _record(records, arm, seed, carved, dev, lr=2e-5, p=0.0, swapped=0):
    """A record with what the report reads: two epochs, the second kept when its carved score is higher."""
    epochs = [
        {"carved": {"spearman": carved - 0.01, "pearson": 0.0}, "dev": {"spearman": dev - 0.05, "pearson": 0.5}},
        {"carved": {"spearman": carved, "pearson": 0.0}, "dev": {"spearman": dev, "pearson": dev - 0.02}},
    ]
    stats = {"input": {"tokens_seen": 2000, "tokens_eligible": 1000, "tokens_swapped": swapped}} if p else {}
    path = study_stsb.record_path(str(records), arm, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(
            {
                "seed": seed,
                "learning_rate": lr,
                "sse_p": p,
                "kept_epoch": 2,
                "epoch_scores": epochs,
                "sse_stats": stats,
            },
            handle,
        )


def _zero_shot(records, dev=0.867):
    os.makedirs(records, exist_ok=True)
    with open(os.path.join(records, "zero-shot.json"), "w") as handle:
        json.dump({"carved": {"spearman": 0.799, "pearson": 0.8}, "dev": {"spearman": dev, "pearson": 0.87}}, handle)


def _study(records, base_dev):
    """The lr grid (2e-5 wins on the carved split), the p grid (0.05 wins), then the final seeds of both."""
    for arm, lr in study_stsb.BASELINE_ARMS.items():
        _record(records, arm, 1, 0.86 if lr == 2e-5 else 0.84, base_dev[0], lr)
    for arm, p in study_stsb.SSE_ARMS.items():
        _record(records, arm, 1, 0.85 if p == 0.05 else 0.83, 0.86, p=p, swapped=50)
    for seed, dev in zip(study_stsb.FINAL_SEEDS[1:], base_dev[1:]):
        _record(records, "baseline-lr2e-05", seed, 0.86, dev)
        _record(records, "sse-se-p0.05", seed, 0.85, dev - 0.01, p=0.05, swapped=50)


def test_no_section_without_the_zero_shot_reference(tmp_path):
    assert stsb_report.section(str(tmp_path / "none")) == []


def test_a_fine_tune_below_the_zero_shot_score_did_not_learn(tmp_path):
    records = str(tmp_path / "runs")
    _zero_shot(records)
    _study(records, [0.861, 0.864, 0.870, 0.866, 0.862])
    text = "\n".join(stsb_report.section(records))
    assert (
        "Tuned baseline: **did not learn** (dev Spearman minus the zero-shot checkpoint's, seeds 1-5: -0.2 points"
        in text
    )
    assert "| zero-shot checkpoint (no training) | 86.7 | 87.0 | | | |" in text
    assert "| constant prediction (e.g. the training mean) | 0 (no ranking) |" in text
    assert "| baseline-lr2e-05 | 86.5 ± 0.4 | 84.5 ± 0.4 | 1,2,3,4,5 | 2,2,2,2,2 |  |" in text
    assert "| sse-se-p0.05 | 85.6 ± 0.4 |" in text and text.count("| 0.0500 |") == 1  # 250 of 5,000 eligible
    assert "| baseline-lr2e-05 | 2e-05 | 0 | 85.0, 86.0 | 2 | 86.1 | yes |" in text
    assert "The zero-shot checkpoint scores 79.9 on the carved split." in text
    assert "not complete yet" not in text


def test_a_fine_tune_above_the_zero_shot_score_on_every_seed_learned(tmp_path):
    records = str(tmp_path / "runs")
    _zero_shot(records, dev=0.80)
    _study(records, [0.861, 0.864, 0.870, 0.866, 0.862])
    assert "Tuned baseline: **learned** (" in "\n".join(stsb_report.section(records))


def test_an_unfinished_study_says_what_is_missing_and_labels_nothing(tmp_path):
    records = str(tmp_path / "runs")
    _zero_shot(records)
    _record(records, "baseline-lr1e-05", 1, 0.84, 0.861, 1e-5)
    text = "\n".join(stsb_report.section(records))
    assert "| baseline-lr5e-05 | | | not run yet | | | |" in text and "| sse-se-p0.1 | | | not run yet |" in text
    assert "Tuned baseline:" not in text and "not complete yet" in text
