"""Checkpoints: everything a run needs to continue exactly where it stopped, written atomically.

A checkpoint is one ``torch.save`` file holding a *payload* (the driver's position, the kernel's
state, the batch stream's state, the online weight statistics, the kept draws and every RNG state,
see :func:`pyrodps.run.driver.sample`) together with the pyrodps version and a *fingerprint*
of the run's configuration. It is written to a temporary file in the same folder, flushed with
``fsync`` and renamed over the old one, so a reader (or a run killed with SIGKILL at any instant)
sees either the previous complete checkpoint or the new complete one, never a torn file.

Resuming refuses a checkpoint whose version or fingerprint differs from the run asking for it.

State objects are saved generically: :func:`snapshot` walks the attributes of a state dataclass or
a stream (tensors are copied, ``torch.Generator`` s saved by ``get_state()``, numbers and nested
objects recursively), and :func:`restore_` writes them back *in place*, so tensors that other
objects hold views of (the network parameters bound to a flat θ) stay bound.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyrodps.errors import PyrodpsError
from pyrodps.io import atomic_write

FORMAT_VERSION = 1


class CheckpointMismatchError(PyrodpsError):
    """A checkpoint was written by another version of pyrodps or for another configuration."""


def pyrodps_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyrodps")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def fingerprint(config: dict) -> str:
    """A stable hash of a JSON-able configuration (keys sorted)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- state objects
_SCALARS = (int, float, bool, str, type(None))


def _fields(obj: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(obj):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return dict(vars(obj))


def snapshot(obj: Any) -> Any:
    """A detached CPU copy of ``obj``'s state: tensors cloned, generators as their state, numbers
    kept, the attributes of dataclasses and plain objects walked recursively. Attributes a class names in
    ``snapshot_exclude`` (a data set) and devices are not state and are skipped."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, torch.Generator):
        return {"__generator__": obj.get_state()}
    if isinstance(obj, (*_SCALARS, np.generic)):
        return obj
    if isinstance(obj, np.ndarray):
        return obj.copy()
    if isinstance(obj, (list, tuple)):
        return [snapshot(v) for v in obj]
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    skip = getattr(type(obj), "snapshot_exclude", ())
    return {"__object__": {k: snapshot(v) for k, v in _fields(obj).items() if not _is_data(k, v, skip)}}


def _is_data(name: str, value: Any, skip: tuple[str, ...]) -> bool:
    """Attributes that hold data or devices rather than state: not saved. A class lists its data
    attributes in ``snapshot_exclude`` (a batch stream: its data set)."""
    return name in skip or isinstance(value, torch.device) or name == "device"


def restore_(obj: Any, snap: Any) -> Any:
    """Write ``snap`` (from :func:`snapshot`) back into ``obj`` in place and return the restored
    value (for immutable leaves, the value itself)."""
    if isinstance(snap, dict) and "__generator__" in snap:
        obj.set_state(snap["__generator__"])
        return obj
    if isinstance(snap, torch.Tensor):
        if isinstance(obj, torch.Tensor) and obj.shape == snap.shape and obj.dtype == snap.dtype:
            with torch.no_grad():
                obj.copy_(snap)
            return obj
        device = obj.device if isinstance(obj, torch.Tensor) else "cpu"
        return snap.to(device)
    if isinstance(snap, dict) and "__object__" in snap:
        for name, value in snap["__object__"].items():
            current = getattr(obj, name)
            setattr(obj, name, restore_(current, value))
        return obj
    if isinstance(snap, list):
        if isinstance(obj, (list, tuple)) and len(obj) == len(snap):
            return type(obj)(restore_(o, s) for o, s in zip(obj, snap))
        return snap
    return snap


# ----------------------------------------------------------------------------- files
def atomic_torch_save(payload: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically (:func:`pyrodps.io.atomic_write`: temporary file,
    ``fsync``, rename, ``fsync`` of the folder)."""
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


class Checkpointer:
    """Writes the driver's payload every ``every`` steps to ``path`` and reads it back.

    Args:
        path: the checkpoint file (conventionally ``DIR/checkpoint.pt``).
        every: steps between checkpoints (the last step of every chain is always saved).
        config: the run's configuration; its :func:`fingerprint` must match on resume.
    """

    def __init__(self, path: str | Path, every: int, config: dict) -> None:
        from pyrodps.errors import check_positive_int

        self.path = Path(path)
        self.every = check_positive_int("checkpoint_every", every)
        self.fingerprint = fingerprint(config)

    def save(self, payload: dict) -> None:
        atomic_torch_save(
            {"format": FORMAT_VERSION, "version": pyrodps_version(), "fingerprint": self.fingerprint, **payload},
            self.path,
        )

    def load(self) -> dict | None:
        """The saved payload, ``None`` if there is no checkpoint yet; refuses a foreign one."""
        if not self.path.is_file():
            return None
        try:
            data = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001 - any unreadable file is reported the same way
            raise CheckpointMismatchError(f"cannot read checkpoint {self.path}: {e}") from None
        if data.get("format") != FORMAT_VERSION or data.get("version") != pyrodps_version():
            raise CheckpointMismatchError(
                f"checkpoint {self.path} was written by pyrodps {data.get('version')} (format "
                f"{data.get('format')}); this is pyrodps {pyrodps_version()} (format {FORMAT_VERSION}): "
                "start a new run"
            )
        if data.get("fingerprint") != self.fingerprint:
            raise CheckpointMismatchError(
                f"checkpoint {self.path} belongs to a different configuration (fingerprint "
                f"{data.get('fingerprint')}, this run {self.fingerprint}): resume with the same "
                "settings, or start a new run in another folder"
            )
        return data
