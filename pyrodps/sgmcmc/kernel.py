"""The kernel interface, and plain (p)SGLD on a flat vector for any differentiable energy.

A kernel is two functions, as in NumPyro: ``init(...) -> state`` and
``step(state, batch, diagnostics) -> (state, info)``. Data comes with every step; the driver
(:mod:`pyrodps.run.driver`), not the kernel, owns burn-in, thinning, chains and storage.
States are mutable dataclasses that ``step`` updates in place (a weight table of length N must
not be copied per step) and returns. ``info`` holds 0-d tensors, read by the driver only when it
keeps a draw; ``diagnostics=False`` lets a kernel skip the summaries that only a kept draw or the
progress bar reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import torch

from pyrodps.errors import check_positive
from pyrodps.sgmcmc.integrators import (
    Integrator,
    PSGLDIntegrator,
    RMSprop,
    SGLDIntegrator,
    clip_norm_,
)
from pyrodps.sgmcmc.schedules import ScalableStepSizes, Schedule, as_schedule

S = TypeVar("S")
B_contra = TypeVar("B_contra", contravariant=True)


class Kernel(Protocol, Generic[S, B_contra]):
    """What the driver needs of a sampler."""

    def init(self, seed: int, chain: int = 0) -> S: ...

    def step(self, state: S, batch: B_contra, diagnostics: bool = True) -> tuple[S, dict[str, torch.Tensor]]: ...

    def site(self, state: S, info: dict[str, torch.Tensor], name: str) -> torch.Tensor: ...


def make_generator(seed: int, chain: int = 0, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from ``(seed, chain)``: chains are independent and reproducible."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed) * 1_000_003 + int(chain))
    return g


@dataclass
class SGLDState:
    position: torch.Tensor
    step: int
    generator: torch.Generator
    aux: torch.Tensor | None = None


class SGLD(ScalableStepSizes):
    """(p)SGLD, or any :class:`~pyrodps.sgmcmc.integrators.Integrator`, on a flat position vector for
    a differentiable energy ``U(x; batch)``.

    ``x ← x - (η_t/2) G ∇U(x) + sqrt(η_t T G) ξ`` (see :mod:`pyrodps.sgmcmc.integrators`).
    With ``energy_fn`` an unbiased minibatch estimate of ``U``, this is SGLD of Welling & Teh (2011).
    ``preconditioner`` is shorthand for ``sampler=PSGLDIntegrator(alpha, eps)``.
    """

    def __init__(
        self,
        energy_fn: Callable[[torch.Tensor, Any], torch.Tensor],
        initial_position: torch.Tensor,
        step_size: float | Schedule,
        *,
        temperature: float = 1.0,
        preconditioner: RMSprop | None = None,
        clip_norm: float | None = None,
        sampler: Integrator | None = None,
    ) -> None:
        self.energy_fn = energy_fn
        self.initial_position = initial_position.detach().clone()
        self.step_size = as_schedule(step_size)
        self.temperature = check_positive("temperature", temperature)
        if sampler is None:
            sampler = SGLDIntegrator() if preconditioner is None else PSGLDIntegrator(preconditioner.alpha,
                                                                                      preconditioner.eps)
        self.sampler = sampler
        self.clip_norm = None if clip_norm is None else check_positive("clip_norm", clip_norm)

    def init(self, seed: int, chain: int = 0) -> SGLDState:
        x = self.initial_position.clone()
        return SGLDState(x, 0, make_generator(seed, chain, x.device), self.sampler.init(x))

    def step(self, state: SGLDState, batch: Any = None, diagnostics: bool = True) -> tuple[SGLDState, dict[str, torch.Tensor]]:
        x = state.position.detach().requires_grad_(True)
        energy = self.energy_fn(x, batch)
        (grad,) = torch.autograd.grad(energy, (x,))
        with torch.no_grad():
            clip_norm_(grad, self.clip_norm)
            state.position = x.detach()
            self.sampler.update_(state.position, grad, state.aux, step_size=self.step_size(state.step),
                                 temperature=self.temperature, generator=state.generator, step=state.step)
        state.step += 1
        return state, {"energy": energy.detach()}

    def site(self, state: SGLDState, info: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        return state.position.clone() if name == "position" else info[name]
