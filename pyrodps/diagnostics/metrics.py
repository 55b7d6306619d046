"""Evaluation metrics: predictive scores by task (accuracy for classification, RMSE and MAE for
regression) and how well weights single out the corrupted points."""

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


def rmse(pred: np.ndarray, y: np.ndarray) -> float:
    """Root mean squared error of predictive means ``pred`` (shape ``(n,)``) against targets ``y``."""
    err = np.asarray(pred, dtype=np.float64).reshape(-1) - np.asarray(y, dtype=np.float64)
    return float(np.sqrt(np.mean(np.square(err))))


def mae(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean absolute error of predictive means ``pred`` (shape ``(n,)``) against targets ``y``."""
    err = np.asarray(pred, dtype=np.float64).reshape(-1) - np.asarray(y, dtype=np.float64)
    return float(np.mean(np.abs(err)))


def predictive_scores(pred: np.ndarray, y: np.ndarray, task: str) -> dict[str, float]:
    """The test metrics of a predictive summary ``pred`` against the targets ``y``.

    ``task="classification"``: ``pred`` holds class probabilities (or logits), shape ``(n, C)``;
    returns ``{"test_accuracy", "balanced_accuracy"}``. ``task="regression"``: ``pred`` holds
    predictive means, shape ``(n,)``; returns ``{"test_rmse", "test_mae"}``."""
    if task == "classification":
        return {"test_accuracy": accuracy(pred, y), "balanced_accuracy": balanced_accuracy(pred, y)}
    if task == "regression":
        return {"test_rmse": rmse(pred, y), "test_mae": mae(pred, y)}
    raise ValueError(f"unknown task {task!r}; expected 'classification' or 'regression'")


def trace_score(pred: np.ndarray, y: np.ndarray, task: str) -> float:
    """The one number a training trace records: the test accuracy (classification; ``pred`` may
    be logits) or the test RMSE (regression)."""
    return accuracy(pred, y) if task == "classification" else rmse(pred, y)


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
