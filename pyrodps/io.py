"""Atomic result files: write to a temporary file in the same folder, fsync, rename.

A reader never sees a half-written file, and a killed run leaves either the old file or the new one.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pyrodps.errors import ValidationError, WriteError


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Replace ``path`` atomically with what ``write(tmp)`` writes to a temporary path in the same
    folder: the temporary file is flushed to disk (``fsync``), renamed over ``path``, and the folder
    is ``fsync``-ed so the rename itself survives a crash. On any error the temporary file goes, and an
    ``OSError`` (a full disk) becomes a :class:`~pyrodps.errors.WriteError` naming ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise WriteError(path, e) from e
        raise
    fsync_dir(path.parent)
    return path


def fsync_dir(folder: str | Path) -> None:
    """``fsync`` a folder, so that renames inside it survive a crash."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def write_json(path: str | Path, obj: object) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Atomically write arrays to an ``.npz`` file (numeric arrays only: no pickled objects)."""
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def read_json(path: str | Path, argument: str) -> dict:
    """Read a JSON object from ``path``; a missing, unreadable or corrupt file raises
    :class:`~pyrodps.errors.ValidationError` naming ``argument`` and the file."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError(argument, f"{path} does not exist")
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValidationError(argument, f"{path} is corrupt or unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(value, dict):
        raise ValidationError(argument, f"{path} holds a JSON {type(value).__name__}, not an object")
    return value


def read_npz(path: str | Path, argument: str) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file (no pickled objects); a missing, truncated or corrupt
    file raises :class:`~pyrodps.errors.ValidationError` naming ``argument`` and the file."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError(argument, f"{path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception as e:  # noqa: BLE001 - zipfile, numpy and OS errors all mean the same here
        raise ValidationError(argument, f"{path} is corrupt or unreadable ({type(e).__name__}: {e})") from None
