"""Graceful stop: SIGINT / SIGTERM end a checkpointed run cleanly instead of killing it.

Clusters pre-empt jobs with SIGTERM, people press Ctrl-C. While :func:`graceful_stop` is active, the
**first** such signal only sets a flag: the driver finishes the step it is in, writes a checkpoint
and raises :class:`RunInterrupted` (the command line prints how to resume and exits with
``128 + signal``). A **second** signal stops at once: it raises :class:`StopNow` (a
``KeyboardInterrupt``) wherever the program is; atomic writes leave no torn file behind.

Handlers can only be installed in the main thread; elsewhere :func:`graceful_stop` yields a flag
that never fires and signals keep their usual effect.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from pyrodps.errors import PyrodpsError

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(PyrodpsError):
    """A run stopped on a signal after writing a checkpoint at ``(chain, step)``."""

    def __init__(self, signum: int, chain: int, step: int, checkpoint: Path | None) -> None:
        self.signum, self.chain, self.step, self.checkpoint = signum, chain, step, checkpoint
        where = "no checkpoint was configured" if checkpoint is None else f"checkpoint written to {checkpoint}"
        super().__init__(f"stopped by {signal.Signals(signum).name} at chain {chain}, step {step}; {where}")

    @property
    def exit_code(self) -> int:
        """The shell convention for a process ended by a signal: 128 + its number."""
        return 128 + int(self.signum)


class StopNow(KeyboardInterrupt):
    """The second SIGINT/SIGTERM: stop at once, without a final checkpoint."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"second {signal.Signals(signum).name}: stopped at once")


class StopFlag:
    """Which signal asked the run to stop (``None`` while none has)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            raise StopNow(signum)
        self.signum = signum
        print(f"\npyrodps: {signal.Signals(signum).name} received: finishing the current step and writing a "
              "checkpoint (send it again to stop at once)", file=sys.stderr, flush=True)


_active: list[StopFlag] = []


def active_flag() -> StopFlag | None:
    """The flag of the :func:`graceful_stop` in force (``None`` outside one): what a data-parallel kernel
    (:mod:`pyrodps.parallel`) sets on every rank at once when a signal reached any one of them."""
    return _active[-1] if _active else None


@contextlib.contextmanager
def graceful_stop() -> Iterator[StopFlag]:
    """Install the SIGINT/SIGTERM handlers for the duration (nested uses share the outer flag) and
    restore the previous handlers afterwards."""
    if _active:
        yield _active[-1]
        return
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {s: signal.signal(s, flag.handle) for s in SIGNALS}
    _active.append(flag)
    try:
        yield flag
    finally:
        _active.pop()
        for s, handler in previous.items():
            signal.signal(s, handler)
