"""Scenarios on MNIST-1D (Greydanus 2020): 10 classes of 1-D signals of length 40.

The data are generated locally from the ``mnist1d`` package's digit templates with its default
settings (``mnist1d.data.make_dataset``, generation seed 42; nothing is downloaded). ``num_samples``
sets the total before the test split (``num_samples // 10`` per class). Inputs are float32 of shape
``(n, 1, 40)`` (one channel, so a network chooser picks a 1-D convolutional net), standardised with
the training part's scalar mean and standard deviation; labels int64. The scenario ``seed`` drives
the splits and corruptions, not the generation. The pipeline shared by all scenarios is described
in :mod:`pyrodps.data.scenarios`.
"""

from __future__ import annotations

import functools
import random

import numpy as np

from pyrodps.data import scenarios
from pyrodps.data.scenarios import Source
from pyrodps.errors import check_positive_int
from pyrodps.models.problem import SelectionProblem

__all__ = [
    "load_mnist1d_xy",
    "mnist1d_binary_imbalance",
    "mnist1d_feature_noise",
    "mnist1d_imbalance",
    "mnist1d_label_noise",
    "mnist1d_off_domain",
]

MIN_SAMPLES = 100


@functools.lru_cache(maxsize=4)
def _generate(num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    # make_dataset reseeds numpy's and Python's global generators: leave the caller's untouched.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)[:, None, :]
    y = np.concatenate([d["y"], d["y_test"]]).astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_mnist1d_xy(num_samples: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """All generated MNIST-1D signals: float32 ``(n, 1, 40)`` and int64 labels (read-only arrays,
    cached per ``num_samples``)."""
    num_samples = check_positive_int("num_samples", num_samples, minimum=MIN_SAMPLES)
    return _generate(num_samples)


def _source(num_samples: int) -> Source:
    num_samples = check_positive_int("num_samples", num_samples, minimum=MIN_SAMPLES)
    return Source("mnist1d", functools.partial(load_mnist1d_xy, num_samples), num_classes=10, standardise=True)


def mnist1d_label_noise(
    noise_rate: float = 0.4, meta_per_class: int = 5, test_fraction: float = 0.3, seed: int = 0,
    noise_kind: str = "uniform", num_samples: int = 5000,
) -> SelectionProblem:
    """MNIST-1D with label noise on ``noise_rate`` of the training points, ``noise_kind``
    ``"uniform"`` or ``"class-dependent"`` (pair flip ``c -> c + 1 mod 10``)."""
    src = _source(num_samples)
    return scenarios.label_noise(src, noise_rate, noise_kind, meta_per_class, test_fraction, seed)


def mnist1d_imbalance(
    imbalance_ratio: float = 100.0, meta_per_class: int = 5, test_fraction: float = 0.3, seed: int = 0,
    num_samples: int = 5000,
) -> SelectionProblem:
    """MNIST-1D with a long-tailed training set (class 0 the head, class 9 the tail, head/tail
    ratio ``imbalance_ratio``); ``minority`` marks the classes below the median count."""
    return scenarios.imbalance(_source(num_samples), imbalance_ratio, meta_per_class, test_fraction, seed)


def mnist1d_binary_imbalance(
    positive_ratio: float = 0.995, meta_per_class: int = 5, test_fraction: float = 0.3, seed: int = 0,
    num_samples: int = 5000,
) -> SelectionProblem:
    """MNIST-1D 4 (label 0) versus 9 (label 1) with a ``positive_ratio`` fraction of 9s in
    training; ``minority`` marks the 4s."""
    return scenarios.binary_imbalance(_source(num_samples), positive_ratio, meta_per_class, test_fraction, seed)


def mnist1d_feature_noise(
    noise_rate: float = 0.2, feature_noise_kind: str = "gaussian", meta_per_class: int = 5,
    test_fraction: float = 0.3, seed: int = 0, num_samples: int = 5000,
) -> SelectionProblem:
    """MNIST-1D with ``noise_rate`` of the training inputs corrupted (``"gaussian"`` or ``"occlusion"``)."""
    src = _source(num_samples)
    return scenarios.feature_noise_scenario(src, noise_rate, feature_noise_kind, meta_per_class, test_fraction, seed)


def mnist1d_off_domain(
    noise_rate: float = 0.2, meta_per_class: int = 5, test_fraction: float = 0.3, seed: int = 0,
    num_samples: int = 5000,
) -> SelectionProblem:
    """MNIST-1D with ``noise_rate`` of the training inputs replaced by position-shuffled versions."""
    return scenarios.off_domain_scenario(_source(num_samples), noise_rate, meta_per_class, test_fraction, seed)
