"""The scenario pipeline shared by every data set.

Load the clean ``(x, y)``; split off a stratified test set (it stays clean, with the class
proportions of the loaded data); optionally standardise with the training part's mean and standard
deviation; carve ``meta_per_class`` clean examples per class from the training part as the meta set;
then corrupt or subsample only the remaining training points, recording the ground truth
(``corrupted``: label or input changed, or point added from outside the label set; ``minority``:
member of a minority class).

All randomness after the test split comes from one ``np.random.default_rng(seed)``, drawn in this
order: meta carving, then the corruption or subsampling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from sklearn.model_selection import train_test_split

from pyrodps.data.corruptions import (
    FEATURE_NOISE_KINDS,
    check_at_least_one,
    class_dependent_label_noise,
    feature_noise,
    input_swap,
    long_tail_counts,
    off_domain,
    open_set_noise,
    subsample_to_counts,
    uniform_label_noise,
)
from pyrodps.errors import ValidationError, check_choice, check_fraction, check_positive_int
from pyrodps.models.problem import SelectionProblem

LABEL_NOISE_KINDS = ("uniform", "class-dependent")
BINARY_CLASSES = (4, 9)  # the Learning-to-Reweight setting: 4 -> label 0 (minority), 9 -> label 1
OPEN_SET_HELD_OUT = (7, 8, 9)  # the default classes an open-set scenario holds out of the label set


@dataclass(frozen=True)
class Source:
    """A clean labelled data set. ``load()`` returns ``(x, y)`` with float32 inputs and int64 labels
    in ``[0, num_classes)``; ``standardise`` asks the pipeline to standardise the inputs with the
    training part's scalar mean and standard deviation (``True``) or per feature (``"feature"``: for
    tabular columns on different scales; a constant column is only centred)."""

    name: str
    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    num_classes: int
    standardise: bool | str = False


@dataclass
class Split:
    """A clean split (the remaining training points, the meta and test sets, as a problem with nothing
    corrupted yet) and the generator the corruption step draws from. ``split.x_train`` etc. read the
    clean problem."""

    clean: SelectionProblem
    rng: np.random.Generator
    x_outside: np.ndarray | None = None  # inputs of the classes left out, when asked for

    def __getattr__(self, name: str):
        return getattr(self.clean, name)

    def problem(self, name: str, **changes: np.ndarray | None) -> SelectionProblem:
        """The :class:`SelectionProblem` of this split with the training arrays / masks replaced."""
        return replace(self.clean, name=name, **changes)


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


def check_common(meta_per_class: int, test_fraction: float, seed: int) -> None:
    """Validate the options every scenario takes."""
    check_positive_int("meta_per_class", meta_per_class)
    check_fraction("test_fraction", test_fraction, open_low=True)
    check_positive_int("seed", seed, minimum=0)


def split_clean(
    source: Source, meta_per_class: int, test_fraction: float, seed: int, classes: tuple[int, ...] | None = None,
    keep_outside: bool = False,
) -> Split:
    """Load ``source`` (keeping only ``classes``, sorted, relabelled ``classes[i] -> i``, when given),
    split off the stratified test set and carve the meta set. With ``keep_outside``, the inputs of
    the other classes (all of them, in load order, standardised like the rest) are kept as
    ``split.x_outside``; they are in neither the meta nor the test set."""
    x, y = source.load()
    num_classes = source.num_classes
    x_outside = None
    if classes is not None:
        keep = np.isin(y, classes)
        if keep_outside:
            x_outside = x[~keep]
        x, y = x[keep], np.searchsorted(np.asarray(classes), y[keep]).astype(np.int64)
        num_classes = len(classes)
    try:
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)
    except ValueError as e:
        raise ValidationError("test_fraction", f"cannot split off a stratified test set: {e}") from None
    if source.standardise == "feature":
        mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
        std = np.where(std > 0, std, 1.0)
    elif source.standardise:
        mean, std = float(x_tr.mean()), float(x_tr.std()) or 1.0
    if source.standardise:
        x_tr = ((x_tr - mean) / std).astype(np.float32)
        x_te = ((x_te - mean) / std).astype(np.float32)
        if x_outside is not None:
            x_outside = ((x_outside - mean) / std).astype(np.float32)
    rng = np.random.default_rng(seed)
    meta_idx, rest = carve_meta(y_tr, meta_per_class, num_classes, rng)
    clean = SelectionProblem(source.name, x_tr[rest], y_tr[rest], x_tr[meta_idx], y_tr[meta_idx], x_te, y_te, num_classes)
    return Split(clean, rng, x_outside)


def label_noise(
    source: Source, noise_rate: float, noise_kind: str, meta_per_class: int, test_fraction: float, seed: int
) -> SelectionProblem:
    """Label noise on the remaining training points: ``noise_kind="uniform"``
    (:func:`uniform_label_noise`) or ``"class-dependent"`` (pair flip ``c -> c + 1 mod C``,
    :func:`class_dependent_label_noise`), at ``noise_rate``."""
    check_fraction("noise_rate", noise_rate)
    check_choice("noise_kind", noise_kind, LABEL_NOISE_KINDS)
    check_common(meta_per_class, test_fraction, seed)
    s = split_clean(source, meta_per_class, test_fraction, seed)
    corrupt = uniform_label_noise if noise_kind == "uniform" else class_dependent_label_noise
    y_noisy, corrupted = corrupt(s.y_train, noise_rate, s.num_classes, s.rng)
    return s.problem(f"{source.name}-label-noise", y_train=y_noisy, corrupted=corrupted)


def source_noise(
    source: Source, noise_rate: float, num_sources: int, meta_per_class: int, test_fraction: float, seed: int
) -> SelectionProblem:
    """A training set pooled from ``num_sources`` sources of unequal quality: the remaining training
    points split at random into ``S = num_sources`` equal sources, source ``s`` with uniform label noise
    at rate ``noise_rate · 2s / (S - 1)`` (0 for the first, ``2 · noise_rate`` for the last; mean
    ``noise_rate``, so ``noise_rate`` must be at most 0.5). ``weight_groups`` is the source of every point
    (model input, as a user would know where each point came from); ``corrupted`` marks the flipped
    labels."""
    check_fraction("noise_rate", noise_rate)
    if noise_rate > 0.5:
        raise ValidationError("noise_rate", f"the noisiest source has rate 2 · noise_rate; must be at most 0.5, "
                              f"got {noise_rate}")
    check_positive_int("num_sources", num_sources, minimum=2)
    check_common(meta_per_class, test_fraction, seed)
    s = split_clean(source, meta_per_class, test_fraction, seed)
    sources = s.rng.permutation(s.y_train.shape[0]) % num_sources
    y_noisy, corrupted = s.y_train.copy(), np.zeros(s.y_train.shape[0], dtype=bool)
    for k in range(num_sources):
        members = np.flatnonzero(sources == k)
        y_k, c_k = uniform_label_noise(s.y_train[members], noise_rate * 2 * k / (num_sources - 1), s.num_classes, s.rng)
        y_noisy[members], corrupted[members] = y_k, c_k
    return s.problem(f"{source.name}-source-noise", y_train=y_noisy, corrupted=corrupted,
                     weight_groups=sources.astype(np.int64))


def pair_flip(
    source: Source, noise_rate: float, meta_per_class: int, test_fraction: float, seed: int
) -> SelectionProblem:
    """Structured class-dependent label noise (:func:`class_dependent_label_noise`): in each class
    ``c``, ``round(noise_rate · n_c)`` of the remaining training points relabelled ``c + 1 mod C``;
    inputs kept. The same corruption as ``label_noise(..., noise_kind="class-dependent")``, as its own
    scenario with a default rate high enough to hurt (most of each class still carries its label
    while ``noise_rate < 0.5``)."""
    check_fraction("noise_rate", noise_rate)
    check_common(meta_per_class, test_fraction, seed)
    s = split_clean(source, meta_per_class, test_fraction, seed)
    y_noisy, corrupted = class_dependent_label_noise(s.y_train, noise_rate, s.num_classes, s.rng)
    return s.problem(f"{source.name}-pair-flip", y_train=y_noisy, corrupted=corrupted)


def check_held_out_classes(held_out_classes: object, num_classes: int) -> tuple[int, ...]:
    """``held_out_classes`` as a sorted tuple of distinct class indices in ``[0, num_classes)``, at
    least one held out and at least two left in the label set; else :class:`ValidationError`."""
    try:
        held = [check_positive_int("held_out_classes", c, minimum=0) for c in held_out_classes]
    except TypeError:
        raise ValidationError("held_out_classes", f"must be a sequence of class indices, got {held_out_classes!r}") from None
    if not held or len(set(held)) != len(held) or max(held) >= num_classes or num_classes - len(held) < 2:
        raise ValidationError("held_out_classes", f"must be distinct classes in [0, {num_classes}), at least one and "
                              f"leaving at least two, got {held_out_classes!r}")
    return tuple(sorted(held))


def open_set(
    source: Source, noise_rate: float, held_out_classes: tuple[int, ...], meta_per_class: int, test_fraction: float,
    seed: int,
) -> SelectionProblem:
    """Open-set noise. The classes ``held_out_classes`` are removed from the label set: the problem has
    the ``C' = C - len(held_out_classes)`` other classes, relabelled ``0 .. C' - 1`` in class order,
    and its test and meta sets hold only those (the test set split stratified from their loaded
    points). Then inputs of the held-out classes, drawn at random from all their loaded points, are
    added to the remaining training points, each with a uniformly random in-set label, until they make
    up a ``noise_rate`` fraction of the training set (:func:`open_set_noise`; ``corrupted`` marks
    them). Raise :class:`ValidationError` naming ``noise_rate`` if the held-out classes have too few
    points for that fraction."""
    check_fraction("noise_rate", noise_rate)
    held = check_held_out_classes(held_out_classes, source.num_classes)
    check_common(meta_per_class, test_fraction, seed)
    in_set = tuple(c for c in range(source.num_classes) if c not in held)
    s = split_clean(source, meta_per_class, test_fraction, seed, classes=in_set, keep_outside=True)
    x, y, corrupted = open_set_noise(s.x_train, s.y_train, s.x_outside, noise_rate, s.num_classes, s.rng)
    return s.problem(f"{source.name}-open-set", x_train=x, y_train=y, corrupted=corrupted)


def input_swap_scenario(
    source: Source, noise_rate: float, meta_per_class: int, test_fraction: float, seed: int
) -> SelectionProblem:
    """A ``noise_rate`` fraction of the remaining training points get the input of a random training
    point of another class (:func:`input_swap`); labels kept, so their label no longer matches their
    input."""
    check_fraction("noise_rate", noise_rate)
    check_common(meta_per_class, test_fraction, seed)
    s = split_clean(source, meta_per_class, test_fraction, seed)
    x_swapped, corrupted = input_swap(s.x_train, s.y_train, noise_rate, s.rng)
    return s.problem(f"{source.name}-input-swap", x_train=x_swapped, corrupted=corrupted)


def feature_noise_scenario(
    source: Source, noise_rate: float, feature_noise_kind: str, meta_per_class: int, test_fraction: float, seed: int
) -> SelectionProblem:
    """Input noise (:func:`feature_noise`, ``"gaussian"`` or ``"occlusion"``) on a ``noise_rate``
    fraction of the remaining training points; labels kept."""
    check_fraction("noise_rate", noise_rate)
    check_choice("feature_noise_kind", feature_noise_kind, FEATURE_NOISE_KINDS)
    check_common(meta_per_class, test_fraction, seed)
    s = split_clean(source, meta_per_class, test_fraction, seed)
    x_noisy, corrupted = feature_noise(s.x_train, noise_rate, feature_noise_kind, s.rng)
    return s.problem(f"{source.name}-feature-noise", x_train=x_noisy, corrupted=corrupted)


def off_domain_scenario(
    source: Source, noise_rate: float, meta_per_class: int, test_fraction: float, seed: int
) -> SelectionProblem:
    """A ``noise_rate`` fraction of the remaining training inputs replaced by pixel-shuffled
    versions (:func:`off_domain`); labels kept."""
    check_fraction("noise_rate", noise_rate)
    check_common(meta_per_class, test_fraction, seed)
    s = split_clean(source, meta_per_class, test_fraction, seed)
    x_off, corrupted = off_domain(s.x_train, noise_rate, s.rng)
    return s.problem(f"{source.name}-off-domain", x_train=x_off, corrupted=corrupted)


def imbalance(
    source: Source, imbalance_ratio: float, meta_per_class: int, test_fraction: float, seed: int
) -> SelectionProblem:
    """Long-tailed training set: the remaining training points subsampled to
    :func:`long_tail_counts` with ``n_max`` the smallest per-class count available, in class index
    order (class 0 keeps the most points, class ``C - 1`` the fewest). ``minority`` marks the
    points of the classes whose count is below the median count; ``corrupted`` is None. The meta
    and test sets stay balanced."""
    imbalance_ratio = check_at_least_one("imbalance_ratio", imbalance_ratio)
    check_common(meta_per_class, test_fraction, seed)
    s = split_clean(source, meta_per_class, test_fraction, seed)
    n_max = int(np.bincount(s.y_train, minlength=s.num_classes).min())
    counts = long_tail_counts(s.num_classes, n_max, imbalance_ratio)
    keep = subsample_to_counts(s.y_train, counts, s.rng)
    y = s.y_train[keep]
    minority = (counts < np.median(counts))[y]
    return s.problem(f"{source.name}-imbalance", x_train=s.x_train[keep], y_train=y, minority=minority)


def binary_counts(available: np.ndarray, positive_ratio: float) -> np.ndarray:
    """Counts ``[negatives, positives]`` at most ``available`` whose positive fraction is as close
    to ``positive_ratio`` as whole points allow, keeping as many points as possible and at least
    one negative."""
    neg_avail, pos_avail = int(available[0]), int(available[1])
    pos = pos_avail
    neg = max(1, round(pos * (1.0 - positive_ratio) / positive_ratio))
    if neg > neg_avail:
        neg = neg_avail
        pos = min(pos_avail, max(1, round(neg * positive_ratio / (1.0 - positive_ratio))))
    return np.array([neg, pos], dtype=np.int64)


def binary_imbalance(
    source: Source, positive_ratio: float, meta_per_class: int, test_fraction: float, seed: int
) -> SelectionProblem:
    """The Learning-to-Reweight setting: classes 4 and 9 only, relabelled 4 -> 0 and 9 -> 1; the
    remaining training points subsampled so that a ``positive_ratio`` fraction are class 9
    (:func:`binary_counts`: all class-9 points kept, at least one class-4 point). The meta set has
    ``meta_per_class`` of each; the test set keeps the loaded (balanced) proportions.
    ``minority`` marks the class-4 points; ``corrupted`` is None.

    The number of class-4 training points is about ``n9 · (1 - positive_ratio) / positive_ratio``
    for ``n9`` remaining class-9 points: keeping 25 of them at 0.995 takes about 4,900 class-9
    training points (MNIST-1D generates them, :func:`pyrodps.data.mnist1d.mnist1d_binary_imbalance`;
    digits has ~120, see :func:`pyrodps.data.digits.digits_binary_imbalance`)."""
    try:
        p = float(positive_ratio)
    except (TypeError, ValueError):
        raise ValidationError("positive_ratio", f"must be a number, got {positive_ratio!r}") from None
    if isinstance(positive_ratio, bool) or not 0.5 < p < 1.0:
        raise ValidationError("positive_ratio", f"must lie in (0.5, 1), got {positive_ratio!r}")
    check_common(meta_per_class, test_fraction, seed)
    s = split_clean(source, meta_per_class, test_fraction, seed, classes=BINARY_CLASSES)
    counts = binary_counts(np.bincount(s.y_train, minlength=2), p)
    keep = subsample_to_counts(s.y_train, counts, s.rng)
    y = s.y_train[keep]
    return s.problem(f"{source.name}-binary-imbalance", x_train=s.x_train[keep], y_train=y, minority=y == 0)
