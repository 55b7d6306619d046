"""Evaluation metrics: accuracy and how well weights single out the corrupted points."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def accuracy(probs_or_logits: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose arg-max is the label."""
    return float(np.mean(np.argmax(probs_or_logits, axis=1) == y))


def balanced_accuracy(probs_or_logits: np.ndarray, y: np.ndarray) -> float:
    """Mean over classes present in ``y`` of the per-class recall."""
    pred = np.argmax(probs_or_logits, axis=1)
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


def selection_auroc(weights: np.ndarray, corrupted: np.ndarray) -> float | None:
    """AUROC of ``-w`` as a score for "corrupted": 1 means every corrupted point has a lower weight
    than every clean one. ``None`` when only one group is present."""
    corrupted = np.asarray(corrupted, dtype=bool)
    if corrupted.all() or not corrupted.any():
        return None
    return float(roc_auc_score(corrupted, -np.asarray(weights, dtype=np.float64)))


def selection_average_precision(weights: np.ndarray, corrupted: np.ndarray) -> float | None:
    """Average precision of ``-w`` for finding the corrupted points."""
    corrupted = np.asarray(corrupted, dtype=bool)
    if corrupted.all() or not corrupted.any():
        return None
    return float(average_precision_score(corrupted, -np.asarray(weights, dtype=np.float64)))
