"""Scenarios on scikit-learn's bundled handwritten digits (UCI, 1,797 8x8 images, 10 classes)."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from pyrodps.data.corruptions import uniform_label_noise
from pyrodps.data.dataset import SelectionProblem
from pyrodps.errors import ValidationError, check_fraction, check_positive_int


def carve_meta(
    y: np.ndarray, per_class: int, num_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices ``range(len(y))`` into ``per_class`` meta indices per class and the rest."""
    meta = []
    for c in range(num_classes):
        members = np.flatnonzero(y == c)
        if members.shape[0] <= per_class:
            raise ValidationError("meta_per_class", f"class {c} has only {members.shape[0]} examples, asked {per_class}")
        meta.append(rng.choice(members, size=per_class, replace=False))
    meta_idx = np.sort(np.concatenate(meta))
    rest = np.setdiff1d(np.arange(y.shape[0]), meta_idx)
    return meta_idx, rest


def digits_label_noise(
    noise_rate: float = 0.4, meta_per_class: int = 5, test_fraction: float = 0.3, seed: int = 0
) -> SelectionProblem:
    """Digits with uniform label noise.

    A stratified test split (``test_fraction``), then ``meta_per_class`` clean examples per class
    carved from the training part as the meta set; the remaining training points get
    :func:`~pyrodps.data.corruptions.uniform_label_noise` at ``noise_rate``. Features are pixel
    intensities scaled to [0, 1].
    """
    check_fraction("noise_rate", noise_rate)
    check_positive_int("meta_per_class", meta_per_class)
    check_fraction("test_fraction", test_fraction, open_low=True)
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    y = y.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)
    rng = np.random.default_rng(seed)
    meta_idx, rest = carve_meta(y_tr, meta_per_class, 10, rng)
    y_noisy, corrupted = uniform_label_noise(y_tr[rest], noise_rate, 10, rng)
    return SelectionProblem(
        name="digits-label-noise",
        x_train=x_tr[rest],
        y_train=y_noisy,
        x_meta=x_tr[meta_idx],
        y_meta=y_tr[meta_idx],
        x_test=x_te,
        y_test=y_te,
        num_classes=10,
        corrupted=corrupted,
    )
