"""Ways to corrupt a clean training set, each returning the ground-truth mask of what it changed."""

from __future__ import annotations

import numpy as np

from pyrodps.errors import check_fraction


def uniform_label_noise(
    y: np.ndarray, rate: float, num_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Relabel exactly ``round(rate · n)`` points, chosen at random, each to a class drawn uniformly
    from the *other* ``C - 1`` classes. Returns ``(noisy labels, corrupted mask)``."""
    check_fraction("noise_rate", rate, open_high=True)
    n = y.shape[0]
    flip = rng.permutation(n)[: int(round(rate * n))]
    y_noisy = y.copy()
    shift = rng.integers(1, num_classes, size=flip.shape[0])
    y_noisy[flip] = (y[flip] + shift) % num_classes
    mask = np.zeros(n, dtype=bool)
    mask[flip] = True
    return y_noisy, mask
