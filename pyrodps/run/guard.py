"""The divergence guard: stop (or back the step size off) when the sampler produces a non-finite
energy, gradient or parameter.

The driver checks every ``every`` steps, at every kept step and before every checkpoint, so a
checkpoint and a kept draw are always finite. Checks look at the floating tensors of the kernel's
state (all of them, or the fields a kernel names in ``guarded_state``: the BADS kernel names θ,
its preconditioner, the companion chain and φ, and leaves out the length-N weight table, whose only
entries that move in a step are the batch's, checked through ``info["w"]``; so a check costs O(P + B),
not O(N)) and of the step's ``info`` (energy, gradient norm, the batch's weights).

On divergence, ``action="raise"`` raises :class:`DivergenceError` naming the chain, the step, the
step size and the quantity; the last good checkpoint is left as it was. ``action="backoff"``
returns the chain to its last good state (taken at the last check that passed a snapshot point),
multiplies the step size by ``factor`` from then on, records the event, and continues; after
``max_backoffs`` back-offs it raises.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from pyrodps.errors import (
    PieceError,
    PyrodpsError,
    ValidationError,
    check_choice,
    check_positive_int,
)

GUARD_ACTIONS = ("raise", "backoff")


class DivergenceError(PyrodpsError, FloatingPointError):
    """The sampler produced a non-finite value."""

    def __init__(self, chain: int, step: int, quantity: str, step_size: float | None, hint: str = "",
                 piece: PieceError | None = None) -> None:
        self.chain, self.step, self.quantity, self.step_size, self.piece = chain, step, quantity, step_size, piece
        size = "unknown" if step_size is None else f"{step_size:.3g}"
        if piece is not None:  # a user's prior, likelihood or sampler failed
            super().__init__(f"the sampler stopped at step {step} of chain {chain} (step size {size}): {piece}.{hint}")
            return
        super().__init__(
            f"the sampler diverged at step {step} of chain {chain}: {quantity} is not finite "
            f"(step size {size}). Lower the step size, or back it off automatically with "
            f"on_divergence='backoff' (CLI: --on-divergence backoff).{hint}"
        )


@dataclass
class DivergenceGuard:
    """How the driver watches for divergence.

    Args:
        every: check every this many steps (each check costs one pass over the state).
        action: ``"raise"`` or ``"backoff"``.
        factor: the step size is multiplied by this at each back-off (in (0, 1)).
        max_backoffs: back-offs allowed per run before giving up with :class:`DivergenceError`.
        snapshot_every: with ``"backoff"``, how often the last good state is remembered (steps).
    """

    every: int = 10
    action: str = "raise"
    factor: float = 0.5
    max_backoffs: int = 5
    snapshot_every: int = 100

    def __post_init__(self) -> None:
        check_positive_int("guard_every", self.every)
        check_choice("on_divergence", self.action, GUARD_ACTIONS)
        if not (0.0 < float(self.factor) < 1.0):
            raise ValidationError("backoff_factor", f"must lie in (0, 1), got {self.factor!r}")
        check_positive_int("max_backoffs", self.max_backoffs, minimum=0)
        check_positive_int("snapshot_every", self.snapshot_every)


def first_nonfinite(state: object, info: dict[str, torch.Tensor], names: tuple[str, ...] | None = None) -> str | None:
    """The name of the first floating tensor of ``state`` (only its fields ``names``, when given)
    or of ``info`` holding NaN or ±inf."""
    fields = (
        {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
        if dataclasses.is_dataclass(state)
        else dict(getattr(state, "__dict__", {}))
    )
    if names is not None:
        fields = {name: fields[name] for name in names if name in fields}
    for source, items in (("state", fields), ("info", info)):
        for name, value in items.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                return _describe(name, source)
    return None


_NAMES = {"theta": "the parameters θ", "u": "the weight table u", "energy": "the energy",
          "grad_norm": "the gradient ∇θ U", "w": "the batch's weights", "companion": "the companion chain θ'",
          "phi": "the weight-network parameters φ", "precond_v": "the pSGLD second moment",
          "position": "the position"}


def _describe(name: str, source: str) -> str:
    return f"{_NAMES.get(name, name)} ({source}.{name})"


def back_off(kernel: object, factor: float) -> tuple[float | None, float | None]:
    """Scale the kernel's step sizes by ``factor`` (``kernel.scale_step_size``, see
    :class:`~pyrodps.sgmcmc.schedules.ScalableStepSizes`); returns the step size at t=0 before and after."""
    if not hasattr(kernel, "scale_step_size"):
        raise PyrodpsError("on_divergence='backoff' needs a kernel with scale_step_size (ScalableStepSizes)")
    before = current_step_size(kernel, 0)
    kernel.scale_step_size(factor)
    return before, current_step_size(kernel, 0)


def current_step_size(kernel: object, step: int) -> float | None:
    schedule = getattr(kernel, "step_size", None)
    if schedule is None:
        return None
    value = float(schedule(step))
    return value if math.isfinite(value) else None
