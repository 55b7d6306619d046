"""Ways to corrupt a clean training set, each returning the ground-truth mask of what it changed,
and the long-tail subsampling that makes a balanced training set imbalanced."""

from __future__ import annotations

import numpy as np

from pyrodps.errors import (
    ValidationError,
    check_choice,
    check_fraction,
    check_positive,
    check_positive_int,
)


def uniform_label_noise(
    y: np.ndarray, rate: float, num_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Relabel exactly ``round(rate · n)`` points, chosen at random, each to a class drawn uniformly
    from the *other* ``C - 1`` classes. Returns ``(noisy labels, corrupted mask)``."""
    check_fraction("noise_rate", rate, open_high=True)
    n = y.shape[0]
    flip = rng.permutation(n)[: round(rate * n)]
    y_noisy = y.copy()
    shift = rng.integers(1, num_classes, size=flip.shape[0])
    y_noisy[flip] = (y[flip] + shift) % num_classes
    mask = np.zeros(n, dtype=bool)
    mask[flip] = True
    return y_noisy, mask


def class_dependent_label_noise(
    y: np.ndarray, rate: float, num_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pair-flip noise with a fixed transition matrix: in each class ``c``, exactly
    ``round(rate · n_c)`` of its points, chosen at random, are relabelled to class ``(c + 1) mod C``.
    Returns ``(noisy labels, corrupted mask)``."""
    check_fraction("noise_rate", rate, open_high=True)
    num_classes = _check_labels(y, num_classes)
    y_noisy = y.copy()
    mask = np.zeros(y.shape[0], dtype=bool)
    for c in range(num_classes):
        members = np.flatnonzero(y == c)
        flip = rng.permutation(members)[: round(rate * members.shape[0])]
        y_noisy[flip] = (c + 1) % num_classes
        mask[flip] = True
    return y_noisy, mask


FEATURE_NOISE_KINDS = ("gaussian", "occlusion")


def feature_noise(
    x: np.ndarray, rate: float, kind: str, rng: np.random.Generator, scale: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt the inputs of exactly ``round(rate · n)`` points, chosen at random; labels are untouched.

    ``kind="gaussian"`` adds independent ``N(0, (scale · sd)²)`` noise to every feature, where ``sd``
    is the standard deviation of all of ``x``; at the default ``scale=5`` a classifier trained on
    clean digits is near chance on such an input. ``kind="occlusion"`` sets to zero one contiguous
    block covering about half of the input: a run of half the features for ``(n, d)`` arrays, and
    for ``(n, channels, L)`` or ``(n, channels, H, W)`` arrays a block whose sides are the spatial
    sizes times ``0.5 ** (1 / spatial dims)`` (all channels), at a random position per input.
    Returns ``(corrupted inputs, corrupted mask)``; ``x`` itself is not modified.
    """
    check_fraction("noise_rate", rate, open_high=True)
    check_choice("feature_noise_kind", kind, FEATURE_NOISE_KINDS)
    check_positive("scale", scale)
    _check_inputs(x)
    n = x.shape[0]
    chosen = np.sort(rng.permutation(n)[: round(rate * n)])
    x_out = x.copy()
    if kind == "gaussian":
        sd = float(x.std()) or 1.0
        noise = rng.normal(0.0, scale * sd, size=(chosen.shape[0], *x.shape[1:]))
        x_out[chosen] = (x[chosen] + noise).astype(x.dtype)
    else:
        spatial = x.shape[1:] if x.ndim == 2 else x.shape[2:]
        sides = [max(1, round(s * 0.5 ** (1.0 / len(spatial)))) for s in spatial]
        for i in chosen:
            block = tuple(
                slice(start, start + side)
                for start, side in ((int(rng.integers(0, s - side + 1)), side) for s, side in zip(spatial, sides))
            )
            if x.ndim == 2:
                x_out[i][block] = 0
            else:
                x_out[i][(slice(None), *block)] = 0
    mask = np.zeros(n, dtype=bool)
    mask[chosen] = True
    return x_out, mask


def off_domain(x: np.ndarray, rate: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Replace the inputs of exactly ``round(rate · n)`` points, chosen at random, by off-domain
    inputs: each chosen input's features (all of them, flattened across channels and positions) are
    permuted by a random permutation of its own. Labels are kept. Returns
    ``(corrupted inputs, corrupted mask)``; ``x`` itself is not modified."""
    check_fraction("noise_rate", rate, open_high=True)
    _check_inputs(x)
    n = x.shape[0]
    chosen = np.sort(rng.permutation(n)[: round(rate * n)])
    x_out = x.copy()
    for i in chosen:
        flat = x[i].reshape(-1)
        x_out[i] = flat[rng.permutation(flat.shape[0])].reshape(x.shape[1:])
    mask = np.zeros(n, dtype=bool)
    mask[chosen] = True
    return x_out, mask


def open_set_noise(
    x: np.ndarray, y: np.ndarray, x_outside: np.ndarray, rate: float, num_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open-set noise: add to the training set ``(x, y)`` of ``n`` points exactly
    ``k = round(rate · n / (1 - rate))`` inputs drawn at random, without replacement, from
    ``x_outside`` (inputs of classes *outside* the label set ``0 .. num_classes - 1``), each carrying
    a label drawn uniformly from the ``num_classes`` in-set classes, so that they make up a ``rate``
    fraction of the result (``k == round(rate · (n + k))``). They go in at random positions; the
    original ``n`` points keep their inputs, labels and order. Returns ``(inputs, labels, corrupted
    mask)``, the mask marking the added points; the arguments are not modified. Raise
    :class:`ValidationError` naming ``noise_rate`` if ``x_outside`` holds fewer than ``k`` inputs."""
    rate = check_fraction("noise_rate", rate, open_high=True)
    num_classes = _check_labels(y, num_classes)
    _check_inputs(x)
    _check_inputs(x_outside)
    if x_outside.shape[1:] != x.shape[1:]:
        raise ValidationError("x_outside", f"inputs of shape {x_outside.shape[1:]}, expected {x.shape[1:]}")
    n, available = x.shape[0], x_outside.shape[0]
    k = round(rate * n / (1.0 - rate))
    if k > available:
        most = available / (n + available)
        raise ValidationError("noise_rate", f"{rate!r} needs {k} inputs from outside the label set, only {available} "
                              f"exist; at most {most:.3f} here")
    added = rng.permutation(available)[:k]
    labels = rng.integers(0, num_classes, size=k)
    positions = np.sort(rng.permutation(n + k)[:k])
    mask = np.zeros(n + k, dtype=bool)
    mask[positions] = True
    x_out = np.empty((n + k, *x.shape[1:]), dtype=x.dtype)
    y_out = np.empty(n + k, dtype=y.dtype)
    x_out[mask], y_out[mask] = x_outside[added], labels
    x_out[~mask], y_out[~mask] = x, y
    return x_out, y_out, mask


def input_swap(
    x: np.ndarray, y: np.ndarray, rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Replace the input of exactly ``round(rate · n)`` points, chosen at random, by a copy of the
    input of a point of *another* class: for each chosen point ``i``, a point ``j`` drawn uniformly
    from the points whose label differs from ``y[i]``, its input taken from ``x`` as given (so a
    copied input is always an original one). Labels are kept, so a swapped point's label no longer
    matches its input. Returns ``(corrupted inputs, corrupted mask)``; ``x`` is not modified."""
    rate = check_fraction("noise_rate", rate, open_high=True)
    _check_inputs(x)
    if not isinstance(y, np.ndarray) or y.shape != x.shape[:1] or not np.issubdtype(y.dtype, np.integer):
        raise ValidationError("y", "must be a one-dimensional integer numpy array with one label per input")
    n = x.shape[0]
    chosen = np.sort(rng.permutation(n)[: round(rate * n)])
    if chosen.size and np.unique(y).shape[0] < 2:
        raise ValidationError("y", "an input swap needs points of at least two classes")
    x_out = x.copy()
    others = {c: np.flatnonzero(y != c) for c in np.unique(y[chosen])}
    for i in chosen:
        pool = others[y[i]]
        x_out[i] = x[pool[rng.integers(0, pool.shape[0])]]
    mask = np.zeros(n, dtype=bool)
    mask[chosen] = True
    return x_out, mask


def long_tail_counts(num_classes: int, n_max: int, ratio: float) -> np.ndarray:
    """Per-class counts of a long-tailed training set, in class index order: class ``c`` gets
    ``floor(n_max · ratio^(-c / (C - 1)))`` points (at least 1), decaying exponentially from
    ``n_max`` for class 0 to ``n_max / ratio`` for class ``C - 1``."""
    num_classes = check_positive_int("num_classes", num_classes, minimum=2)
    n_max = check_positive_int("n_max", n_max)
    ratio = check_at_least_one("ratio", ratio)
    c = np.arange(num_classes)
    counts = np.floor(n_max * ratio ** (-c / (num_classes - 1)) + 1e-9).astype(np.int64)
    return np.maximum(counts, 1)


def subsample_to_counts(y: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices (sorted) of a random subset of ``y`` holding ``counts[c]`` points of class ``c``,
    classes in index order. Raise :class:`ValidationError` if a class has fewer points than asked."""
    counts = np.asarray(counts)
    _check_labels(y, counts.shape[0])
    keep = []
    for c, k in enumerate(counts):
        members = np.flatnonzero(y == c)
        if not 0 <= k <= members.shape[0]:
            raise ValidationError("counts", f"class {c} has {members.shape[0]} points, asked {k}")
        keep.append(rng.choice(members, size=int(k), replace=False))
    return np.sort(np.concatenate(keep))


def check_at_least_one(argument: str, value: float) -> float:
    """Return ``value`` as a float if it is a finite number >= 1, else raise :class:`ValidationError`."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValidationError(argument, f"must be a number, got {value!r}") from None
    if isinstance(value, bool) or not (1.0 <= v < float("inf")):
        raise ValidationError(argument, f"must be a finite number >= 1, got {value!r}")
    return v


def _check_labels(y: np.ndarray, num_classes: int) -> int:
    num_classes = check_positive_int("num_classes", num_classes, minimum=2)
    if not isinstance(y, np.ndarray) or y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValidationError("y", "must be a one-dimensional integer numpy array")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValidationError("y", f"labels must lie in [0, {num_classes})")
    return num_classes


def _check_inputs(x: np.ndarray) -> None:
    if not isinstance(x, np.ndarray) or x.ndim < 2 or not np.issubdtype(x.dtype, np.floating):
        raise ValidationError("x", "must be a floating-point numpy array of shape (n, features...)")
