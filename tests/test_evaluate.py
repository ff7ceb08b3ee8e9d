"""Metrics: the vectorised bootstrap gives scikit-learn's numbers, resample by resample."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from helpers.evaluate import evaluate_predictions, resampled_scores


def test_resampled_scores_equal_scikit_learn_on_every_resample():
    rng = np.random.default_rng(3)
    classes = ["refund", "card lost", "transfer", "rare"]
    gold = rng.choice(classes, size=41, p=[0.4, 0.3, 0.27, 0.03]).astype(object)
    pred = np.where(rng.random(41) < 0.6, gold, rng.choice(classes + ["no answer"], size=41)).astype(object)
    accuracies, f1s = resampled_scores(gold, pred, rounds=200, seed=5)
    idx = np.random.default_rng(5).integers(0, 41, size=(200, 41))  # the same resamples
    assert np.allclose(accuracies, [accuracy_score(gold[i], pred[i]) for i in idx])
    expected = [f1_score(gold[i], pred[i], average="macro", zero_division=0) for i in idx]
    assert np.allclose(f1s, expected)
    assert len(set(np.round(f1s, 6))) > 20  # resamples differ, so equal arrays mean equal counting


def test_intervals_hold_the_score_and_narrow_with_more_rows():
    small = evaluate_predictions("m", ["a", "b"] * 10, ["a", "b"] * 8 + ["b", "a"] * 2, ["a", "b"])
    large = evaluate_predictions("m", ["a", "b"] * 100, ["a", "b"] * 80 + ["b", "a"] * 20, ["a", "b"])
    for e in (small, large):
        assert e.accuracy_ci[0] < e.accuracy == 0.8 < e.accuracy_ci[1]
        assert e.macro_f1_ci[0] < e.macro_f1 < e.macro_f1_ci[1]
    assert large.accuracy_ci[1] - large.accuracy_ci[0] < small.accuracy_ci[1] - small.accuracy_ci[0]
