"""A selection problem as arrays: a dirty train set, a clean meta set, a test set.

A problem is a classification problem (``num_classes`` an integer >= 2, integer labels in
``[0, num_classes)``) or a regression problem (``num_classes=None``, one-dimensional finite
floating-point targets); :attr:`SelectionProblem.task` says which, and :func:`default_likelihood`
gives the observation model every method uses unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pyrodps.errors import ValidationError
from pyrodps.models.likelihoods import Categorical, Gaussian, Likelihood
from pyrodps.models.sequence import TokenSequence
from pyrodps.models.sequence_problem import SEQUENCE_TASK, check_sequence_problem, token_entropy

TASKS = ("classification", "regression")


@dataclass
class SelectionProblem:
    """Train/meta/test arrays. ``num_classes`` is the number of classes, or ``None`` for a regression
    problem (float targets). ``corrupted`` (bool per train point: label, target or input changed)
    and ``minority`` (bool per train point: member of a minority class in an imbalance scenario)
    are ground truth kept for evaluation only; the samplers never see them. ``weight_groups``
    (non-negative int per train point, optional) is not ground truth but model input: the group whose
    latent a point's weight shares under grouped weights (the weight network's ``"group"`` feature,
    e.g. the source data set of each point); without it, grouped weights group by class."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_meta: np.ndarray
    y_meta: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int | None
    corrupted: np.ndarray | None = None
    minority: np.ndarray | None = None
    weight_groups: np.ndarray | None = None
    vocab_size: int | None = None  # set: a sequence problem (token ids, pyrodps.models.sequence_problem)

    def __post_init__(self) -> None:
        validate_problem(self)

    @property
    def task(self) -> str:
        """``"classification"`` (``num_classes`` set), ``"regression"`` (``num_classes=None``) or
        ``"sequence"`` (``vocab_size`` set: token ids, :mod:`pyrodps.models.sequence_problem`)."""
        if self.vocab_size is not None:
            return SEQUENCE_TASK
        return "regression" if self.num_classes is None else "classification"

    @property
    def num_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def num_features(self) -> int:
        """Input values per example (a vector's length; channels × length for sequences, and so on)."""
        return int(np.prod(self.x_train.shape[1:]))

    def train_subset(self, keep: np.ndarray, y_train: np.ndarray | None = None) -> SelectionProblem:
        """The problem with only the training points ``keep`` (a boolean mask or indices), every
        per-point array (``y_train``, or the given relabelled ``y_train`` of all N points, ``corrupted``,
        ``minority``, ``weight_groups``) cut alike; meta and test sets unchanged."""
        cut = lambda a: None if a is None else np.asarray(a)[keep]
        return replace(self, x_train=self.x_train[keep], y_train=cut(self.y_train if y_train is None else y_train),
                       corrupted=cut(self.corrupted), minority=cut(self.minority), weight_groups=cut(self.weight_groups))

    def groups(self) -> dict[str, np.ndarray]:
        """Boolean masks over the training points for the ground truth this problem carries:
        ``corrupted`` and ``clean`` when ``corrupted`` is set, ``minority`` and ``majority`` when
        ``minority`` is set (none of them otherwise)."""
        out: dict[str, np.ndarray] = {}
        if self.corrupted is not None:
            c = np.asarray(self.corrupted)
            out["corrupted"], out["clean"] = c, ~c
        if self.minority is not None:
            m = np.asarray(self.minority)
            out["minority"], out["majority"] = m, ~m
        return out


