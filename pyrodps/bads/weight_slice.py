"""The weight-table block as an exact draw from each weight's conditional: univariate slice sampling.

Given θ the table weights are conditionally independent, and each ``u_i`` (``w_i = sigmoid(u_i)``) of
the batch has the one-dimensional conditional

    ℓ_i(u) = log p_u(u) - ρ_θ sigmoid(u) δ_i,        target π_i(u) ∝ exp(ℓ_i(u) / T)

with ``δ_i = l_i(θ) - l_i^ref`` (``log_z="ignore"``) or ``δ_i = l_i(θ) - l_i(θ')`` (``"companion"``).

:func:`weight_block_slice_` takes one slice-sampling step (Neal 2003, stepping out and shrinkage) on
each π_i: a height ``y = ℓ_i(u)/T - E`` with ``E ~ Exp(1)``; an interval of width ``W`` placed uniformly
around ``u``, stepped out by ``W`` on each side while its end is above the slice (at most
``max_steps_out`` times per side); then points drawn uniformly from the interval, which shrinks towards
``u`` after each point below the slice, until one is above it. The step leaves π_i invariant exactly
(no step-size bias), needs no step size beyond the initial width, and on these unimodal conditionals
returns a nearly independent draw at every visit, so the weights mix in one or two visits instead of
the several a small unadjusted Langevin step needs. (A Metropolis-adjusted Langevin step was tried
first and rejected: where ``ρ_θ δ_i / T`` is large the conditional's gradient changes by orders of
magnitude within one step and the proposals starting far from the mode are almost never accepted.)

All operations are elementwise over the batch in torch, on any device; a step costs a handful of
evaluations of ``ℓ`` per point (the loop runs until every point is done, at most
``2 max_steps_out + max_shrink`` evaluations). A point still undecided after ``max_shrink`` shrinkages
(an interval narrower than ``1e-6 W`` around ``u``) keeps its value; the count is returned.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def weight_block_slice_(
    u: torch.Tensor,
    idx: torch.Tensor,
    *,
    delta: torch.Tensor,
    log_density: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    temperature: float,
    generator: torch.Generator,
    width: float = 3.0,
    max_steps_out: int = 32,
    candidates: int = 16,
    max_shrink: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """In place on the table ``u``: one slice-sampling step
    for each distinct index in ``idx`` on ``ℓ = log_density(u, δ)`` (elementwise; the model's
    :meth:`~pyrodps.models.potential.BADSPotential.weight_conditional`), with ``δ = delta`` and initial
    width ``W = width · sqrt(T)``.

    Vectorised over the batch without a loop in the usual case (Neal 2003, sections 4.1-4.2):

    1. height ``y = ℓ(u)/T - E``, ``E ~ Exp(1)``; interval ``[u - W V, u - W V + W]``, ``V ~ U(0, 1)``;
    2. stepping out with Neal's random split of the ``m = max_steps_out`` steps, ``J = ⌊m V'⌋`` to the
       left and ``m - 1 - J`` to the right, all candidate ends evaluated in one call;
    3. ``candidates`` points uniform on the interval, in one call; the first inside the slice is the new
       value (uniform on interval ∩ slice: rejection from the fixed interval is a valid slice step);
    4. a point with no candidate inside goes on with shrinkage from the same interval (the rejections
       before it do not depend on where in the slice the chain is, so the step stays reversible); after
       ``max_shrink`` shrinkages it keeps its value.

    Returns the batch's new weights ``sigmoid(u[idx])`` and the number of points that kept their value
    because the shrinkage limit was reached (a 0-d tensor, 0 in practice; not read back to the host)."""
    u_b = u.index_select(0, idx)
    delta = delta.to(u_b.dtype)
    inv_t = 1.0 / temperature
    w0 = width * math.sqrt(temperature)
    b = u_b.shape[0]

    def log_target(x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return log_density(x, d) * inv_t

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator, dtype=u_b.dtype, device=u_b.device)

    height = log_target(u_b, delta) + uniform(b).clamp_(min=1e-30).log_()  # y = ℓ/T - Exp(1)
    left0 = u_b - w0 * uniform(b)
    # stepping out: ends left0 - kW (k = 0..m-1) and left0 + (k+1)W, limits J and m-1-J
    k = torch.arange(max_steps_out, dtype=u_b.dtype, device=u_b.device)
    ends = torch.cat((left0[:, None] - w0 * k, left0[:, None] + w0 * (k + 1.0)), dim=1)
    above = log_target(ends, delta[:, None]) > height[:, None]
    run_left = above[:, :max_steps_out].to(torch.int64).cumprod(1).sum(1)  # leading ends above the slice
    run_right = above[:, max_steps_out:].to(torch.int64).cumprod(1).sum(1)
    j = (uniform(b) * max_steps_out).floor().to(torch.int64)
    left = left0 - w0 * torch.minimum(run_left, j).to(u_b.dtype)
    right = left0 + w0 * (1.0 + torch.minimum(run_right, max_steps_out - 1 - j).to(u_b.dtype))
    # uniform candidates on the interval: the first inside the slice
    x = left[:, None] + (right - left)[:, None] * uniform(b, candidates)
    inside = log_target(x, delta[:, None]) > height[:, None]
    found = inside.any(1)
    first = inside.to(torch.int64).argmax(1)
    new = torch.where(found, x.gather(1, first[:, None]).squeeze(1), u_b)
    pending = ~found
    for _ in range(max_shrink if bool(pending.any()) else 0):  # shrinkage for the few left
        x1 = left + (right - left) * uniform(b)
        ok = log_target(x1, delta) > height
        new = torch.where(pending & ok, x1, new)
        pending = pending & ~ok
        if not bool(pending.any()):
            break
        below = x1 < u_b
        left = torch.where(pending & below, x1, left)
        right = torch.where(pending & ~below, x1, right)
    u.index_copy_(0, idx, new)
    return torch.sigmoid(new), pending.sum()
