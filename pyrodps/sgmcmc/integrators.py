"""How to move: the Langevin update and its RMSprop preconditioner, on flat tensors.

The (preconditioned) SGLD update of Welling & Teh (2011) and Li et al. (2016), at temperature T:

    θ ← θ - (η / 2) G ∇U(θ) + sqrt(η T G) ξ,   ξ ~ N(0, I)

with ``G = I`` (SGLD) or ``G = diag(1 / (λ + sqrt(V)))``, ``V ← α V + (1 - α) ∇U²`` (pSGLD; the
``Γ(θ)`` correction term is dropped, as in the paper's practical algorithm). For a Gaussian energy
the stationary covariance is ``T Σ`` up to an ``O(η)`` discretisation error.

:func:`langevin_update_` is the whole update (preconditioner, noise, step) for the samplers, through
one dispatcher (:func:`pyrodps.sgmcmc.fused.sgld_update_`, as ``torch.optim`` dispatches to its
single-tensor, foreach and fused forms): the torch reference (:mod:`pyrodps.sgmcmc.fused.reference`:
:meth:`RMSprop.update_` and :func:`langevin_step_` below), which is the code the CPU path runs, or one
fused Triton kernel (:mod:`pyrodps.sgmcmc.fused` says which runs when; CPU tensors take the torch path).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
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


_FUSED = None


def _fused():
    """:mod:`pyrodps.sgmcmc.fused.dispatch`, imported on first use (it imports this module)."""
    global _FUSED
    if _FUSED is None:
        from pyrodps.sgmcmc.fused import dispatch

        _FUSED = dispatch
    return _FUSED


def langevin_update_(
    x: torch.Tensor,
    grad_energy: torch.Tensor,
    step_size: float,
    temperature: float,
    *,
    generator: torch.Generator,
    step: int,
    stream: int = 0,
    preconditioner: RMSprop | None = None,
    v: torch.Tensor | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """In place on flat ``x`` (and ``v``): the (p)SGLD update ``x ← x - (η/2) G ∇U + sqrt(η T G) ξ``,
    ``V`` updated first (pSGLD). Returns ``x``.

    Torch backend: ``ξ = torch.randn`` from ``generator``. Triton backend (``backend`` or
    ``PYRODPS_KERNELS``; ``auto`` picks it for CUDA tensors): one fused kernel, ``ξ`` made in-kernel
    from the counter-based stream keyed on ``(generator.initial_seed(), step, stream)``; give each
    block a chain moves at a step its own ``stream``.
    """
    fused = _fused()
    alpha, eps = (preconditioner.alpha, preconditioner.eps) if preconditioner is not None else (0.99, 1e-5)
    torch_path = fused.resolve_backend(backend, x.device) == "torch"
    noise = generator if torch_path else fused.NoiseKey(generator.initial_seed(), step, stream)
    return fused.sgld_update_(x, grad_energy, step_size=step_size, temperature=temperature, noise=noise,
                              v=v if preconditioner is not None else None, alpha=alpha, eps=eps,
                              backend="torch" if torch_path else "triton")


def clip_norm_(grad: torch.Tensor, max_norm: float | None) -> torch.Tensor:
    """Scale ``grad`` in place so its Euclidean norm is at most ``max_norm`` (no-op for ``None``)."""
    if max_norm is not None:
        norm = torch.linalg.vector_norm(grad)
        grad.mul_(torch.clamp(max_norm / (norm + 1e-12), max=1.0))
    return grad


# ----------------------------------------------------------------------------- θ-block samplers
class Integrator(ABC):
    """How a block of flat parameters moves given the gradient of its energy: the θ-block sampler of
    a kernel, in two pieces. ``init(position)`` returns the sampler's auxiliary state (``None``, or a
    tensor such as pSGLD's second moment or SGHMC's momentum, kept in the chain's state, checkpointed
    and checked by the divergence guard); ``update_(position, grad, aux, ...)`` moves ``position``
    (and ``aux``) in place for one step of size ``step_size`` at ``temperature``.

    Noise comes from the chain's ``generator`` on the torch backend; ``step`` and ``stream`` key the
    counter-based noise of the fused Triton kernels (:mod:`pyrodps.sgmcmc.fused`). A new sampler
    (e.g. SGHMC) is one subclass in a file of its own; name it as ``module:Class`` or
    ``path/file.py:Class`` wherever a sampler is chosen (``BADSConfig(sampler=...)``, ``--sampler``).
    """

    def init(self, position: torch.Tensor) -> torch.Tensor | None:
        """The auxiliary state for a chain starting at ``position`` (default: none)."""
        return None

    @abstractmethod
    def update_(self, position: torch.Tensor, grad: torch.Tensor, aux: torch.Tensor | None, *, step_size: float,
                temperature: float, generator: torch.Generator, step: int, stream: int = 0,
                backend: str | None = None) -> None:
        """One step on ``position`` (and ``aux``), in place; ``grad`` is ``∇U`` (may be consumed)."""


class SGLDIntegrator(Integrator):
    """SGLD (Welling & Teh 2011): ``θ ← θ - (η/2) ∇U + sqrt(η T) ξ``."""

    def update_(self, position, grad, aux, *, step_size, temperature, generator, step, stream=0, backend=None):
        langevin_update_(position, grad, step_size, temperature, generator=generator, step=step, stream=stream,
                         backend=backend)

    def __repr__(self) -> str:
        return "SGLDIntegrator()"


class PSGLDIntegrator(Integrator):
    """pSGLD (Li et al. 2016) with the RMSprop preconditioner ``G = 1 / (λ + sqrt(V))``,
    ``V ← α V + (1 - α) ∇U²`` (``aux`` is ``V``): ``θ ← θ - (η/2) G ∇U + sqrt(η T G) ξ``."""

    def __init__(self, alpha: float = 0.99, eps: float = 1e-5) -> None:
        self.preconditioner = RMSprop(alpha, eps)

    def init(self, position: torch.Tensor) -> torch.Tensor:
        return self.preconditioner.init(position)

    def update_(self, position, grad, aux, *, step_size, temperature, generator, step, stream=0, backend=None):
        langevin_update_(position, grad, step_size, temperature, generator=generator, step=step, stream=stream,
                         preconditioner=self.preconditioner, v=aux, backend=backend)

    def __repr__(self) -> str:
        return f"PSGLDIntegrator(alpha={self.preconditioner.alpha}, eps={self.preconditioner.eps})"


SAMPLERS: dict[str, type[Integrator]] = {"sgld": SGLDIntegrator, "psgld": PSGLDIntegrator}
