"""One process per run folder: a lock file with the holder's pid.

``DIR/.pyrodps.lock`` holds ``{"pid", "host", "since", "argv"}`` of the process using the folder, which
keeps an exclusive ``flock`` on it for as long as it runs (the operating system releases it when the
process dies, however it dies). A second process is refused with :class:`RunFolderLockedError` naming
the holder; a lock file whose holder is gone (a killed run) is taken over with a warning naming the dead
pid. Where ``fcntl`` is missing (Windows) the holder's liveness is judged by its pid alone.

The lock is re-entrant within a process (the command line and :func:`~pyrodps.bads.fit.fit_bads` both
take it) and released (the file removed) when the outermost holder lets go.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from pyrodps.errors import PyrodpsError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_FILE = ".pyrodps.lock"


class RunFolderLockedError(PyrodpsError):
    """Another live process is using the run folder."""

    def __init__(self, folder: Path, holder: dict) -> None:
        self.folder, self.holder = folder, holder
        pid = holder.get("pid", "?")
        since = holder.get("since")
        when = f" since {since}" if since else ""
        super().__init__(f"out: {folder} is in use by process {pid} on {holder.get('host', '?')}{when}; wait for "
                         f"it to finish or stop it (kill {pid}) before running or resuming in this folder")


class StaleLockWarning(UserWarning):
    """A lock left by a process that no longer runs was taken over."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_holder(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


_held: dict[Path, tuple[int, int]] = {}  # folder -> (file descriptor, depth)


def holder_of(folder: str | Path) -> dict | None:
    """The live process using ``folder`` (its lock record), or ``None`` if the folder is free."""
    folder = Path(folder).resolve()
    path = folder / LOCK_FILE
    if folder in _held or not path.is_file():
        return None
    holder = _read_holder(path)
    if fcntl is not None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return holder or {"pid": "?"}
        finally:
            os.close(fd)  # closing drops the shared lock if it was taken
        return None
    pid = holder.get("pid")
    same_host = holder.get("host") == socket.gethostname()
    return holder if isinstance(pid, int) and (not same_host or _pid_alive(pid)) else None


def check_unlocked(folder: str | Path) -> None:
    """Raise :class:`RunFolderLockedError` if another live process holds ``folder``'s lock."""
    holder = holder_of(folder)
    if holder is not None:
        raise RunFolderLockedError(Path(folder), holder)


def _acquire(folder: Path) -> int:
    path = folder / LOCK_FILE
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(10):  # retry if the holder released (and removed) the file while we waited
        if fcntl is None:
            check_unlocked(folder)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunFolderLockedError(folder, _read_holder(path) or {"pid": "?"}) from None
        try:
            same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same_file = False
        if not same_file:
            os.close(fd)
            continue
        old = _read_holder(path)
        if old.get("pid") not in (None, os.getpid()):
            warnings.warn(f"{path}: taking over the lock of process {old.get('pid')} on {old.get('host', '?')}, "
                          "which no longer runs (a killed run)", StaleLockWarning, stacklevel=3)
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        return fd
    raise RunFolderLockedError(folder, _read_holder(path) or {"pid": "?"})


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """Hold ``folder``'s lock for the duration (creating the folder); re-entrant within a process."""
    folder = Path(folder).resolve()
    if folder in _held:
        fd, depth = _held[folder]
        _held[folder] = (fd, depth + 1)
    else:
        _held[folder] = (_acquire(folder), 1)
    try:
        yield folder
    finally:
        fd, depth = _held[folder]
        if depth > 1:
            _held[folder] = (fd, depth - 1)
        else:
            del _held[folder]
            with contextlib.suppress(OSError):
                (folder / LOCK_FILE).unlink()
            os.close(fd)  # releases the flock
