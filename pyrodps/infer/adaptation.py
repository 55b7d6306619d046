"""The warm-up's arithmetic for :mod:`pyrodps.infer.kernels`: metric windows, a safe Cholesky factor,
and the stationary-variance bound that makes the step size a unit of the posterior's sd."""

from __future__ import annotations

import torch

from pyrodps.errors import ValidationError

METRIC_FLOOR = 1e-12  # V below this (a flat direction) is read as this


def adaptation_windows(start: int, end: int, first: int = 25) -> frozenset[int]:
    """The steps at which the warm-up's metric windows end: windows from ``start`` doubling from ``first``
    steps, the last one stretched to ``end`` (as Stan's slow adaptation windows)."""
    ends, t, width = [], start, first
    while t < end:
        stop = t + width if t + 3 * width <= end else end
        ends.append(stop)
        t, width = stop, 2 * width
    return frozenset(ends)


def cholesky_with_jitter(m: torch.Tensor) -> torch.Tensor:
    """Cholesky factor of ``m + j I``, ``j`` growing from ``1e-6 mean(diag m)`` until it factorises."""
    scale = float(m.diagonal().mean().clamp(min=METRIC_FLOOR))
    eye = torch.eye(m.shape[0], dtype=m.dtype)
    for jitter in (1e-6, 1e-4, 1e-2, 1.0):
        chol, info = torch.linalg.cholesky_ex(m + jitter * scale * eye)
        if not int(info):
            return chol
    return torch.diag(m.diagonal().clamp(min=METRIC_FLOOR).sqrt())


def stationary_variance_factor(step_size: float) -> float:
    """The bound ``(1 + η/4)/(1 - η/4)`` on the chain's variance over the posterior's (module docstring)."""
    if not 0 < step_size < 4:
        raise ValidationError("step_size", f"must be in (0, 4), got {step_size}")
    return (1 + step_size / 4) / (1 - step_size / 4)
