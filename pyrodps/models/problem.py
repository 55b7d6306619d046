"""A selection problem as arrays: a dirty train set, a clean meta set, a test set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyrodps.errors import ValidationError


@dataclass
class SelectionProblem:
    """Train/meta/test arrays. ``corrupted`` (bool per train point: label or input changed) and
    ``minority`` (bool per train point: member of a minority class in an imbalance scenario) are
    ground truth kept for evaluation only; the samplers never see them."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_meta: np.ndarray
    y_meta: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    corrupted: np.ndarray | None = None
    minority: np.ndarray | None = None

    def __post_init__(self) -> None:
        validate_problem(self)

    @property
    def num_train(self) -> int:
        return int(self.x_train.shape[0])

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


def _check_xy(x: np.ndarray, y: np.ndarray, xname: str, yname: str, num_classes: int, allow_empty: bool = False) -> None:
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
    if x.shape[0] == 0 and not allow_empty:
        raise ValidationError(xname, "is empty")
    if not np.all(np.isfinite(x)):
        raise ValidationError(xname, "contains NaN or infinite values")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValidationError(yname, f"class labels must be integers, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValidationError(yname, f"labels must lie in [0, {num_classes}), got range [{y.min()}, {y.max()}]")


def validate_problem(p: SelectionProblem) -> None:
    """Raise :class:`ValidationError` naming the first bad array."""
    if isinstance(p.num_classes, bool) or not isinstance(p.num_classes, (int, np.integer)) or p.num_classes < 2:
        raise ValidationError("num_classes", f"must be an integer >= 2, got {p.num_classes!r}")
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
