"""Scenarios on MNIST-1D (Greydanus 2020): 10 classes of 1-D signals of length 40.

The data are generated locally from the ``mnist1d`` package's digit templates with its default
settings (``mnist1d.data.make_dataset``, generation seed 42; nothing is downloaded). ``num_samples``
sets the total before the test split (``num_samples // 10`` per class; for the binary-imbalance
scenario, which generates only the digits 4 and 9, ``num_samples // 2`` of each). Generation runs the
package's own code with its linear interpolation called as ``np.interp`` directly, which is what
``scipy.interpolate.interp1d`` delegates to for such data, so the signals are bit-identical and about
twice as fast to make (~0.6 ms each). Inputs are float32 of shape
``(n, 1, 40)`` (one channel, so a network chooser picks a 1-D convolutional net), standardised with
the training part's scalar mean and standard deviation; labels int64. The scenario ``seed`` drives
the splits and corruptions, not the generation. The pipeline shared by all scenarios is described
in :mod:`pyrodps.data.scenarios`.
"""

from __future__ import annotations

import functools
import importlib
import random

import numpy as np

from pyrodps.data import scenarios
from pyrodps.data.scenarios import BINARY_CLASSES, OPEN_SET_HELD_OUT, Source
from pyrodps.errors import check_positive_int
from pyrodps.models.problem import SelectionProblem

__all__ = [
    "load_mnist1d_xy",
    "mnist1d_binary_imbalance",
    "mnist1d_feature_noise",
    "mnist1d_imbalance",
    "mnist1d_input_swap",
    "mnist1d_label_noise",
    "mnist1d_off_domain",
    "mnist1d_open_set",
    "mnist1d_pair_flip",
    "mnist1d_source_noise",
]

MIN_SAMPLES = 100
# 25 class-4 training points at positive_ratio 0.995 need ~4,900 class-9 ones: 7,500 of each generated
# leave 5,245 nines and 26 fours for training at the default split (test_fraction 0.3, 5 meta per class)
BINARY_NUM_SAMPLES = 15000


def _fast_interpolate(x: np.ndarray, n: int, _slow=None) -> np.ndarray:
    """``mnist1d.transform.interpolate`` without building an ``interp1d``: for a one-dimensional
    float64 ``x`` that object just calls ``np.interp`` on the same grids (same values, bit for bit)."""
    if x.ndim != 1 or x.dtype != np.float64:
        return _slow(x, n)
    return np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(x)), x)


@functools.lru_cache(maxsize=8)
def _generate(num_samples: int, classes: tuple[int, ...] | None = None, fast: bool = True) -> tuple[np.ndarray, np.ndarray]:
    from mnist1d.data import get_dataset_args, get_templates, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    templates = get_templates()
    if classes is not None:  # only these digits: num_samples // len(classes) of each
        rows = list(classes)
        templates = {"x": templates["x"][rows], "t": templates["t"], "y": templates["y"][rows]}
    transform = importlib.import_module("mnist1d.transform")  # the package re-exports a function by that name
    slow = transform.interpolate
    # make_dataset reseeds numpy's and Python's global generators: leave the caller's untouched.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        if fast:
            transform.interpolate = functools.partial(_fast_interpolate, _slow=slow)
        d = make_dataset(args, template=templates)
    finally:
        transform.interpolate = slow
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


def load_mnist1d_binary_xy(num_samples: int = BINARY_NUM_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """Generated MNIST-1D signals of the digits 4 and 9 only, ``num_samples // 2`` of each: float32
    ``(n, 1, 40)`` and int64 labels 4 or 9 (read-only arrays, cached per ``num_samples``). Not a
    subset of :func:`load_mnist1d_xy`: the generator's draws go to these two digits alone."""
    num_samples = check_positive_int("num_samples", num_samples, minimum=MIN_SAMPLES)
    return _generate(num_samples, BINARY_CLASSES)


def _source(num_samples: int, binary: bool = False) -> Source:
    num_samples = check_positive_int("num_samples", num_samples, minimum=MIN_SAMPLES)
    load = load_mnist1d_binary_xy if binary else load_mnist1d_xy
    return Source("mnist1d", functools.partial(load, num_samples), num_classes=10, standardise=True)


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
    num_samples: int = BINARY_NUM_SAMPLES,
) -> SelectionProblem:
    """MNIST-1D 4 (label 0) versus 9 (label 1) with a ``positive_ratio`` fraction of 9s in
    training; ``minority`` marks the 4s. Only 4s and 9s are generated, ``num_samples // 2`` of each
    (:func:`load_mnist1d_binary_xy`); the default 15,000 leaves 5,245 nines and so 26 fours in the
    training set at ``positive_ratio=0.995`` (generation ~9 s, once per process), and a test set of
    4,500 (half 4s)."""
    src = _source(num_samples, binary=True)
    return scenarios.binary_imbalance(src, positive_ratio, meta_per_class, test_fraction, seed)


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


def mnist1d_pair_flip(
    noise_rate: float = 0.45, meta_per_class: int = 5, test_fraction: float = 0.3, seed: int = 0,
    num_samples: int = 5000,
) -> SelectionProblem:
    """MNIST-1D with structured pair-flip label noise: in each class ``c``,
    ``round(noise_rate · n_c)`` training labels changed to ``c + 1 mod 10``; inputs kept. The
    default 0.45 is the "pair-45 %" setting of Co-teaching (Han et al. 2018): most of each class
    still carries its own label."""
    return scenarios.pair_flip(_source(num_samples), noise_rate, meta_per_class, test_fraction, seed)


def mnist1d_open_set(
    noise_rate: float = 0.3, held_out_classes: tuple[int, ...] = OPEN_SET_HELD_OUT, meta_per_class: int = 5,
    test_fraction: float = 0.3, seed: int = 0, num_samples: int = 5000,
) -> SelectionProblem:
    """MNIST-1D with open-set noise: the digits ``held_out_classes`` leave the label set (the problem
    has the other classes, relabelled ``0 .. C' - 1`` in order; meta and test sets hold only them) and
    their signals enter the training set with uniformly random in-set labels, a ``noise_rate``
    fraction of it (at most about 0.38 with the default three held-out digits)."""
    src = _source(num_samples)
    return scenarios.open_set(src, noise_rate, held_out_classes, meta_per_class, test_fraction, seed)


def mnist1d_input_swap(
    noise_rate: float = 0.5, meta_per_class: int = 5, test_fraction: float = 0.3, seed: int = 0,
    num_samples: int = 5000,
) -> SelectionProblem:
    """MNIST-1D with ``noise_rate`` of the training signals replaced by the signal of a random
    training point of another class; labels kept, so they no longer match the signal (:func:`~pyrodps.data.corruptions.input_swap`).
    At the default 0.5 each class's own inputs still carry its label more often than any other."""
    return scenarios.input_swap_scenario(_source(num_samples), noise_rate, meta_per_class, test_fraction, seed)


def mnist1d_source_noise(
    noise_rate: float = 0.3, num_sources: int = 3, meta_per_class: int = 5, test_fraction: float = 0.3, seed: int = 0,
    num_samples: int = 5000,
) -> SelectionProblem:
    """MNIST-1D pooled from ``num_sources`` sources of unequal quality: uniform label noise at rates
    ``noise_rate · 2s / (S - 1)`` (default 0, 0.3, 0.6), the source of every point as ``weight_groups``
    (:func:`~pyrodps.data.scenarios.source_noise`): the case for per-point times per-source weights."""
    return scenarios.source_noise(_source(num_samples), noise_rate, num_sources, meta_per_class, test_fraction, seed)
