"""Scenarios on scikit-learn's bundled handwritten digits (UCI, 1,797 8x8 images, 10 classes).

Inputs are the 64 pixel intensities scaled to [0, 1], float32, shape ``(n, 64)``; labels int64.
The pipeline shared by all scenarios is described in :mod:`pyrodps.data.scenarios`.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from pyrodps.data import scenarios
from pyrodps.data.scenarios import OPEN_SET_HELD_OUT, Source, carve_meta
from pyrodps.models.problem import SelectionProblem

__all__ = [
    "DIGITS",
    "carve_meta",
    "digits_binary_imbalance",
    "digits_feature_noise",
    "digits_imbalance",
    "digits_input_swap",
    "digits_label_noise",
    "digits_off_domain",
    "digits_open_set",
    "digits_pair_flip",
    "digits_source_noise",
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
    ``minority`` marks the 4s.

    Digits has only 180 nines, about 121 of them left for training at the default split, so at the
    default ``positive_ratio=0.995`` the training set holds those nines and a single 4 (the minimum
    :func:`~pyrodps.data.scenarios.binary_counts` keeps): digits cannot reach 25 minority points
    at 0.995. ``positive_ratio=0.83`` or lower keeps at least 25 fours (0.83: 121 nines, 25 fours);
    ``mnist1d-binary-imbalance`` keeps 26 fours at 0.995."""
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


def digits_pair_flip(
    noise_rate: float = 0.45, meta_per_class: int = 5, test_fraction: float = 0.3, seed: int = 0
) -> SelectionProblem:
    """Digits with structured pair-flip label noise: in each class ``c``, ``round(noise_rate · n_c)``
    training labels changed to ``c + 1 mod 10``; inputs kept. The default 0.45 is the "pair-45 %"
    setting of Co-teaching (Han et al. 2018): most of each class still carries its own label."""
    return scenarios.pair_flip(DIGITS, noise_rate, meta_per_class, test_fraction, seed)


def digits_open_set(
    noise_rate: float = 0.3, held_out_classes: tuple[int, ...] = OPEN_SET_HELD_OUT, meta_per_class: int = 5,
    test_fraction: float = 0.3, seed: int = 0,
) -> SelectionProblem:
    """Digits with open-set noise: the digits ``held_out_classes`` leave the label set (the problem
    has the other classes, relabelled ``0 .. C' - 1`` in order; meta and test sets hold only them) and
    their images enter the training set with uniformly random in-set labels, a ``noise_rate``
    fraction of it (at most about 0.39 with the default three held-out digits)."""
    return scenarios.open_set(DIGITS, noise_rate, held_out_classes, meta_per_class, test_fraction, seed)


def digits_input_swap(
    noise_rate: float = 0.5, meta_per_class: int = 5, test_fraction: float = 0.3, seed: int = 0
) -> SelectionProblem:
    """Digits with ``noise_rate`` of the training images replaced by the image of a random training
    digit of another class; labels kept, so they no longer match the image (:func:`~pyrodps.data.corruptions.input_swap`).
    At the default 0.5 each class's own inputs still carry its label more often than any other."""
    return scenarios.input_swap_scenario(DIGITS, noise_rate, meta_per_class, test_fraction, seed)


def digits_source_noise(
    noise_rate: float = 0.3, num_sources: int = 3, meta_per_class: int = 5, test_fraction: float = 0.3, seed: int = 0,
) -> SelectionProblem:
    """Digits pooled from ``num_sources`` sources of unequal quality: uniform label noise at rates
    ``noise_rate · 2s / (S - 1)`` (default 0, 0.3, 0.6), the source of every point as ``weight_groups``
    (:func:`~pyrodps.data.scenarios.source_noise`): the case for per-point times per-source weights."""
    return scenarios.source_noise(DIGITS, noise_rate, num_sources, meta_per_class, test_fraction, seed)
