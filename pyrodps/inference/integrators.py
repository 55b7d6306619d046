"""How to move: the Langevin update and its RMSprop preconditioner, on flat tensors.

The (preconditioned) SGLD update of Welling & Teh (2011) and Li et al. (2016), at temperature T:

    θ ← θ - (η / 2) G ∇U(θ) + sqrt(η T G) ξ,   ξ ~ N(0, I)

with ``G = I`` (SGLD) or ``G = diag(1 / (λ + sqrt(V)))``, ``V ← α V + (1 - α) ∇U²`` (pSGLD; the
``Γ(θ)`` correction term is dropped, as in the paper's practical algorithm). For a Gaussian energy
the stationary covariance is ``T Σ`` up to an ``O(η)`` discretisation error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pyrodps.errors import check_fraction, check_positive


@dataclass
class RMSprop:
    """pSGLD preconditioner ``G = 1 / (λ + sqrt(V))`` with ``V ← α V + (1 - α) g²``."""

    alpha: float = 0.99
    eps: float = 1e-5

    def __post_init__(self) -> None:
        check_fraction("precond_alpha", self.alpha, open_low=True, open_high=True)
        check_positive("precond_eps", self.eps)

    def init(self, like: torch.Tensor) -> torch.Tensor:
        """The second-moment state ``V = 0``."""
        return torch.zeros_like(like)

    def update_(self, v: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """Update ``V`` in place and return ``1 / G = λ + sqrt(V)`` (the divisor form saves a pass)."""
        v.mul_(self.alpha).addcmul_(grad, grad, value=1.0 - self.alpha)
        return v.sqrt().add_(self.eps)


def langevin_step_(
    x: torch.Tensor,
    grad_energy: torch.Tensor,
    step_size: float,
    temperature: float,
    noise: torch.Tensor,
    inv_precond: torch.Tensor | None = None,
) -> torch.Tensor:
    """In place: ``x ← x - (η/2) G ∇U + sqrt(η T G) ξ``; ``noise`` is ``ξ``, ``inv_precond`` is
    ``1 / G`` (``None`` for ``G = I``; consumed: overwritten with its square root). Returns ``x``."""
    if inv_precond is None:
        x.add_(grad_energy, alpha=-0.5 * step_size)
        x.add_(noise, alpha=math.sqrt(step_size * temperature))
    else:
        x.addcdiv_(grad_energy, inv_precond, value=-0.5 * step_size)
        x.addcdiv_(noise, inv_precond.sqrt_(), value=math.sqrt(step_size * temperature))
    return x


def clip_norm_(grad: torch.Tensor, max_norm: float | None) -> torch.Tensor:
    """Scale ``grad`` in place so its Euclidean norm is at most ``max_norm`` (no-op for ``None``)."""
    if max_norm is not None:
        norm = torch.linalg.vector_norm(grad)
        grad.mul_(torch.clamp(max_norm / (norm + 1e-12), max=1.0))
    return grad
