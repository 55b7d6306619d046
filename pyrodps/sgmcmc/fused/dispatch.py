"""Which implementation runs the fused updates: Triton on CUDA, torch elsewhere.

Dispatch rule (:func:`resolve_backend`), for ``backend`` given on the call (or on
:class:`~pyrodps.inference.BADSKernel`), else the environment variable ``PYRODPS_KERNELS``, else
``"auto"``:

* ``"torch"``: the torch implementation (:mod:`.reference`), on any device;
* ``"triton"``: the Triton kernels; on CUDA tensors, or on CPU tensors under Triton's interpreter
  (``TRITON_INTERPRET=1`` before Triton is imported; slow, for tests). Anything else is an error;
* ``"auto"``: Triton for CUDA tensors when Triton imports, torch otherwise (the CPU path never
  imports Triton).

Noise (``noise=``): a tensor ``ξ`` (both backends read it: same noise, same result within float
tolerance), a ``torch.Generator`` (``torch.randn`` from it, as the sampler always drew it), or a
:class:`NoiseKey` ``(seed, step, stream)``: the counter-based stream of
:func:`.reference.philox_normal`, made in-kernel by Triton and by the torch reference otherwise.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch

from pyrodps.errors import ValidationError, check_choice
from pyrodps.sgmcmc.fused import reference

BACKENDS = ("auto", "torch", "triton")
ENV_VAR = "PYRODPS_KERNELS"
# noise streams of one chain: one per block the sampler moves at a step
STREAM_THETA, STREAM_PHI, STREAM_COMPANION, STREAM_U = 0, 1, 2, 3


@dataclass(frozen=True)
class NoiseKey:
    """The counter-based noise of one update: ``ξ_o = philox_normal(seed, step, stream)[o]``."""

    seed: int
    step: int
    stream: int = 0


@functools.cache
def _triton_module():
    """The Triton kernels module, or ``None`` when Triton does not import."""
    try:
        from pyrodps.sgmcmc.fused import triton_kernels
    except ImportError:
        return None
    return triton_kernels


def triton_available() -> bool:
    """Whether Triton imports (imports it)."""
    return _triton_module() is not None


def check_backend(backend: str | None) -> str | None:
    """Validate a backend name (``None`` = decide per call from ``PYRODPS_KERNELS`` / ``auto``)."""
    return None if backend is None else check_choice("backend", backend, BACKENDS)


def resolve_backend(backend: str | None, device: torch.device | str) -> str:
    """``"torch"`` or ``"triton"`` for tensors on ``device`` (the rule of the module docstring)."""
    name = backend if backend is not None else (os.environ.get(ENV_VAR) or "auto")
    if name == "torch":
        return "torch"
    kind = device.type if isinstance(device, torch.device) else torch.device(device).type
    if name == "auto":
        return "triton" if kind == "cuda" and triton_available() else "torch"
    check_choice(ENV_VAR if backend is None else "backend", name, BACKENDS)
    mod = _triton_module()
    if mod is None:
        raise ValidationError("backend", "'triton' needs Triton: pip install 'pyrodps[triton]'")
    if kind == "cpu" and not mod.INTERPRETED:
        raise ValidationError("backend", "'triton' on CPU tensors needs TRITON_INTERPRET=1 set before "
                              "Triton is imported (the interpreter; slow, for tests)")
    if kind not in ("cpu", "cuda"):
        raise ValidationError("backend", f"'triton' supports CUDA (and interpreted CPU) tensors, got {kind}")
    return "triton"


def _noise_tensor(noise, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``ξ`` as a tensor: given, drawn from a generator, or the reference counter-based stream."""
    if isinstance(noise, torch.Tensor):
        return noise
    if isinstance(noise, torch.Generator):
        return torch.randn(shape, generator=noise, dtype=dtype, device=device)
    if isinstance(noise, NoiseKey):
        n = shape.numel()
        return reference.philox_normal(noise.seed, noise.step, noise.stream, n, device=device).to(dtype).view(shape)
    raise ValidationError("noise", f"must be a tensor, a torch.Generator or a NoiseKey, not {type(noise).__name__}")


def sgld_update_(theta: torch.Tensor, grad: torch.Tensor, *, step_size: float, temperature: float,
                 noise: torch.Tensor | torch.Generator | NoiseKey, v: torch.Tensor | None = None,
                 alpha: float = 0.99, eps: float = 1e-5, backend: str | None = None,
                 block: int | None = None) -> torch.Tensor:
    """In place on flat ``theta`` (and ``v``): ``V ← αV + (1-α)g²; θ ← θ - (η/2) g/d + sqrt(ηT) ξ/sqrt(d)``,
    ``d = λ + sqrt(V)`` (pSGLD, with ``v``) or ``d = 1`` (SGLD). Returns ``theta``."""
    if resolve_backend(backend, theta.device) == "torch":
        xi = _noise_tensor(noise, grad.shape, grad.dtype, grad.device)
        return reference.sgld_update_(theta, grad, xi, step_size, temperature, v, alpha, eps)
    mod = _triton_module()
    kw = {} if block is None else {"block": block}
    if isinstance(noise, NoiseKey):
        kw.update(seed=noise.seed, step=noise.step, stream=noise.stream)
    else:
        kw["noise"] = _noise_tensor(noise, grad.shape, grad.dtype, grad.device).contiguous()
    return mod.sgld_update_triton_(theta, grad.contiguous(), step_size, temperature, v=v, alpha=alpha, eps=eps,
                                   **kw)


def weight_block_update_(
    u: torch.Tensor, idx: torch.Tensor, *, step_size: float, temperature: float, rho_theta: float,
    noise: torch.Tensor | torch.Generator | NoiseKey, grad_base: torch.Tensor,
    nll: torch.Tensor | None = None, companion_nll: torch.Tensor | None = None,
    backend: str | None = None, block: int | None = None,
) -> torch.Tensor:
    """In place on the table ``u``: for the distinct
    ``i ∈ idx``, ``u_i ← u_i + (ε/2) g_i + sqrt(εT) ξ_i`` with
    ``g_i = grad_base_i - ρ_θ l_i w_i(1-w_i) + ρ_θ l'_i w_i(1-w_i)``, ``w_i = sigmoid(u_i)``. Returns the
    batch's new weights."""
    if resolve_backend(backend, u.device) == "torch":
        xi = _noise_tensor(noise, idx.shape, u.dtype, u.device)
        return reference.weight_block_update_(u, idx, xi, step_size, temperature, rho_theta, grad_base=grad_base,
                                              nll=nll, companion_nll=companion_nll)
    mod = _triton_module()
    kw = {} if block is None else {"block": block}
    kw["grad_base"] = grad_base.contiguous()
    if isinstance(noise, NoiseKey):
        kw.update(seed=noise.seed, step=noise.step, stream=noise.stream)
    else:
        kw["noise"] = _noise_tensor(noise, idx.shape, u.dtype, u.device).contiguous()
    return mod.weight_block_update_triton_(
        u, idx.contiguous(), step_size, temperature, rho_theta,
        nll=None if nll is None else nll.contiguous(),
        companion_nll=None if companion_nll is None else companion_nll.contiguous(), **kw)