def default_likelihood(problem: SelectionProblem) -> Likelihood:
    """The observation model of ``problem``: ``Categorical(num_classes)`` for classification, and for
    regression ``Gaussian(s)`` with ``s`` the sample standard deviation (``ddof=1``) of the clean
    meta set's targets (1.0 when it has fewer than two points or they are all equal).

    Why that scale: the meta targets are the only sample of targets known to be clean (the training
    targets are inflated by the very outliers to be found), their standard deviation is the residual
    scale of the best constant predictor, i.e. an upper bound on the noise of any useful model, and
    it follows the units of ``y`` (rescaling the targets rescales ``s``), so no data set needs its
    own setting; on standardised targets it is about 1. It is a deliberately conservative (wide)
    choice: a network's residuals on clean points are smaller, so a point's loss measures its
    squared residual in units of the target spread.

    A sequence problem (``vocab_size`` set) gets ``TokenSequence(vocab_size)``, the summed NLL of each
    example's scored tokens, with the weights' reference ``c`` = the entropy of the meta set's scored
    tokens (:meth:`~pyrodps.models.sequence.TokenSequence.saturated_nll`): the same reasoning, for text,
    whose loss never nears 0: the per-token loss of the best model that ignores context, from the only
    text known to be clean. A training sequence predicted better than that weighs in, one predicted
    worse (noise, another language, scrambled text) is pushed down."""
    if problem.vocab_size is not None:
        return TokenSequence(int(problem.vocab_size), reference_per_token=token_entropy(problem.y_meta))
    if problem.num_classes is not None:
        return Categorical(int(problem.num_classes))
    y = np.asarray(problem.y_meta, dtype=np.float64)
    scale = float(y.std(ddof=1)) if y.shape[0] >= 2 else 0.0
    return Gaussian(scale if scale > 0.0 else 1.0)


def _check_xy(x: np.ndarray, y: np.ndarray, xname: str, yname: str, num_classes: int | None) -> None:
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.number):
        raise ValidationError(xname, f"must be a numeric numpy array, got {type(x).__name__}")
    if not isinstance(y, np.ndarray):
        raise ValidationError(yname, f"must be a numpy array, got {type(y).__name__}")
    if x.ndim < 2:
        raise ValidationError(xname, f"must have shape (n, features...), got {x.shape}")
    if y.ndim != 1:
        raise ValidationError(yname, f"must be one-dimensional, got shape {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValidationError(yname, f"has {y.shape[0]} entries but {xname} has {x.shape[0]} rows")
    if x.shape[0] == 0:
        raise ValidationError(xname, "is empty")
    if not np.all(np.isfinite(x)):
        raise ValidationError(xname, "contains NaN or infinite values")
    if num_classes is None:
        if not np.issubdtype(y.dtype, np.floating):
            raise ValidationError(
                yname, f"regression targets (num_classes=None) must be floating point, got dtype {y.dtype}"
            )
        if not np.all(np.isfinite(y)):
            raise ValidationError(yname, "contains NaN or infinite values")
        return
    if not np.issubdtype(y.dtype, np.integer):
        raise ValidationError(yname, f"class labels must be integers, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValidationError(yname, f"labels must lie in [0, {num_classes}), got range [{y.min()}, {y.max()}]")


def validate_problem(p: SelectionProblem) -> None:
    """Raise :class:`ValidationError` naming the first bad array."""
    if p.num_classes is not None and (
        isinstance(p.num_classes, bool) or not isinstance(p.num_classes, (int, np.integer)) or p.num_classes < 2
    ):
        raise ValidationError(
            "num_classes", f"must be an integer >= 2, or None for regression, got {p.num_classes!r}"
        )
    if p.vocab_size is not None:
        check_sequence_problem(p)
    else:
        _check_xy(p.x_train, p.y_train, "x_train", "y_train", p.num_classes)
        if not isinstance(p.x_meta, np.ndarray) or p.x_meta.shape[0] == 0:
            raise ValidationError("x_meta", "the meta set is empty: BADS needs at least one clean example")
        _check_xy(p.x_meta, p.y_meta, "x_meta", "y_meta", p.num_classes)
        _check_xy(p.x_test, p.y_test, "x_test", "y_test", p.num_classes)
    for name, x in (("x_meta", p.x_meta), ("x_test", p.x_test)):
        if x.shape[1:] != p.x_train.shape[1:]:
            raise ValidationError(name, f"feature shape {x.shape[1:]} differs from x_train's {p.x_train.shape[1:]}")
    for name in ("corrupted", "minority"):
        mask = getattr(p, name)
        if mask is not None:
            m = np.asarray(mask)
            if m.shape != (p.num_train,) or m.dtype != bool:
                raise ValidationError(name, f"must be a boolean array of shape ({p.num_train},)")
    if p.weight_groups is not None:
        g = np.asarray(p.weight_groups)
        if g.shape != (p.num_train,) or not np.issubdtype(g.dtype, np.integer) or (g.size and g.min() < 0):
            raise ValidationError("weight_groups", f"must be non-negative integers, one per training point "
                                  f"(shape ({p.num_train},)), got {g.dtype} of shape {g.shape}")
