"""Bring your own data: a :class:`SelectionProblem` from arrays, tensors, torch Datasets or .npz files.

Classification or regression: ``task="classification"`` (integer labels) or ``"regression"``
(real-valued targets, ``num_classes=None``). Left ``None``, the task is classification when
``num_classes`` is given, else read off the training targets: a floating-point ``y_train`` (an .npz
``y`` of float dtype) means regression, an integer one classification. Integer-valued targets that
are meant as numbers (counts, scores) need ``task="regression"``.

Inputs are converted to float32 numpy arrays, integer labels to int64 and regression targets to
float32; everything else is checked by :func:`~pyrodps.models.problem.validate_problem`.
``num_classes`` defaults to the largest label over the train, meta and test sets plus one. Every
bad input raises :class:`~pyrodps.errors.ValidationError` naming the argument.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from pyrodps.errors import ValidationError, check_choice
from pyrodps.models.problem import TASKS, SelectionProblem

ROLES = ("train", "meta", "test")
TRAIN_MASKS = ("corrupted", "minority", "group")  # optional arrays read from the train file


def _as_numpy(value: Any, argument: str) -> np.ndarray:
    """``value`` (numpy array, torch tensor or nested sequence of numbers) as a numpy array."""
    if isinstance(value, torch.Tensor):
        if value.device.type == "meta":
            raise ValidationError(argument, "is a tensor on the 'meta' device: it holds no data")
        try:
            return value.detach().cpu().to(torch.float32 if value.is_floating_point() else value.dtype).numpy()
        except (RuntimeError, TypeError) as e:
            raise ValidationError(argument, f"cannot be read as an array ({value.dtype} on {value.device}): {e}") from None
    if isinstance(value, np.ndarray):
        return value
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.dtype == object:
        raise ValidationError(argument, f"must be a numpy array or torch tensor, got {type(value).__name__}")
    return arr


def _inputs(value: Any, argument: str) -> np.ndarray:
    x = _as_numpy(value, argument)
    if x.dtype == bool or not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValidationError(argument, f"must hold real numbers, got dtype {x.dtype}")
    return x.astype(np.float32, copy=False)


def _labels(value: Any, argument: str) -> np.ndarray:
    y = _as_numpy(value, argument)
    if np.issubdtype(y.dtype, np.integer) and y.dtype != bool:
        return y.astype(np.int64, copy=False)
    return y  # left as is: validate_problem names the argument and the bad dtype


def _real_targets(y: np.ndarray) -> np.ndarray:
    """Regression targets: real numbers (integer or float, not bool) as float32."""
    if y.dtype != bool and (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        return y.astype(np.float32, copy=False)
    return y  # left as is: validate_problem names the argument and the bad dtype


def resolve_task(task: str | None, num_classes: int | None, y_train: np.ndarray) -> str:
    """The task of a problem (module docstring): ``task`` if given (checked against
    ``num_classes``), else classification when ``num_classes`` is given or ``y_train`` is not
    floating point, regression when it is."""
    if task is not None:
        check_choice("task", task, TASKS)
        if task == "regression" and num_classes is not None:
            raise ValidationError("num_classes", f"must be None for a regression problem, got {num_classes!r}")
        return task
    if num_classes is None and np.issubdtype(y_train.dtype, np.floating):
        return "regression"
    return "classification"


def _mask(value: Any, argument: str) -> np.ndarray | None:
    return None if value is None else _as_numpy(value, argument)


def _infer_num_classes(*ys: np.ndarray) -> int:
    """Largest label plus one over integer label arrays (2 when that cannot be read off)."""
    tops = [int(y.max()) for y in ys if y.size and np.issubdtype(y.dtype, np.integer)]
    return max(tops) + 1 if tops else 2


def problem_from_arrays(
    x_train: Any, y_train: Any, x_meta: Any, y_meta: Any, x_test: Any, y_test: Any,
    num_classes: int | None = None, corrupted: Any = None, name: str = "custom", minority: Any = None,
    task: str | None = None, weight_groups: Any = None,
) -> SelectionProblem:
    """A :class:`SelectionProblem` from numpy arrays or torch tensors. ``corrupted`` and
    ``minority`` are optional boolean ground-truth masks over the training points; ``weight_groups``
    an optional group index per training point (grouped weights share one latent per group). ``task``:
    ``"classification"``, ``"regression"`` or ``None`` (inferred; module docstring)."""
    if not isinstance(name, str) or not name:
        raise ValidationError("name", f"must be a non-empty string, got {name!r}")
    xs = {k: _inputs(v, k) for k, v in (("x_train", x_train), ("x_meta", x_meta), ("x_test", x_test))}
    ys = {k: _labels(v, k) for k, v in (("y_train", y_train), ("y_meta", y_meta), ("y_test", y_test))}
    if resolve_task(task, num_classes, ys["y_train"]) == "regression":
        ys = {k: _real_targets(y) for k, y in ys.items()}
    elif num_classes is None:
        num_classes = _infer_num_classes(*ys.values())
    return SelectionProblem(
        name=name, **xs, **ys, num_classes=num_classes,
        corrupted=_mask(corrupted, "corrupted"), minority=_mask(minority, "minority"),
        weight_groups=None if weight_groups is None else np.asarray(weight_groups),
    )


def _read_npz(role: str, path: str | PathLike, optional: Sequence[str]) -> dict[str, np.ndarray]:
    """Arrays ``X``, ``y`` and those of ``optional`` present in the .npz file at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError(role, f"no such file: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ValidationError(role, f"cannot read {path} as an .npz archive: {e}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValidationError(role, f"{path} holds a single array, not an .npz archive of named arrays")
    try:
        with loaded as f:
            for key in ("X", "y"):
                if key not in f.files:
                    raise ValidationError(role, f"{path} has no array {key!r} (it holds {', '.join(f.files) or 'nothing'})")
            out = {key: f[key] for key in ("X", "y", *optional) if key in f.files}
    except ValidationError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ValidationError(role, f"cannot read {path} as an .npz archive: {e}") from None
    n = out["X"].shape[0] if out["X"].ndim else 0
    for key, arr in out.items():
        if key != "X" and (arr.ndim != 1 or arr.shape[0] != n):
            raise ValidationError(role, f"array {key!r} in {path} has shape {arr.shape}, expected ({n},) to match 'X'")
    return out


def load_npz_problem(
    train: str | PathLike, meta: str | PathLike, test: str | PathLike, name: str = "custom",
    num_classes: int | None = None, task: str | None = None,
) -> SelectionProblem:
    """A :class:`SelectionProblem` from three .npz files, each with arrays ``X`` (inputs, first axis
    the examples) and ``y`` (integer labels, or float targets: a float ``y`` in the train file makes
    a regression problem unless ``task`` or ``num_classes`` says otherwise); the train file may also
    hold boolean ``corrupted`` and ``minority`` masks and an integer ``group`` per point (the weight
    groups; other arrays, and those in the meta and test files, are ignored).
    A missing file, unreadable file, missing array or length mismatch raises
    :class:`ValidationError` naming ``"train"``, ``"meta"`` or ``"test"``."""
    data = {
        role: _read_npz(role, path, TRAIN_MASKS if role == "train" else ())
        for role, path in zip(ROLES, (train, meta, test))
    }
    tr, me, te = data["train"], data["meta"], data["test"]
    return problem_from_arrays(
        tr["X"], tr["y"], me["X"], me["y"], te["X"], te["y"], num_classes=num_classes,
        corrupted=tr.get("corrupted"), minority=tr.get("minority"), name=name, task=task,
        weight_groups=tr.get("group"),
    )


def _stack_dataset(dataset: Any, role: str) -> tuple[np.ndarray, np.ndarray]:
    """Stack the ``(x, y)`` items of a torch Dataset (map-style with ``len``, or iterable)."""
    if isinstance(dataset, IterableDataset):
        items = iter(dataset)
    elif isinstance(dataset, Dataset) or hasattr(dataset, "__getitem__"):
        try:
            items = (dataset[i] for i in range(len(dataset)))
        except TypeError:
            raise ValidationError(role, "a map-style Dataset must define __len__") from None
    else:
        raise ValidationError(role, f"must be a torch Dataset yielding (x, y) pairs, got {type(dataset).__name__}")
    xs, ys = [], []
    for k, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValidationError(role, f"item {k} is not an (x, y) pair")
        x, y = _as_numpy(item[0], role), _as_numpy(item[1], role)
        if xs and x.shape != xs[0].shape:
            raise ValidationError(role, f"item {k} has input shape {x.shape}, item 0 has {xs[0].shape}")
        if y.size != 1:
            raise ValidationError(role, f"item {k} has a label of shape {y.shape}, expected a single class index or target")
        xs.append(x)
        ys.append(y.reshape(()))
    if not xs:
        raise ValidationError(role, "the Dataset is empty")
    return np.stack(xs), np.stack(ys)


def problem_from_datasets(
    train: Any, meta: Any, test: Any, num_classes: int | None = None, name: str = "custom",
    corrupted: Any = None, task: str | None = None,
) -> SelectionProblem:
    """A :class:`SelectionProblem` from three torch ``Dataset``s yielding ``(x, y)`` pairs (inputs
    of one shape, integer labels or real targets, ``task`` as in :func:`problem_from_arrays`),
    stacked into arrays. ``corrupted`` is an optional boolean mask over the training items."""
    (x_tr, y_tr), (x_me, y_me), (x_te, y_te) = (
        _stack_dataset(ds, role) for role, ds in zip(ROLES, (train, meta, test))
    )
    return problem_from_arrays(x_tr, y_tr, x_me, y_me, x_te, y_te, num_classes=num_classes, corrupted=corrupted,
                               name=name, task=task)
