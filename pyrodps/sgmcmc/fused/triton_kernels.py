"""Triton kernels for the sampler's two hot updates (the maths: :mod:`.reference`).

* :func:`sgld_update_triton_`: the flat (p)SGLD update in one pass over θ, ``∇_θ Û`` and ``V``
  (read θ, g, V; write θ, V: 20 bytes per float32 element for pSGLD, 12 for SGLD), the Gaussian
  noise made in-kernel or read from a passed-in tensor (+4 bytes per element).
* :func:`weight_block_update_triton_`: the weight-table block step in one launch: gather ``u_i``,
  the conditional gradient (passed in, plus the loss terms), the Langevin step, scatter back (no
  atomics: the batch indices are distinct).

In-kernel noise is the counter-based stream of :func:`.reference.philox_normal`: each program
handles a ``[BLOCK/4, 4]`` tile whose row ``r`` is the Philox counter ``(r, step, stream)``, so an
element's noise depends on ``(seed, step, stream, offset)`` only, never on ``BLOCK``.

Importing this module imports Triton. On a CPU tensor the kernels run only under Triton's
interpreter (``TRITON_INTERPRET=1`` set before Triton is imported), which the tests use.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

DEFAULT_BLOCK = 1024
_COMPUTE = {torch.float64: tl.float64}  # everything else computes in float32


@triton.jit
def _normal_tile(seed, rows, step, stream):
    """Normals for the tile ``[rows, 4]``: Philox on counter ``(row, step, stream)``, two Box-Mullers."""
    zero = (rows * 0).to(tl.uint32)
    c0 = rows.to(tl.uint32)
    c1 = (rows >> 32).to(tl.uint32)
    c2 = zero + step.to(tl.uint32)
    c3 = zero + stream.to(tl.uint32)
    i1, i2, i3, i4 = tl.philox(seed, c0, c1, c2, c3)
    n1, n2 = tl.pair_uniform_to_normal(tl.uint_to_uniform_float(i1), tl.uint_to_uniform_float(i2))
    n3, n4 = tl.pair_uniform_to_normal(tl.uint_to_uniform_float(i3), tl.uint_to_uniform_float(i4))
    lane = tl.arange(0, 4)[None, :]
    return tl.where(lane == 0, n1[:, None],
                    tl.where(lane == 1, n2[:, None], tl.where(lane == 2, n3[:, None], n4[:, None])))


@triton.jit(do_not_specialize=["seed", "step", "stream"])
def _sgld_kernel(theta_ptr, grad_ptr, v_ptr, noise_ptr, n, half_eta, noise_scale, alpha, one_minus_alpha,
                 eps, seed, step, stream, PRECOND: tl.constexpr, NOISE_IN: tl.constexpr,
                 COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * (BLOCK // 4) + tl.arange(0, BLOCK // 4)
    offs = rows[:, None] * 4 + tl.arange(0, 4)[None, :]
    mask = offs < n
    x = tl.load(theta_ptr + offs, mask=mask).to(COMPUTE)
    g = tl.load(grad_ptr + offs, mask=mask).to(COMPUTE)
    if NOISE_IN:
        xi = tl.load(noise_ptr + offs, mask=mask).to(COMPUTE)
    else:
        xi = _normal_tile(seed, rows, step, stream).to(COMPUTE)
    if PRECOND:
        v = tl.load(v_ptr + offs, mask=mask).to(COMPUTE)
        v = v * alpha + one_minus_alpha * g * g
        tl.store(v_ptr + offs, v.to(v_ptr.dtype.element_ty), mask=mask)
        d = tl.sqrt(v) + eps
        x = x - half_eta * g / d + noise_scale * xi / tl.sqrt(d)
    else:
        x = x - half_eta * g + noise_scale * xi
    tl.store(theta_ptr + offs, x.to(theta_ptr.dtype.element_ty), mask=mask)


INTERPRETED = type(_sgld_kernel).__name__ == "InterpretedFunction"
"""Whether the kernels run under Triton's interpreter (``TRITON_INTERPRET=1`` at import)."""


@triton.jit
def _sigmoid(u):
    return 1.0 / (1.0 + tl.exp(-u))


