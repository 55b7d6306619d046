"""Typed errors raised by pyrodps.

Every check of user input raises :class:`ValidationError` (a :class:`ValueError`) that names the
offending argument, before any work starts and before any output is written.
"""

from __future__ import annotations


class PyrodpsError(Exception):
    """Base class of every error pyrodps raises on purpose."""


class ValidationError(PyrodpsError, ValueError):
    """Bad user input. ``argument`` names the offending argument."""

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        super().__init__(f"{argument}: {message}")


class PieceError(PyrodpsError):
    """A piece of the model a user supplied (a prior, a likelihood, a θ-block sampler) raised or
    returned a non-finite value at finite inputs while the sampler ran. ``role`` says what the piece
    is (``"weight prior"``), ``piece`` its class name and ``method`` the method that failed."""

    def __init__(self, role: str, piece: object, method: str, problem: str) -> None:
        self.role, self.piece, self.method = role, type(piece).__name__, method
        super().__init__(f"the {role} {self.piece} failed in {method}: {problem}")


class blame:
    """Turn an exception raised inside ``piece.method`` into a :class:`PieceError` naming the piece."""

    __slots__ = ("method", "piece", "role")

    def __init__(self, role: str, piece: object, method: str) -> None:
        self.role, self.piece, self.method = role, piece, method

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, tb) -> bool:
        if error is None or isinstance(error, PyrodpsError) or not isinstance(error, Exception):
            return False
        text = f"{type(error).__name__}: {error}"
        raise PieceError(self.role, self.piece, self.method, text if len(text) <= 300 else text[:297] + "...") from error


class WriteError(PyrodpsError, OSError):
    """Writing a result or checkpoint file failed (a full disk: ``errno.ENOSPC``); what was written
    before is intact. ``errno`` is the operating system's error number."""

    def __init__(self, path: object, error: OSError, consequence: str = "") -> None:
        self.path, self.error = path, error.error if isinstance(error, WriteError) else error
        reason = self.error.strerror or str(self.error)
        super().__init__(self.error.errno, f"could not write {path}: {reason}" + (f". {consequence}" if consequence else ""))

    def __str__(self) -> str:
        return str(self.args[1])


class OutputExistsError(PyrodpsError, FileExistsError):
    """The output directory exists and is not empty (pass ``--force`` to overwrite)."""


def check_positive(argument: str, value: float) -> float:
    """Return ``value`` if it is a finite number > 0, else raise :class:`ValidationError`."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValidationError(argument, f"must be a number, got {value!r}") from None
    if not (v > 0.0 and v < float("inf")):
        raise ValidationError(argument, f"must be a finite number > 0, got {value!r}")
    return v


def check_positive_int(argument: str, value: int, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer >= ``minimum``, else raise :class:`ValidationError`."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np

            if isinstance(value, np.integer):
                value = int(value)
            else:
                raise TypeError
        except TypeError:
            raise ValidationError(argument, f"must be an integer, got {value!r}") from None
    if value < minimum:
        raise ValidationError(argument, f"must be >= {minimum}, got {value}")
    return value


def check_fraction(argument: str, value: float, *, open_low: bool = False, open_high: bool = True) -> float:
    """Return ``value`` if it lies in the unit interval (ends open or closed as asked)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValidationError(argument, f"must be a number, got {value!r}") from None
    low_ok = v > 0.0 if open_low else v >= 0.0
    high_ok = v < 1.0 if open_high else v <= 1.0
    if not (low_ok and high_ok):
        lo = "(" if open_low else "["
        hi = ")" if open_high else "]"
        raise ValidationError(argument, f"must lie in {lo}0, 1{hi}, got {value!r}")
    return v


def check_choice(argument: str, value: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValidationError(argument, f"unknown value {value!r}; choose one of {', '.join(choices)}")
    return value
