"""Scenarios on scikit-learn's bundled handwritten digits (UCI, 1,797 8x8 images, 10 classes).

Inputs are the 64 pixel intensities scaled to [0, 1], float32, shape ``(n, 64)``; labels int64.
The pipeline shared by all scenarios is described in :mod:`pyrodps.data.scenarios`.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from pyrodps.data import scenarios
from pyrodps.data.scenarios import Source, carve_meta
from pyrodps.models.problem import SelectionProblem

__all__ = [
    "DIGITS",
    "carve_meta",
    "digits_binary_imbalance",
    "digits_feature_noise",
    "digits_imbalance",
    "digits_label_noise",
    "digits_off_domain",
    "load_digits_xy",
]


def load_digits_xy() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits: inputs ``/16`` as float32 ``(n, 64)``, labels int64."""
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y.astype(np.int64)


DIGITS = Source("digits", load_digits_xy, num_classes=10)


def digits_label_noise(
    noise_rate: float = 0.4, meta_per_class: int = 5, test_fraction: float = 0.3, seed: int = 0,
    noise_kind: str = "uniform",
) -> SelectionProblem:
    """Digits with label noise on ``noise_rate`` of the training points, ``noise_kind`` ``"uniform"``
    (to one of the other classes at random) or ``"class-dependent"`` (pair flip ``c -> c + 1 mod 10``)."""
    return scenarios.label_noise(DIGITS, noise_rate, noise_kind, meta_per_class, test_fraction, seed)


def digits_imbalance(
    imbalance_ratio: float = 100.0, meta_per_class: int = 5, test_fraction: float = 0.3, seed: int = 0
) -> SelectionProblem:
    """Digits with a long-tailed training set (class 0 the head, class 9 the tail, head/tail ratio
    ``imbalance_ratio``); ``minority`` marks the classes below the median count."""
    return scenarios.imbalance(DIGITS, imbalance_ratio, meta_per_class, test_fraction, seed)


def digits_binary_imbalance(
    positive_ratio: float = 0.995, meta_per_class: int = 5, test_fraction: float = 0.3, seed: int = 0
) -> SelectionProblem:
    """Digits 4 (label 0) versus 9 (label 1) with a ``positive_ratio`` fraction of 9s in training;
    ``minority`` marks the 4s."""
    return scenarios.binary_imbalance(DIGITS, positive_ratio, meta_per_class, test_fraction, seed)


def digits_feature_noise(
    noise_rate: float = 0.2, feature_noise_kind: str = "gaussian", meta_per_class: int = 5,
    test_fraction: float = 0.3, seed: int = 0,
) -> SelectionProblem:
    """Digits with ``noise_rate`` of the training inputs corrupted (``"gaussian"`` or ``"occlusion"``)."""
    return scenarios.feature_noise_scenario(DIGITS, noise_rate, feature_noise_kind, meta_per_class, test_fraction, seed)


def digits_off_domain(
    noise_rate: float = 0.2, meta_per_class: int = 5, test_fraction: float = 0.3, seed: int = 0
) -> SelectionProblem:
    """Digits with ``noise_rate`` of the training inputs replaced by pixel-shuffled versions."""
    return scenarios.off_domain_scenario(DIGITS, noise_rate, meta_per_class, test_fraction, seed)
