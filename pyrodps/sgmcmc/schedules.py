"""Step-size schedules ``η_t`` for SGLD (``t`` counts steps from 0)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pyrodps.errors import ValidationError, check_positive


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
class ScaledSchedule:
    """``η'_t = factor · η_t``: a schedule backed off by a constant factor (the divergence guard's
    back-off multiplies the factor; the run's checkpoint stores it)."""

    base: Schedule
    factor: float

    def __call__(self, t: int) -> float:
        return self.factor * self.base(t)


def as_schedule(value: float | Schedule, argument: str = "step_size") -> Schedule:
    """A number becomes a :class:`Constant` schedule; a schedule passes through."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        check_positive(argument, value)
        return Constant(float(value))
    if callable(value):
        return value
    raise ValidationError(argument, f"must be a positive number or a schedule, got {value!r}")


class ScalableStepSizes:
    """Mixin for a kernel whose step-size schedules (the attributes named in ``scaled_schedules``)
    can be multiplied by a factor at run time, e.g. by the divergence guard's back-off.

    The product of the factors is the kernel's *hyper-state*: :meth:`state_dict` returns it and a
    checkpoint stores it, so a resumed run continues at the backed-off step size.
    """

    scaled_schedules: tuple[str, ...] = ("step_size",)
    step_scale: float = 1.0

    def scale_step_size(self, factor: float) -> None:
        """Multiply every scaled schedule by ``factor`` from now on."""
        self._set_step_scale(self.step_scale * float(factor))

    def _set_step_scale(self, scale: float) -> None:
        bases = self.__dict__.setdefault("_base_schedules", {n: getattr(self, n) for n in self.scaled_schedules})
        self.step_scale = scale
        for name, base in bases.items():
            setattr(self, name, base if scale == 1.0 else ScaledSchedule(base, scale))

    def state_dict(self) -> dict:
        """The kernel's hyper-state: ``{"step_scale": s}``."""
        return {"step_scale": self.step_scale}

    def load_state_dict(self, state: dict) -> None:
        self._set_step_scale(float(state["step_scale"]))
