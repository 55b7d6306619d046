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


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Replace ``path`` atomically with what ``write(tmp)`` writes to a temporary path in the same
    folder: the temporary file is flushed to disk (``fsync``), renamed over ``path``, and the folder
    is ``fsync``-ed so the rename itself survives a crash. On any error the temporary file goes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def write_json(path: str | Path, obj: object) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Atomically write arrays to an ``.npz`` file."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
