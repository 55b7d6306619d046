"""The training sets of the naive baselines, all trained with plain SGD (:mod:`pyrodps.baselines.sgd`).

* ``mixing``: train ∪ meta, unweighted.
* ``meta-only``: the meta set alone.
* ``dup-meta``: train ∪ meta with the meta set repeated ``ceil(N / M)`` times, so clean examples
  make up about half of the mix.
* ``oracle``: the training points the ground truth marks clean (``corrupted`` False) ∪ meta: what a
  perfect selector would train on (needs the problem's ``corrupted`` mask; without one, all points).
* ``class-balanced``: train ∪ meta like ``mixing``, each example's loss weighted by the inverse
  frequency of its class, ``w_i = n / (C · n_{y_i})`` over that set (mean weight 1): the
  "class-balanced loss" practitioners reach for first on imbalanced data (classification only).
* ``random-select``: a uniformly random subset of ``round(keep_fraction · N)`` training points ∪ meta
  (``pyrodps compare`` sets ``keep_fraction`` to the fraction BADS keeps, the effective sample size
  ``(Σ w)² / Σ w²`` of its posterior-mean weights over N).
"""

from __future__ import annotations

import math

import numpy as np

from pyrodps.errors import ValidationError, check_choice, check_fraction
from pyrodps.models.problem import SelectionProblem

NAIVE_METHODS = ("mixing", "meta-only", "dup-meta", "oracle", "class-balanced", "random-select")


def naive_training_set(
    problem: SelectionProblem, method: str, rng: np.random.Generator, keep_fraction: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and labels a naive baseline trains on."""
    check_choice("method", method, NAIVE_METHODS)
    xt, yt, xm, ym = problem.x_train, problem.y_train, problem.x_meta, problem.y_meta
    if method in ("mixing", "class-balanced"):
        return np.concatenate([xt, xm]), np.concatenate([yt, ym])
    if method == "meta-only":
        return xm, ym
    if method == "oracle":
        clean = np.ones(xt.shape[0], bool) if problem.corrupted is None else ~np.asarray(problem.corrupted, bool)
        return np.concatenate([xt[clean], xm]), np.concatenate([yt[clean], ym])
    if method == "dup-meta":
        reps = max(1, math.ceil(xt.shape[0] / xm.shape[0]))
        return np.concatenate([xt, *([xm] * reps)]), np.concatenate([yt, *([ym] * reps)])
    check_fraction("keep_fraction", keep_fraction, open_low=True, open_high=False)
    keep = rng.permutation(xt.shape[0])[: max(1, round(keep_fraction * xt.shape[0]))]
    return np.concatenate([xt[keep], xm]), np.concatenate([yt[keep], ym])


def class_balanced_weights(y: np.ndarray, num_classes: int | None) -> np.ndarray:
    """Inverse-frequency weights ``w_i = n / (C · n_{y_i})`` of the labels ``y`` (mean 1 over ``y``),
    ``C`` the number of classes present."""
    if num_classes is None:
        raise ValidationError("method", "class-balanced weights need class labels; this is a regression problem")
    y = np.asarray(y, dtype=np.int64)
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    present = int((counts > 0).sum())
    return y.shape[0] / (present * counts[y])


def kept_fraction(weights: np.ndarray) -> float:
    """Effective fraction of points a weighting keeps: ``(Σ w)² / (N Σ w²)``."""
    w = np.asarray(weights, dtype=np.float64)
    return float(w.sum() ** 2 / (w.shape[0] * np.square(w).sum()))
