"""Torch implementations of the fused sampler updates: the CPU path and the specification the
Triton kernels (:mod:`pyrodps.sgmcmc.fused.triton_kernels`) are tested against.

**Flat (p)SGLD update** (Welling & Teh 2011; pSGLD of Li et al. 2016, Γ term dropped), on one flat
vector θ with its gradient ``g = ∇_θ Û`` and, for pSGLD, the RMSprop second moment ``V``:

    V ← α V + (1 - α) g²,       d = λ + sqrt(V)               (pSGLD; G = 1/d, elementwise)
    θ ← θ - (η/2) g / d + sqrt(η T) ξ / sqrt(d),   ξ ~ N(0, I)   (SGLD: d = 1, V untouched)

**Weight-table block update** (Gibbs-within-SGLD on the batch's ``u_i``, ``w_i = sigmoid(u_i)``),
for distinct batch indices ``i ∈ B``:

    g_i = grad_base_i - ρ_θ l_i w_i (1 - w_i) [+ ρ_θ l'_i w_i (1 - w_i)  (companion)]
    u_i ← u_i + (ε/2) g_i + sqrt(ε T) ξ_i

``g_i`` is the gradient of ``log p(u_i | θ)``; ``grad_base`` carries its first terms (the BADS kernel
passes the whole conditional gradient of :class:`~pyrodps.models.potential.BADSPotential`).

**Counter-based noise** (:func:`philox_normal`): element ``o`` of stream ``s`` at step ``t`` under
seed ``k`` is a function of ``(k, t, s, o)`` only: Philox4x32-10 with key ``k`` (64 bits) on the
counter ``(o // 4, t, s)`` gives four uint32 words, mapped to uniforms as Triton's
``uint_to_uniform_float`` does and to four normals by two Box-Muller transforms
``sqrt(-2 log u₁) (cos 2πu₂, sin 2πu₂)``; element ``o`` takes normal ``o mod 4``. So the noise does
not depend on how the work is split into blocks, and a run is reproducible from ``(k, t, s)``.
"""

from __future__ import annotations

import torch

from pyrodps.sgmcmc.integrators import RMSprop, langevin_step_

_M32 = 0xFFFFFFFF
PHILOX_KEY_A, PHILOX_KEY_B = 0x9E3779B9, 0xBB67AE85
PHILOX_ROUND_A, PHILOX_ROUND_B = 0xD2511F53, 0xCD9E8D57
_UNIFORM_SCALE = 4.6566127342e-10  # Triton's uint_to_uniform_float for 32-bit words


def _mulhilo(a: int, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32-bit words of ``a * b`` for a uint32 constant ``a`` and uint32 values ``b``
    held in int64 (split into 16-bit halves so that no product leaves int64)."""
    p1, p0 = a * (b >> 16), a * (b & 0xFFFF)  # both < 2^48
    s = p1 + (p0 >> 16)
    return s >> 16, ((s & 0xFFFF) << 16) | (p0 & 0xFFFF)


def philox4x32(seed: int, c0: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor, c3: torch.Tensor,
               rounds: int = 10) -> tuple[torch.Tensor, ...]:
    """Philox4x32 (Salmon et al. 2011) with the 64-bit key ``seed``; counters and outputs are
    uint32 values in int64 tensors. Bit for bit Triton's ``tl.philox``."""
    k0, k1 = seed & _M32, (seed >> 32) & _M32
    for _ in range(rounds):
        hi_b, lo_b = _mulhilo(PHILOX_ROUND_B, c2)
        hi_a, lo_a = _mulhilo(PHILOX_ROUND_A, c0)
        c0, c1, c2, c3 = hi_b ^ c1 ^ k0, lo_b, hi_a ^ c3 ^ k1, lo_a
        k0, k1 = (k0 + PHILOX_KEY_A) & _M32, (k1 + PHILOX_KEY_B) & _M32
    return c0, c1, c2, c3


def _uniform(word: torch.Tensor) -> torch.Tensor:
    """uint32 word → float32 in [0, 1): as int32, negatives bit-flipped, times 2^-31 (rounded)."""
    x = torch.where(word >= 2**31, word - 2**32, word)
    x = torch.where(x < 0, -x - 1, x)
    return x.to(torch.float32) * torch.tensor(_UNIFORM_SCALE, dtype=torch.float32)


def _box_muller(u1: torch.Tensor, u2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r = torch.sqrt(-2.0 * torch.log(torch.clamp(u1, min=1.0e-7)))
    th = u2 * 6.283185307179586
    return r * torch.cos(th), r * torch.sin(th)


def philox_normal(seed: int, step: int, stream: int, n: int, *, start: int = 0,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Elements ``start .. start + n - 1`` of the counter-based N(0, 1) stream ``(seed, step, stream)``
    (float32), as the Triton kernels generate them in-kernel."""
    offs = torch.arange(start, start + n, dtype=torch.int64, device=device)
    group = offs >> 2
    zeros = torch.zeros_like(group)
    words = philox4x32(int(seed), group & _M32, group >> 32, zeros + (int(step) & _M32), zeros + (int(stream) & _M32))
    n1, n2 = _box_muller(_uniform(words[0]), _uniform(words[1]))
    n3, n4 = _box_muller(_uniform(words[2]), _uniform(words[3]))
    lane = offs & 3
    return torch.where(lane == 0, n1, torch.where(lane == 1, n2, torch.where(lane == 2, n3, n4)))


def sgld_update_(theta: torch.Tensor, grad: torch.Tensor, noise: torch.Tensor, step_size: float,
                 temperature: float, v: torch.Tensor | None = None, alpha: float = 0.99,
                 eps: float = 1e-5) -> torch.Tensor:
    """In place, the flat (p)SGLD update of the module docstring (pSGLD when ``v`` is given; ``v``
    is updated in place): :meth:`RMSprop.update_` then :func:`~pyrodps.sgmcmc.integrators.langevin_step_`.
    This is the code the samplers run on the torch backend. Returns ``theta``."""
    inv_precond = None if v is None else RMSprop(alpha, eps).update_(v, grad)
    return langevin_step_(theta, grad, step_size, temperature, noise, inv_precond)


def weight_block_update_(
    u: torch.Tensor,
    idx: torch.Tensor,
    noise: torch.Tensor,
    step_size: float,
    temperature: float,
    rho_theta: float,
    *,
    grad_base: torch.Tensor,
    nll: torch.Tensor | None = None,
    companion_nll: torch.Tensor | None = None,
) -> torch.Tensor:
    """In place on the table ``u``, the weight-block update of the module
    docstring for the distinct indices ``idx``; returns the batch's new weights ``sigmoid(u[idx])``.

    ``grad_base`` is the start of ``g_i`` (consumed), e.g. ``d log p_u(u_i) / du_i``.
    ``nll`` adds ``-ρ_θ l_i w_i (1 - w_i)``, ``companion_nll`` adds ``+ρ_θ l'_i w_i (1 - w_i)``.
    """
    u_b = u.index_select(0, idx)
    grad = grad_base
    if nll is not None or companion_nll is not None:
        w = torch.sigmoid(u_b)
        if nll is not None:
            grad = grad.sub_(nll * w * (1.0 - w), alpha=rho_theta)
        if companion_nll is not None:
            grad = grad.addcmul_(companion_nll, w * (1.0 - w), value=rho_theta)
    # ascent on log p(u_i | θ), i.e. a Langevin step on its negative
    u_new = langevin_step_(u_b, grad.neg_(), step_size, temperature, noise)
    u.index_copy_(0, idx, u_new)
    return torch.sigmoid(u_new)
