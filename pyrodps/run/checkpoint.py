"""Checkpoints: everything a run needs to continue exactly where it stopped, safe to open and hard to lose.

A checkpoint holds a *payload* (the driver's position, the kernel's state, the batch stream's state,
the online weight statistics, the kept draws and every RNG state, see :func:`pyrodps.run.driver.sample`)
together with the pyrodps version and a *fingerprint* of the run's configuration.

- **No code runs on load.** The payload is tensors, numbers, strings and built-in containers only
  (:func:`snapshot` turns generators and numpy arrays into tensors), written with ``torch.save`` and
  read with ``weights_only=True`` (:func:`safe_load`), so a run folder someone sent you cannot execute
  anything on ``--resume``.
- **Two generations with checksums** (:class:`Checkpointer`): the latest and the previous checkpoint,
  with their sha256 in a manifest; a truncated or altered latest falls back to the previous one.
- **Atomic writes.** Files are written to a temporary name, ``fsync``-ed and renamed, so a kill at any
  instant leaves complete files; a failed write (a full disk) raises :class:`CheckpointWriteError`
  and leaves the earlier generations as they were.

Resuming refuses a checkpoint whose version or fingerprint differs from the run asking for it.

State objects are saved generically: :func:`snapshot` walks the attributes of a state dataclass or
a stream (tensors are copied, ``torch.Generator`` s saved by ``get_state()``, numbers and nested
objects recursively), and :func:`restore_` writes them back *in place*, so tensors that other
objects hold views of (the network parameters bound to a flat θ) stay bound.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyrodps.errors import PyrodpsError, WriteError
from pyrodps.io import atomic_write, fsync_dir, write_json

FORMAT_VERSION = 2


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
    if isinstance(obj, _SCALARS):
        return obj
    if isinstance(obj, (np.ndarray, np.generic)):  # as a tensor: the file stays free of numpy globals
        return {"__numpy__": torch.from_numpy(np.array(obj, copy=True)), "scalar": isinstance(obj, np.generic)}
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
    if isinstance(snap, dict) and "__numpy__" in snap:
        array = snap["__numpy__"].numpy().copy()
        return array[()] if snap["scalar"] else array
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
class CheckpointUnreadableError(PyrodpsError):
    """No generation of a checkpoint can be used: each is missing, corrupt, fails its checksum or holds
    objects that loading would have to execute."""


class CheckpointWriteError(WriteError):
    """Writing a checkpoint failed (e.g. ``ENOSPC``); the previous generations are untouched."""


class CheckpointFallbackWarning(UserWarning):
    """The latest checkpoint was unusable and the run resumed from the previous generation."""


def atomic_torch_save(payload: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically (:func:`pyrodps.io.atomic_write`: temporary file,
    ``fsync``, rename, ``fsync`` of the folder)."""
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def safe_load(path: str | Path) -> Any:
    """Read a file written by ``torch.save`` **without running code from it**: ``weights_only=True``
    admits tensors, numbers, strings and the built-in containers only (a pickle that names any other
    callable, e.g. one whose ``__reduce__`` writes a file, is refused before anything is called)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def sha256_of(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_files(path: str | Path) -> tuple[Path, Path, Path]:
    """The files of the checkpoint at ``path``: latest (``path``), previous (``NAME.prev.pt``) and the
    manifest (``NAME.json``)."""
    path = Path(path)
    return path, path.with_name(f"{path.stem}.prev{path.suffix}"), path.with_suffix(".json")


def remove_checkpoint(path: str | Path) -> None:
    """Delete every file of the checkpoint at ``path`` (a finished run's, or one ``--force`` discards)."""
    for f in checkpoint_files(path):
        f.unlink(missing_ok=True)


KEEP_CHECKSUMS = 3  # the manifest lists the last few generations written: a crash between writes loses none


class Checkpointer:
    """Writes the driver's payload every ``every`` steps and reads it back, keeping **two generations**.

    Files, for ``path = DIR/checkpoint.pt``: ``checkpoint.pt`` (the latest), ``checkpoint.prev.pt``
    (the one before) and the manifest ``checkpoint.json``, which records the sha256 of the last
    generations written. A save writes the new file to a temporary name (``fsync``), adds its checksum to
    the manifest (written atomically), then renames latest → previous and the new file → latest. A kill
    at any instant therefore leaves at least one generation whose checksum the manifest holds.

    Loading tries the latest, then the previous generation; a generation is used only if it exists, its
    checksum is in the manifest and it loads with :func:`safe_load` (no code runs). Falling back warns
    (:class:`CheckpointFallbackWarning`) naming both files; when every existing generation is bad,
    :class:`CheckpointUnreadableError` lists why. A write failure raises :class:`CheckpointWriteError`
    and leaves the files as they were.

    Args:
        path: the latest checkpoint file (conventionally ``DIR/checkpoint.pt``).
        every: steps between checkpoints (the last step of every chain is always saved).
        config: the run's configuration; its :func:`fingerprint` must match on resume.
    """

    def __init__(self, path: str | Path, every: int, config: dict) -> None:
        from pyrodps.errors import check_positive_int

        self.path, self.previous, self.manifest = checkpoint_files(path)
        self.every = check_positive_int("checkpoint_every", every)
        self.fingerprint = fingerprint(config)

    def save(self, payload: dict) -> None:
        """Write ``payload`` with the format, version and fingerprint as the new latest generation."""
        self.write({"format": FORMAT_VERSION, "version": pyrodps_version(), "fingerprint": self.fingerprint,
                    **payload})

    def write(self, data: dict) -> None:
        """Write ``data`` as is as the new latest generation (see the class docstring for the order)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        try:
            try:
                torch.save(data, tmp)
            except RuntimeError as e:  # torch's zip writer reports a failed write (a full disk) this way
                raise OSError(errno.EIO, f"torch.save failed ({str(e).strip()[:200]})") from e
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            entry = {"sha256": sha256_of(tmp), "chain": data.get("chain"), "t": data.get("t")}
            entries = self._manifest_entries()
            if entries is None and self.path.is_file():  # a lost manifest: vouch for the generation we keep
                entries = [{"sha256": sha256_of(self.path)}]
            known = [e for e in entries or [] if isinstance(e, dict) and e.get("sha256") != entry["sha256"]]
            write_json(self.manifest, {"format": FORMAT_VERSION, "generations": [entry, *known][:KEEP_CHECKSUMS]})
            if self.path.exists():
                os.replace(self.path, self.previous)
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
        except OSError as e:
            raise CheckpointWriteError(getattr(e, "path", self.path), e, "The earlier checkpoint files are intact: free the space "
                                       "(or fix the folder) and resume") from e
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _manifest_entries(self) -> list[dict] | None:
        """The manifest's generations, ``None`` if it is missing or unreadable."""
        try:
            entries = json.loads(self.manifest.read_text())["generations"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return entries if isinstance(entries, list) else None

    def load(self) -> dict | None:
        """The newest usable generation's payload; ``None`` if there is no checkpoint yet. Refuses a
        checkpoint of another version or configuration (:class:`CheckpointMismatchError`)."""
        existing = [p for p in (self.path, self.previous) if p.is_file()]
        if not existing:
            return None
        entries = self._manifest_entries()
        known = None if entries is None else {e.get("sha256") for e in entries if isinstance(e, dict)}
        if known is None:
            warnings.warn(f"checkpoint manifest {self.manifest} is missing or unreadable: the checkpoints' "
                          "checksums cannot be verified", CheckpointFallbackWarning, stacklevel=2)
        problems: list[str] = []
        for p in (self.path, self.previous):
            data, problem = self._read(p, known)
            if problem is not None:
                problems.append(f"{p}: {problem}")
                continue
            if problems:
                warnings.warn(f"resuming from the previous checkpoint {p} because the latest one is unusable "
                              f"({problems[0]})", CheckpointFallbackWarning, stacklevel=2)
            return self._check(p, data)
        raise CheckpointUnreadableError("no usable checkpoint, start a new run: " + "; ".join(problems))

    @staticmethod
    def _read(path: Path, known: set | None) -> tuple[dict | None, str | None]:
        """``(data, None)`` for a good generation, ``(None, why)`` for a bad one."""
        if not path.is_file():
            return None, "missing"
        try:
            digest = sha256_of(path)
        except OSError as e:
            return None, f"cannot be read ({e})"
        if known is not None and digest not in known:
            return None, "its sha256 is not in the manifest (truncated, corrupted or replaced)"
        try:
            data = safe_load(path)
        except pickle.UnpicklingError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return None, f"refused: it holds objects whose loading would run code ({first[:200]})"
        except Exception as e:  # noqa: BLE001 - any unreadable file is reported the same way
            return None, f"cannot be read ({type(e).__name__}: {str(e)[:200]})"
        if not isinstance(data, dict):
            return None, f"holds a {type(data).__name__}, not a checkpoint"
        return data, None

    def _check(self, path: Path, data: dict) -> dict:
        if data.get("format") != FORMAT_VERSION or data.get("version") != pyrodps_version():
            raise CheckpointMismatchError(
                f"checkpoint {path} was written by pyrodps {data.get('version')} (format "
                f"{data.get('format')}); this is pyrodps {pyrodps_version()} (format {FORMAT_VERSION}): "
                "start a new run"
            )
        if data.get("fingerprint") != self.fingerprint:
            raise CheckpointMismatchError(
                f"checkpoint {path} belongs to a different configuration (fingerprint "
                f"{data.get('fingerprint')}, this run {self.fingerprint}): resume with the same "
                "settings, or start a new run in another folder"
            )
        return data
