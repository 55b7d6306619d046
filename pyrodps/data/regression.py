"""Regression scenarios with gross outliers among the training targets.

Two sources, both installed with scikit-learn (no download):

* ``friedman-outliers``: Friedman's first benchmark function (``make_friedman1``: 10 uniform
  features, 5 of them relevant, ``y = 10 sin(π x_1 x_2) + 20 (x_3 - 0.5)² + 10 x_4 + 5 x_5 + noise``),
  ``num_samples`` points with Gaussian target noise of standard deviation ``noise``;
* ``diabetes-outliers``: the diabetes data (real, 442 patients, 10 features, a disease-progression
  score one year on).

The pipeline, with one ``np.random.default_rng(seed)`` after the test split:

1. split off a random ``test_fraction`` test set (clean);
2. carve ``meta_size`` random points from the rest as the clean meta set;
3. standardise every feature and the target with the mean and standard deviation of the
   non-test part (meta and training points, before any corruption). This is a fixed change of
   units, not information given to the methods: afterwards one target unit is one standard
   deviation of the clean targets, so ``outlier_scale`` reads in those units;
4. replace exactly ``round(outlier_rate · n)`` of the remaining training targets, chosen at
   random, by gross outliers ``y + s · outlier_scale`` with a random sign ``s = ±1``
   (``corrupted`` marks them). Features are untouched. The test and meta sets stay clean.

Targets are float32 one-dimensional arrays; the problem has ``num_classes=None``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.datasets import load_diabetes, make_friedman1
from sklearn.model_selection import train_test_split

from pyrodps.errors import ValidationError, check_fraction, check_positive, check_positive_int
from pyrodps.models.problem import SelectionProblem

__all__ = ["diabetes_outliers", "friedman_outliers", "outlier_targets", "regression_outliers"]


def outlier_targets(
    y: np.ndarray, rate: float, scale: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Shift exactly ``round(rate · n)`` targets, chosen at random, by ``± scale`` (random sign).
    Returns ``(targets with outliers, corrupted mask)``; ``y`` itself is not modified."""
    check_fraction("outlier_rate", rate, open_high=True)
    check_positive("outlier_scale", scale)
    n = y.shape[0]
    chosen = rng.permutation(n)[: round(rate * n)]
    signs = rng.choice(np.array([-1.0, 1.0]), size=chosen.shape[0])
    y_out = y.copy()
    y_out[chosen] = y[chosen] + (signs * scale).astype(y.dtype)
    mask = np.zeros(n, dtype=bool)
    mask[chosen] = True
    return y_out, mask


def _standardise(fit: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    """``arrays`` standardised (per column for 2-D) with the mean and sd of ``fit``, as float32."""
    mean, sd = fit.mean(axis=0), fit.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return [((a - mean) / sd).astype(np.float32) for a in arrays]


def regression_outliers(
    name: str,
    load: Callable[[], tuple[np.ndarray, np.ndarray]],
    outlier_rate: float,
    meta_size: int,
    test_fraction: float,
    outlier_scale: float,
    seed: int,
) -> SelectionProblem:
    """The pipeline of the module docstring on the clean ``(x, y)`` that ``load()`` returns."""
    check_fraction("outlier_rate", outlier_rate)
    check_positive_int("meta_size", meta_size)
    check_fraction("test_fraction", test_fraction, open_low=True)
    check_positive("outlier_scale", outlier_scale)
    check_positive_int("seed", seed, minimum=0)
    x, y = load()
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=test_fraction, random_state=seed)
    if meta_size >= x_rest.shape[0]:
        raise ValidationError(
            "meta_size", f"the training part has only {x_rest.shape[0]} points, asked {meta_size} for the meta set"
        )
    rng = np.random.default_rng(seed)
    meta_idx = np.sort(rng.choice(x_rest.shape[0], size=meta_size, replace=False))
    train_idx = np.setdiff1d(np.arange(x_rest.shape[0]), meta_idx)
    x_rest, x_test = _standardise(x_rest, x_rest, x_test)
    y_rest, y_test = _standardise(y_rest, y_rest, y_test)
    y_train, corrupted = outlier_targets(y_rest[train_idx], outlier_rate, outlier_scale, rng)
    return SelectionProblem(
        name=name, x_train=x_rest[train_idx], y_train=y_train, x_meta=x_rest[meta_idx],
        y_meta=y_rest[meta_idx], x_test=x_test, y_test=y_test, num_classes=None, corrupted=corrupted,
    )


def friedman_outliers(
    outlier_rate: float = 0.3, num_samples: int = 1000, noise: float = 1.0, meta_size: int = 50,
    test_fraction: float = 0.3, outlier_scale: float = 5.0, seed: int = 0,
) -> SelectionProblem:
    """Friedman #1 regression (``num_samples`` points, target noise sd ``noise``, drawn from
    ``seed``) with ``outlier_rate`` of the training targets shifted by ``± outlier_scale`` clean
    target sds; a clean meta set of ``meta_size`` points (module docstring)."""
    check_positive_int("num_samples", num_samples, minimum=2)
    try:
        noise = float(noise)
    except (TypeError, ValueError):
        raise ValidationError("noise", f"must be a number, got {noise!r}") from None
    if not 0.0 <= noise < float("inf"):
        raise ValidationError("noise", f"must be a finite number >= 0, got {noise!r}")
    check_positive_int("seed", seed, minimum=0)

    def load() -> tuple[np.ndarray, np.ndarray]:
        return make_friedman1(n_samples=num_samples, n_features=10, noise=noise, random_state=seed)

    return regression_outliers("friedman-outliers", load, outlier_rate, meta_size, test_fraction,
                               outlier_scale, seed)


def diabetes_outliers(
    outlier_rate: float = 0.3, meta_size: int = 50, test_fraction: float = 0.3, outlier_scale: float = 5.0,
    seed: int = 0,
) -> SelectionProblem:
    """The diabetes data (442 patients) with ``outlier_rate`` of the training targets shifted by
    ``± outlier_scale`` clean target sds; a clean meta set of ``meta_size`` points (module docstring)."""
    return regression_outliers("diabetes-outliers", lambda: load_diabetes(return_X_y=True), outlier_rate,
                               meta_size, test_fraction, outlier_scale, seed)
