"""Step-size schedules ``η_t`` for SGLD (``t`` counts steps from 0)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pyrodps.errors import ValidationError, check_positive, check_positive_int


@runtime_checkable
class Schedule(Protocol):
    """A step size as a function of the step counter."""

    def __call__(self, t: int) -> float: ...


@dataclass(frozen=True)
class Constant:
    """``η_t = value``."""

    value: float

    def __post_init__(self) -> None:
        check_positive("step_size", self.value)

    def __call__(self, t: int) -> float:
        return self.value


@dataclass(frozen=True)
class PolynomialDecay:
    """``η_t = a (b + t)^(-γ)`` with ``γ ∈ (0.5, 1]`` (Welling & Teh 2011: Σ η_t = ∞, Σ η_t² < ∞)."""

    a: float
    b: float = 1.0
    gamma: float = 0.55

    def __post_init__(self) -> None:
        check_positive("step_size", self.a)
        check_positive("decay_b", self.b)
        if not 0.5 < self.gamma <= 1.0:
            raise ValidationError("decay_gamma", f"must lie in (0.5, 1], got {self.gamma}")

    def __call__(self, t: int) -> float:
        return self.a * (self.b + t) ** (-self.gamma)


@dataclass(frozen=True)
class Cyclical:
    """Cosine cycles (Zhang et al. 2020, cSG-MCMC): ``η_t = (η_0 / 2) (cos(π (t mod L) / L) + 1)``."""

    base: float
    cycle_length: int

    def __post_init__(self) -> None:
        check_positive("step_size", self.base)
        check_positive_int("cycle_length", self.cycle_length)

    def __call__(self, t: int) -> float:
        phase = (t % self.cycle_length) / self.cycle_length
        return 0.5 * self.base * (math.cos(math.pi * phase) + 1.0)


def as_schedule(value: float | Schedule, argument: str = "step_size") -> Schedule:
    """A number becomes a :class:`Constant` schedule; a schedule passes through."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        check_positive(argument, value)
        return Constant(float(value))
    if callable(value):
        return value
    raise ValidationError(argument, f"must be a positive number or a schedule, got {value!r}")