@triton.jit(do_not_specialize=["seed", "step", "stream"])
def _weight_kernel(u_ptr, idx_ptr, gbase_ptr, nll_ptr, cnll_ptr, noise_ptr, w_out_ptr, b, half_eps, noise_scale, rho, seed, step, stream,
                   HAS_NLL: tl.constexpr, HAS_COMP: tl.constexpr,
                   NOISE_IN: tl.constexpr, COMPUTE: tl.constexpr,
                   BLOCK: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * (BLOCK // 4) + tl.arange(0, BLOCK // 4)
    offs = rows[:, None] * 4 + tl.arange(0, 4)[None, :]
    mask = offs < b
    i = tl.load(idx_ptr + offs, mask=mask, other=0)
    u = tl.load(u_ptr + i, mask=mask).to(COMPUTE)
    w = _sigmoid(u)
    g = tl.load(gbase_ptr + offs, mask=mask).to(COMPUTE)  # e.g. d log p_u / du, and what the caller folded in
    if HAS_NLL:
        g -= rho * tl.load(nll_ptr + offs, mask=mask).to(COMPUTE) * w * (1.0 - w)
    if HAS_COMP:
        g += rho * tl.load(cnll_ptr + offs, mask=mask).to(COMPUTE) * w * (1.0 - w)
    if NOISE_IN:
        xi = tl.load(noise_ptr + offs, mask=mask).to(COMPUTE)
    else:
        xi = _normal_tile(seed, rows, step, stream).to(COMPUTE)
    u = u + half_eps * g + noise_scale * xi
    tl.store(u_ptr + i, u.to(u_ptr.dtype.element_ty), mask=mask)
    w = _sigmoid(u)
    tl.store(w_out_ptr + offs, w.to(w_out_ptr.dtype.element_ty), mask=mask)


def _check_block(block: int) -> int:
    if block < 4 or block & (block - 1):
        raise ValueError(f"block must be a power of two >= 4, got {block}")
    return block


def sgld_update_triton_(theta: torch.Tensor, grad: torch.Tensor, step_size: float, temperature: float, *,
                        noise: torch.Tensor | None = None, seed: int = 0, step: int = 0, stream: int = 0,
                        v: torch.Tensor | None = None, alpha: float = 0.99, eps: float = 1e-5,
                        block: int = DEFAULT_BLOCK) -> torch.Tensor:
    """In place, the flat (p)SGLD update of :func:`.reference.sgld_update_` in one launch.
    ``noise`` is read if given, else made in-kernel from ``(seed, step, stream)``. Returns ``theta``."""
    n = theta.numel()
    for t in (grad, v, noise):
        if t is not None and (t.numel() != n or not t.is_contiguous()):
            raise ValueError("grad, v and noise must be contiguous and as long as theta")
    if not theta.is_contiguous():
        raise ValueError("theta must be contiguous")
    grid = (triton.cdiv(n, _check_block(block)),)
    _sgld_kernel[grid](
        theta, grad, v if v is not None else theta, noise if noise is not None else theta, n,
        0.5 * step_size, math.sqrt(step_size * temperature), alpha, 1.0 - alpha, eps,
        int(seed), int(step), int(stream),
        PRECOND=v is not None, NOISE_IN=noise is not None, COMPUTE=_COMPUTE.get(theta.dtype, tl.float32),
        BLOCK=block,
    )
    return theta


def weight_block_update_triton_(
    u: torch.Tensor, idx: torch.Tensor, step_size: float, temperature: float, rho_theta: float, *,
    grad_base: torch.Tensor,
    nll: torch.Tensor | None = None, companion_nll: torch.Tensor | None = None,
    noise: torch.Tensor | None = None, seed: int = 0, step: int = 0, stream: int = 0, block: int = 256,
) -> torch.Tensor:
    """In place on ``u``, the weight-block
    update of :func:`.reference.weight_block_update_` in one launch; returns the new batch weights."""
    b = idx.numel()
    for t in (grad_base, nll, companion_nll, noise):
        if t is not None and (t.numel() != b or not t.is_contiguous()):
            raise ValueError("grad_base, nll, companion_nll and noise must be contiguous and as long as idx")
    if not u.is_contiguous() or not idx.is_contiguous():
        raise ValueError("u and idx must be contiguous")
    w_out = torch.empty(b, dtype=u.dtype, device=u.device)
    grid = (triton.cdiv(b, _check_block(block)),)
    _weight_kernel[grid](
        u, idx, grad_base, nll if nll is not None else w_out,
        companion_nll if companion_nll is not None else w_out, noise if noise is not None else w_out, w_out, b, 0.5 * step_size, math.sqrt(step_size * temperature), rho_theta,
        int(seed), int(step), int(stream),
        HAS_NLL=nll is not None, HAS_COMP=companion_nll is not None,
        NOISE_IN=noise is not None, COMPUTE=_COMPUTE.get(u.dtype, tl.float32),
        BLOCK=block,
    )
    return w_out
