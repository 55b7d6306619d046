"""The two global-block samplers of :mod:`pyrodps.infer`: :class:`SGLD` with the metric the warm-up adapts
(:mod:`pyrodps.infer.kernels` says how) and :class:`pSGLD` with Li et al.'s RMSprop preconditioner. The
local block, the warm-up's phases and the step itself are :class:`~pyrodps.infer.kernels._PyroKernel`'s;
a sampler is its ``_global_step`` (and its state)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from pyrodps.errors import ValidationError
from pyrodps.infer.adaptation import cholesky_with_jitter
from pyrodps.infer.kernels import PyroChainState, _PyroKernel
from pyrodps.sgmcmc.integrators import RMSprop
from pyrodps.sgmcmc.schedules import Schedule

DENSE_LIMIT = 200  # SGLD's metric is dense for at most this many global coordinates


class SGLD(_PyroKernel):
    """SGLD for a Pyro model (Welling & Teh 2011) with a metric adapted in the warm-up (module docstring).

    ``step_size`` is in posterior-sd units with ``adapt_metric`` (default 0.1), in the unconstrained
    coordinates' units without it (plain SGLD, ``G = I``: give a step size). ``dense_metric``: the
    metric is ``G = M⁻¹`` with ``M`` the average of ``∇U ∇Uᵀ`` (which for a Gaussian posterior is
    ``Σ⁻¹`` plus the gradient noise's covariance), so correlated coordinates move together; ``None``
    (default) takes it when the global coordinates number at most ``DENSE_LIMIT``, the diagonal otherwise.
    """

    def __init__(self, model: Callable, step_size: float | Schedule | None = None, *, adapt_metric: bool = True,
                 dense_metric: bool | None = None, **kwargs) -> None:
        if step_size is None:
            if not adapt_metric:
                raise ValidationError("step_size", "plain SGLD (adapt_metric=False) needs a step size")
            step_size = 0.1
        super().__init__(model, step_size=step_size, **kwargs)
        self.adapt_metric = bool(adapt_metric)
        self.uses_metric = self.adapt_metric
        self.dense_metric = dense_metric

    def init(self, seed: int, chain: int = 0) -> PyroChainState:
        state = super().init(seed, chain)
        size = state.z.numel()
        dense = size <= DENSE_LIMIT if self.dense_metric is None else bool(self.dense_metric)
        if self.adapt_metric and dense and size:
            state.dense = state.z.new_zeros(size, size)
            state.dense_sum = state.z.new_zeros(size, size)
        return state

    def _global_step(self, state: PyroChainState, grad_u: torch.Tensor, t: int) -> None:
        if t < self.mode_steps:
            self._adam_(state, grad_u, t)
            return
        eta = float(self.step_size(t))
        if not self.adapt_metric:
            self._langevin_(state.z, grad_u, torch.ones_like(grad_u), eta, state.generator)
            return
        if t == self.mode_steps and not state.metric.any():  # no mode-finding phase: V starts at ∇U²
            state.metric.copy_(grad_u.square())
            state.metric_bound = None
        window_ended = self._track_metric(state, grad_u, t)
        if state.dense is None:
            state.recent = grad_u.square() if state.recent is None else state.recent.mul_(0.99).addcmul_(
                grad_u, grad_u, value=0.01)
            if state.metric_bound is None:  # max(V / T, 1/s²), fixed while V is
                state.metric_bound = torch.maximum(state.metric / self.temperature, self.metric_floor)
            recent = state.recent if self.temperature == 1 else state.recent / self.temperature
            inv_g = torch.maximum(state.metric_bound, recent)
            self._langevin_(state.z, grad_u, inv_g, eta, state.generator)
            return
        self._track_dense(state, grad_u, t, window_ended)
        chol = state.dense_chol
        drift = torch.cholesky_solve(grad_u[:, None], chol)[:, 0]  # G ∇U = M⁻¹ ∇U
        xi = torch.randn(grad_u.shape, generator=state.generator, dtype=grad_u.dtype)
        noise = torch.linalg.solve_triangular(chol.T, xi[:, None], upper=True)[:, 0]  # L⁻ᵀ ξ ~ N(0, G)
        state.z.add_(drift, alpha=-eta / 2).add_(noise, alpha=(eta * self.temperature) ** 0.5)

    def _track_dense(self, state: PyroChainState, grad_u: torch.Tensor, t: int, window_ended: int) -> None:
        """``M``: the diagonal ``V`` until the first window ends, then each window's mean of ``∇U ∇Uᵀ``
        shrunk towards its diagonal with weight ``n / (n + d + 5)`` on the rest (``n`` gradients in ``d``
        dimensions have rank at most ``n``), the diagonal floored at ``T / s_j²``; the step uses its
        Cholesky factor."""
        if state.dense_chol is None:
            state.dense.copy_(torch.diag(state.metric))
        elif t < self.warmup_steps:
            state.dense_sum.add_(torch.outer(grad_u, grad_u))
            if window_ended:  # the window's mean, shrunk towards its diagonal: n gradients, rank <= n
                mean = state.dense_sum / window_ended
                keep = window_ended / (window_ended + mean.shape[0] + 5)
                mean = keep * mean + (1 - keep) * torch.diag(mean.diagonal())
                lift = (state.dense.diagonal() / 4 - mean.diagonal()).clamp(min=0)  # as V: >= a quarter of before
                state.dense.copy_(mean + torch.diag(lift))
                state.dense_sum.zero_()
        if state.dense_chol is None or window_ended:
            m = state.dense / self.temperature
            m = m + torch.diag((self.metric_floor - m.diagonal()).clamp(min=0))  # V >= 1/prior sd²
            state.dense_chol = cholesky_with_jitter(m)


class pSGLD(_PyroKernel):
    """Preconditioned SGLD (Li et al. 2016) for a Pyro model: ``G = 1/(λ + sqrt(V_t))``, ``V_t`` the
    RMSprop average of squared gradients (``alpha``, ``eps`` = λ), adapting all along (the ``Γ`` term
    dropped, as in the paper's algorithm). ``step_size`` defaults to ``0.1 min_j V_j^{-1/2}`` after the
    mode-finding phase (its ``unit``); a given step size is used as it is."""

    def __init__(self, model: Callable, step_size: float | Schedule | None = None, *, alpha: float = 0.99,
                 eps: float = 1e-5, **kwargs) -> None:
        self.auto_step = step_size is None
        super().__init__(model, step_size=0.1 if step_size is None else step_size, **kwargs)
        self.preconditioner = RMSprop(alpha, eps)

    def _global_step(self, state: PyroChainState, grad_u: torch.Tensor, t: int) -> None:
        if t < self.mode_steps:
            self._adam_(state, grad_u, t)
            return
        if state.aux is None:  # first Langevin step: RMSprop's V from Adam's, and the step's unit
            if not state.metric.any():
                state.metric.copy_(grad_u.square())
            state.aux = state.metric.clone()
            if self.auto_step:
                state.unit = float(torch.maximum(state.metric, self.metric_floor).rsqrt().min())
        inv_g = self.preconditioner.update_(state.aux, grad_u)
        self._langevin_(state.z, grad_u, inv_g, float(self.step_size(t)) * state.unit, state.generator)
