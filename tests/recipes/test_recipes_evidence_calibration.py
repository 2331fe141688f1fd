"""Calibration metrics, temperature scaling and the multiple-comparison statistics of the tuned study."""

import math

import numpy as np
import pytest
from scipy import stats

from recipes.evidence import calibration
from recipes.evidence.holm import holm, paired_p


def test_ece_brier_and_nll_match_hand_computed_values():
    probs = np.array([[0.1, 0.9], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    labels = np.array([1, 0, 0, 1])
    # confidences 0.9, 0.8, 0.6, 0.5 fall in four different 15-wide bins; correct: yes, no, yes, no (argmax 0 for the tie)
    expected_ece = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.6) + abs(0 - 0.5)) / 4
    assert calibration.ece(probs, labels) == pytest.approx(expected_ece)
    assert calibration.brier(probs, labels) == pytest.approx(np.mean([0.02, 1.28, 0.32, 0.5]))
    assert calibration.nll(probs, labels) == pytest.approx(-np.mean(np.log([0.9, 0.2, 0.6, 0.5])))


def test_reliability_bins_hold_every_example_once_and_a_perfect_model_has_zero_ece():
    rng = np.random.default_rng(0)
    probs = calibration.softmax(rng.normal(size=(500, 2)) * 3)
    labels = (rng.random(500) < probs[:, 1]).astype(int)
    rows = calibration.reliability(probs, labels)
    assert sum(row["count"] for row in rows) == 500
    assert all(0.5 <= row["confidence"] <= 1 for row in rows)
    sure = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert calibration.ece(sure, np.array([1, 0])) == 0.0


def test_temperature_scaling_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4000, 2)) * 4
    labels = np.array([rng.choice(2, p=row) for row in calibration.softmax(logits, 2.5)])
    temperature = calibration.fit_temperature(logits, labels)
    assert temperature == pytest.approx(2.5, rel=0.1)
    assert calibration.nll(calibration.softmax(logits, temperature), labels) < calibration.nll(
        calibration.softmax(logits), labels
    )


def test_paired_p_is_the_paired_t_test_and_holm_adjusts_step_down():
    a, b = [0.61, 0.64, 0.60, 0.66, 0.63], [0.60, 0.61, 0.60, 0.62, 0.60]
    assert paired_p([x - y for x, y in zip(a, b)]) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert paired_p([0.1, 0.1]) == 0.0 and paired_p([0.0, 0.0]) == 1.0 and math.isnan(paired_p([0.3]))
    # Holm: sorted 0.01, 0.02, 0.04 times 3, 2, 1 -> 0.03, 0.04, 0.04 (monotone), nan kept out of the family
    assert holm([0.04, 0.01, math.nan, 0.02]) == pytest.approx([0.04, 0.03, math.nan, 0.04], nan_ok=True)
    assert holm([0.5, 0.9]) == [1.0, 1.0]
