"""SGLD and pSGLD kernels for any Pyro model, subsample plates included, with warm-up adaptation.

A kernel moves two blocks per step on the potential of :class:`~pyrodps.infer.program.PyroProgram`
(``U = -log p̂``, Pyro's ``N / B`` scale included):

* **global coordinates** ``z`` (all global latents, unconstrained, flat) by Langevin,
  ``z ← z - (η/2) G ∇U + sqrt(η T G) ξ``;
* **local tables** (latents inside a subsampled plate): the subsample's entries take a Langevin step on
  their exact conditional (gradient divided by the plate's scale, no ``N / B``), with one scalar
  metric per site; entries outside the subsample keep their values.

**Warm-up (what makes the defaults work without tuning).** Over ``warmup_steps``:

1. the first ``mode_fraction`` of the warm-up finds the posterior's bulk with Adam on ``U``, at the
   learning rate ``adam_lr`` times each coordinate's prior sd (from 20 prior draws, unconstrained: a
   network's weights and a regression's coefficients move at their own scales) and, over the phase's
   last quarter, decaying geometrically to a hundredth of it. The locals hold still for the phase's
   first half (``LOCAL_MODE_START``), then take Rprop steps on their exact conditionals (each entry its
   own step, growing while its gradient's sign holds: an entry is moved only when the subsample holds
   it, and may start tens of prior sds from its data). Both halves are measured: locals started at
   Langevin steps far from their modes crawl (``G = 1/E[g²]`` is small where ``g`` is large; a centred
   hierarchical model's group levels stayed near their initial values and ``σ`` grew to explain the
   data), and locals that race the globals from the start absorb part of a global location (an offset
   model ``μ + α_d`` ended the phase with ``μ`` 24 and the offsets' mean 20, for a posterior at 45 and 0,
   and never left that ridge). A local's metric starts at its conditional's curvature where the phase
   ends;
2. the rest runs Langevin with the metric ``G = 1/V``, ``V`` the mean squared gradient
   ``E[(∂U/∂z_j)²]`` (or, with a dense metric, ``G = M⁻¹``, ``M`` the mean of ``∇U ∇Uᵀ``). ``V`` is held
   fixed within windows (25 steps, doubling, the last stretched to the warm-up's end, as Stan's slow
   adaptation) and set to each window's mean when it ends; the first window uses a short moving average
   of the mode-finding phase's gradients. Held fixed, the metric leaves the chain's target unchanged (a
   metric that followed every step would need the Γ correction of Ma et al. 2015, and without it pulls
   the chain to where gradients are large). The last window's value is kept for the sampling phase, a
   time-homogeneous chain, but for one guard: a diagonal metric uses ``max(V, V_recent)``, ``V_recent``
   a moving average (α = 0.99) of ``∇U²``, so that a region of larger gradients than the window saw (a
   weight whose sigmoid turns steep) takes smaller steps at once rather than diverging; where the
   gradients are as the window saw, ``V`` is the larger about as often as not, and the chain is nearly
   time-homogeneous. ``V`` is floored at the
   prior's precision ``1/s_j²`` (prior sd from 20 prior draws): at the mode, a direction the data barely
   determine has a gradient near 0, and ``G = 1/V`` would throw it far; a posterior is rarely wider than
   its prior.

With temperature ``T`` the chain targets ``p^(1/T)``, under which ``E[(∂U)²]`` is ``T`` times the
curvature, so the metric is ``G = T/V`` (``= 1/V`` at ``T = 1``, the case worked through here).
Why ``G = 1/V``: for a Gaussian posterior ``N(μ, σ²)`` and a minibatch gradient with noise variance
``s²``, ``V = 1/σ² + s²``; the step in units of the posterior sd is then ``a = η G / σ² = η / (1 + s²σ²)
<= η``, and the stationary variance of the chain is ``σ² (1 + η r / (4 (1 + r))) / (1 - η / (4(1 + r)))``
with ``r = s²σ²``: within ``(1 + η/4)/(1 - η/4)`` of the truth **whatever the scale of the posterior and
the noise of the gradient**. ``step_size`` is therefore in posterior-sd units; the default 0.1 inflates a
variance by at most 5 %. The price of a noisy gradient is slower mixing, not bias.

:class:`pSGLD` instead keeps Li et al.'s RMSprop preconditioner ``G = 1/(λ + sqrt(V_t))`` adapting all
along; its step size, unless given, is ``0.1 min_j V_j^{-1/2}`` of the mode-finding phase's ``V``
(its smallest posterior-scale estimate).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from pyro.infer.autoguide.initialization import init_to_uniform

from pyrodps.errors import ValidationError, check_fraction, check_positive
from pyrodps.infer.adaptation import adaptation_windows
from pyrodps.infer.program import PlateBatches, PyroProgram
from pyrodps.sgmcmc.integrators import clip_norm_
from pyrodps.sgmcmc.kernel import make_generator
from pyrodps.sgmcmc.schedules import ScalableStepSizes, Schedule, as_schedule

ADAM_BETAS = (0.9, 0.999)
LOCAL_MODE_START = 0.5  # the locals hold still for this fraction of the mode-finding phase


@dataclass
class PyroChainState:
    """One chain: global coordinates ``z`` (flat, unconstrained), the local tables, the step, the chain's
    generator, and the adaptation state (``metric``: ``V`` of the globals; ``local_metric``: one ``V`` per
    local site; Adam's moments; pSGLD's ``V`` in ``aux``; ``unit``: the step size's unit)."""

    z: torch.Tensor
    tables: dict[str, torch.Tensor]
    step: int
    generator: torch.Generator
    metric: torch.Tensor
    metric_sum: torch.Tensor
    local_metric: dict[str, torch.Tensor] = field(default_factory=dict)
    local_metric_sum: dict[str, torch.Tensor] = field(default_factory=dict)
    recent: torch.Tensor | None = None  # a moving average (α = 0.99) of ∇U², the guard on V
    local_recent: dict[str, torch.Tensor] = field(default_factory=dict)
    local_mode_step: dict[str, torch.Tensor] = field(default_factory=dict)  # the locals' Rprop steps and
    local_mode_sign: dict[str, torch.Tensor] = field(default_factory=dict)  # last signs (mode phase)
    adam_m: torch.Tensor | None = None
    adam_v: torch.Tensor | None = None
    aux: torch.Tensor | None = None
    cv_anchor: torch.Tensor | None = None  # the control variate's anchor θ̂ and ∇U(θ̂) on all the data
    cv_full_grad: torch.Tensor | None = None
    dense: torch.Tensor | None = None  # a dense metric: the moving average of ∇U ∇Uᵀ ...
    dense_sum: torch.Tensor | None = None
    dense_chol: torch.Tensor | None = None  # ... and its Cholesky factor L (G = (L Lᵀ)⁻¹)
    metric_bound: torch.Tensor | None = None  # max(V / T, 1/s²), the diagonal metric's fixed part
    unit: float = 1.0
    metric_count: int = 0


class _PyroKernel(ScalableStepSizes):
    """What :class:`SGLD` and :class:`pSGLD` share: reading the model, initial values, the local block,
    warm-up phases. :class:`~pyrodps.infer.mcmc.MCMC` calls :meth:`setup` with the model's arguments."""

    scaled_schedules = ("step_size",)

    def __init__(self, model: Callable, *, step_size: float | Schedule, temperature: float = 1.0,
                 init_strategy: Callable = init_to_uniform, mode_fraction: float = 0.25, adam_lr: float = 0.05,
                 local_step_size: float = 0.1, control_variate: bool | None = None,
                 clip_norm: float | None = None) -> None:
        if not callable(model):
            raise ValidationError("model", f"must be a callable Pyro model, got {type(model).__name__}")
        self.model = model
        self.step_size = as_schedule(step_size, "step_size")
        self.temperature = check_positive("temperature", temperature)
        if not callable(init_strategy):
            raise ValidationError("init_strategy", "must be a Pyro init strategy (e.g. init_to_uniform)")
        self.init_strategy = init_strategy
        self.mode_fraction = check_fraction("mode_fraction", mode_fraction, open_high=True)
        self.adam_lr = check_positive("adam_lr", adam_lr)
        self.local_step_size = check_positive("local_step_size", local_step_size)
        self.control_variate = control_variate
        self.clip_norm = None if clip_norm is None else check_positive("clip_norm", clip_norm)
        self.program: PyroProgram | None = None
        self.warmup_steps = 0

    # ------------------------------------------------------------------ set-up
    def setup(self, args: tuple = (), kwargs: dict | None = None, warmup_steps: int = 0) -> None:
        """Read the model at these arguments (its plates and latent sites) and fix the warm-up length."""
        self.program = PyroProgram(self.model, args, kwargs)
        self.warmup_steps = int(warmup_steps)
        self.mode_steps = int(self.mode_fraction * self.warmup_steps)
        self.window_ends = adaptation_windows(self.mode_steps, self.warmup_steps)
        self.local_window_ends = adaptation_windows(self.mode_steps, self.warmup_steps)
        self.prior_scale, self.local_prior_scale = self.program.prior_scales()
        self.metric_floor = self.prior_scale.square().reciprocal()

    def _program(self) -> PyroProgram:
        if self.program is None:
            raise ValidationError("kernel", "is not set up: run it through pyrodps.infer.MCMC (or call setup first)")
        return self.program

    def make_batches(self, generator: torch.Generator) -> PlateBatches:
        return PlateBatches(self._program().plates, generator)

    def init(self, seed: int, chain: int = 0) -> PyroChainState:
        program = self._program()
        with torch.random.fork_rng():  # the init strategy draws from torch's global generator
            torch.manual_seed(int(seed) * 1_000_003 + int(chain) + 7)
            values = program.initial_values(self.init_strategy)
        z = torch.cat([values[s.name].reshape(-1) for s in program.globals]) if program.globals else torch.zeros(0)
        z = z.detach().to(torch.get_default_dtype()).clone()
        tables = {s.name: values[s.name].detach().clone() for s in program.locals}
        return PyroChainState(z, tables, 0, make_generator(seed, chain), metric=torch.zeros_like(z),
                              metric_sum=torch.zeros_like(z), local_metric={n: torch.zeros(()) for n in tables},
                              local_metric_sum={n: torch.zeros(()) for n in tables}, adam_m=torch.zeros_like(z),
                              adam_v=torch.zeros_like(z))

    # ------------------------------------------------------------------ one step
    def step(self, state: PyroChainState, batch: dict[str, torch.Tensor],
             diagnostics: bool = True) -> tuple[PyroChainState, dict[str, torch.Tensor]]:
        program = self._program()
        if state.step == self.mode_steps and ((program.globals and self.uses_metric) or program.locals):
            curvature, local_curvature = self._curvature_diagonal(state, batch)  # the metrics' first values
            if program.globals and self.uses_metric:
                state.metric.copy_(torch.maximum(state.metric, self.temperature * curvature))
                state.metric_bound = None
            for name, c in local_curvature.items():
                state.local_metric[name] = self.temperature * c
            state.local_mode_step.clear()  # the locals' Rprop state is done with: free its tables
            state.local_mode_sign.clear()
        z = state.z.detach().requires_grad_(True)
        parts = program.global_values(z)
        local = {s.name: state.tables[s.name].index_select(s.dim, batch[s.plate]).requires_grad_(True)
                 for s in program.locals}
        log_p, scales = program.log_density(parts, local, batch)
        leaves = [z, *local.values()] if program.globals else list(local.values())
        grads = torch.autograd.grad(-log_p, leaves, allow_unused=True)  # ∇U: the sign on the scalar, not on z
        grads = [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads)]
        t = state.step
        if self._uses_control_variate() and t >= self.mode_steps:
            if state.cv_anchor is None:  # the mode-finding phase has ended here: anchor at this point
                state.cv_anchor = state.z.detach().clone()
                state.cv_full_grad = self._full_data_grad(state.cv_anchor)
            # ∇Û(z) - ∇Û(θ̂) + ∇U(θ̂): the same mean, and near θ̂ almost no minibatch noise
            grads[0] = grads[0] - self._batch_grad(state.cv_anchor, batch) + state.cv_full_grad
        with torch.no_grad():
            info = {"energy": -log_p.detach()}
            if program.globals:
                grad_u = grads[0]
                clip_norm_(grad_u, self.clip_norm)
                if diagnostics:
                    info["grad_norm"] = torch.linalg.vector_norm(grad_u)
                self._global_step(state, grad_u, t)
            for site, g in zip(program.locals, grads[len(grads) - len(program.locals):]):
                self._local_step(state, site, local[site.name].detach(), g / -scales[site.name], batch[site.plate], t)
            info["step_size"] = torch.tensor(self.step_size(t) * state.unit)
        state.step = t + 1
        return state, info

    uses_metric = False  # whether the kernel steps with the adapted metric ``V``

    def _curvature_diagonal(self, state: PyroChainState, batch: dict[str, torch.Tensor],
                            probes: int = 8) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``|diag ∇²Û|`` at the current point on ``batch`` (Hutchinson: the mean of ``v ⊙ (∇²Û v)`` over
        Rademacher ``v``): per global coordinate, and for each local site the mean over the subsample's
        entries of its conditional's (the entries' Hessian divided by the plate's scale). Where the
        mode-finding phase ends, the gradients are near 0 (for a local's exact conditional, exactly 0) and
        say nothing of the curvature; ``V`` starts at least at ``T`` times this, so that the first steps
        are stable (``η G ∇²U <= η``)."""
        program = self._program()
        z = state.z.detach().requires_grad_(True)
        parts = program.global_values(z)
        local = {s.name: state.tables[s.name].index_select(s.dim, batch[s.plate]).requires_grad_(True)
                 for s in program.locals}
        leaves = [z, *local.values()]
        log_p, scales = program.log_density(parts, local, batch)
        grads = torch.autograd.grad(-log_p, leaves, create_graph=True, allow_unused=True)
        live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]  # leaves U depends on
        gen = torch.Generator().manual_seed(state.step)
        totals = [torch.zeros_like(x) for x in leaves]
        for k in range(probes if live else 0):  # none live: U is linear, its curvature 0
            vs = [torch.randint(0, 2, leaves[i].shape, generator=gen).to(leaves[i].dtype).mul_(2).sub_(1) for i in live]
            hvs = torch.autograd.grad([grads[i] for i in live], [leaves[i] for i in live], grad_outputs=vs,
                                      retain_graph=k < probes - 1, allow_unused=True)
            for i, v, hv in zip(live, vs, hvs):
                if hv is not None:
                    totals[i].add_(v * hv.detach())
        curvature = [(t / probes).abs() for t in totals]
        per_site = {s.name: curvature[1 + i].mean() / scales[s.name] for i, s in enumerate(program.locals)}
        return curvature[0], per_site

    def _uses_control_variate(self) -> bool:
        program = self._program()
        auto = not program.locals and len(program.plates) == 1 and self.mode_steps > 0
        return auto if self.control_variate is None else bool(self.control_variate)

    def _batch_grad(self, z_flat: torch.Tensor, batch: dict[str, torch.Tensor], chunk=None) -> torch.Tensor:
        """``∇U`` of the globals at ``z_flat`` on ``batch`` (no local sites; ``chunk``: weighed as a chunk of a
        pass over the data)."""
        program = self._program()
        z = z_flat.detach().requires_grad_(True)
        parts = program.global_values(z)
        log_p, _ = program.log_density(parts, {}, batch, chunk)
        (grad,) = torch.autograd.grad(log_p, (z,), allow_unused=True)
        return torch.zeros_like(z) if grad is None else -grad

    def _full_data_grad(self, z_flat: torch.Tensor) -> torch.Tensor:
        """``∇U`` on all the data: the sum over one pass of chunks (:meth:`PyroProgram.full_data_chunks`)."""
        total = torch.zeros_like(z_flat)
        for batch, chunk in self._program().full_data_chunks():
            total.add_(self._batch_grad(z_flat, batch, chunk))
        return total

    def _adam_(self, state: PyroChainState, grad_u: torch.Tensor, t: int) -> None:
        """One Adam step on ``U`` (the mode-finding phase); ``V`` follows ``∇U²`` as a short moving
        average (α = 0.9)."""
        b1, b2 = ADAM_BETAS
        state.adam_m.mul_(b1).add_(grad_u, alpha=1 - b1)
        state.adam_v.mul_(b2).addcmul_(grad_u, grad_u, value=1 - b2)
        if t == 0:
            state.metric.copy_(grad_u.square())
        state.metric.mul_(0.9).addcmul_(grad_u, grad_u, value=0.1)
        state.metric_bound = None
        m_hat = state.adam_m / (1 - b1 ** (t + 1))
        v_hat = state.adam_v / (1 - b2 ** (t + 1))
        state.z.sub_(self._mode_lr(t) * self.prior_scale * m_hat / (v_hat.sqrt() + 1e-8))

    def _mode_lr(self, t: int) -> float:
        """``adam_lr``, decaying geometrically to a hundredth over the mode-finding phase's last quarter."""
        decay_from = int(0.75 * self.mode_steps)
        return self.adam_lr * 0.01 ** (max(t - decay_from, 0) / max(self.mode_steps - 1 - decay_from, 1))

    def _track_metric(self, state: PyroChainState, grad_u: torch.Tensor, t: int) -> int:
        """In the warm-up's Langevin phase: add ``∇U²`` to the window's sum; at a window's end, ``V``
        becomes the window's mean and the sum restarts. Returns the ended window's length (0: none)."""
        if t >= self.warmup_steps:
            return 0
        state.metric_sum.addcmul_(grad_u, grad_u)
        state.metric_count += 1
        if t + 1 not in self.window_ends:
            return 0
        count, state.metric_count = state.metric_count, 0
        # at most a quarter of the last value: a window spent near a mode sees small gradients
        state.metric.copy_(torch.maximum(state.metric_sum / count, state.metric / 4))
        state.metric_bound = None
        state.metric_sum.zero_()
        return count

    def _langevin_(self, x: torch.Tensor, grad_u: torch.Tensor, inv_g: torch.Tensor, eta: float,
                   generator: torch.Generator) -> None:
        """``x ← x - (η/2) G ∇U + sqrt(η T G) ξ`` with ``G = 1 / inv_g``, as ``x ← x + sqrt(G) (sqrt(η T) ξ -
        (η/2) sqrt(G) ∇U)``: four passes over ``x`` besides drawing ``ξ``."""
        root_g = inv_g.rsqrt()
        step = torch.randn(x.shape, generator=generator, dtype=x.dtype).mul_(math.sqrt(eta * self.temperature))
        x.addcmul_(step.addcmul_(grad_u, root_g, value=-eta / 2), root_g)

    def _local_step(self, state: PyroChainState, site, z: torch.Tensor, grad_log_cond: torch.Tensor,
                    idx: torch.Tensor, t: int) -> None:
        """Langevin on each subsampled entry's conditional, with the site's scalar metric ``G = T/V_site``
        (``V_site``: the conditional's curvature where the mode-finding phase ends, then the mean squared
        conditional gradient, adapted in windows of its own); in the mode-finding phase, Rprop."""
        name = site.name
        if t < self.mode_steps:  # the mode-finding phase: held, then Rprop from the site's prior scale
            if t >= LOCAL_MODE_START * self.mode_steps:
                self._local_rprop_(state, site, z, grad_log_cond, idx, t)
            return
        mean_sq = grad_log_cond.square().mean()
        if not state.local_metric[name]:  # the first step seeds V_site (where the curvature did not)
            state.local_metric[name] = mean_sq.clone()
        if t < self.warmup_steps:  # windows of their own, from the end of the mode-finding phase
            state.local_metric_sum[name] = state.local_metric_sum[name] + mean_sq
            if t + 1 in self.local_window_ends:
                start = max([e for e in self.local_window_ends if e <= t] + [self.mode_steps])
                state.local_metric[name] = state.local_metric_sum[name] / (t + 1 - start)
                state.local_metric_sum[name] = torch.zeros(())
        recent = state.local_recent.get(name)
        state.local_recent[name] = mean_sq.clone() if recent is None else 0.99 * recent + 0.01 * mean_sq
        inv_g = (torch.maximum(state.local_metric[name], state.local_recent[name]) / self.temperature).clamp(
            min=self.local_prior_scale[name] ** -2)
        eta = self.local_step_size * self.step_scale
        self._langevin_(z, -grad_log_cond, inv_g.expand_as(z), eta, state.generator)
        state.tables[name].index_copy_(site.dim, idx, z)

    def _local_rprop_(self, state: PyroChainState, site, z: torch.Tensor, grad_log_cond: torch.Tensor,
                      idx: torch.Tensor, t: int) -> None:
        """One Rprop ascent step (iRprop⁻, Igel & Hüsken 2000) on the subsample's entries of a local site:
        each entry moves by its own step along the sign of its conditional's gradient; the step grows by 1.2
        while the sign holds and halves when it flips, between ``b`` and ``50 b``, ``b`` being ``adam_lr``
        times the site's pooled prior sd and decaying as the globals' rate (:meth:`_mode_lr`). An entry is
        visited only when its plate's subsample holds it, and may start many prior sds from its
        conditional's mode: a step that grows geometrically gets there in a few visits. The floor ``b``
        keeps the entries jittering around their modes until the phase's last quarter: converged exactly
        while the globals' Adam runs, a hierarchical model's group levels and their scale ``τ`` shrink
        together into the funnel's neck (seen: τ 0.09 for a posterior at 3.2)."""
        name = site.name
        if name not in state.local_mode_step:
            state.local_mode_step[name] = torch.full_like(state.tables[name],
                                                          self.adam_lr * self.local_prior_scale[name])
            state.local_mode_sign[name] = torch.zeros_like(state.tables[name])
        step = state.local_mode_step[name].index_select(site.dim, idx)
        sign = grad_log_cond.sign()
        agree = sign * state.local_mode_sign[name].index_select(site.dim, idx)
        base = self._mode_lr(t) * self.local_prior_scale[name]
        step = torch.where(agree > 0, step * 1.2, torch.where(agree < 0, step * 0.5, step)).clamp_(base, 50 * base)
        sign = torch.where(agree < 0, torch.zeros_like(sign), sign)  # iRprop⁻: after a flip, wait a visit
        state.local_mode_step[name].index_copy_(site.dim, idx, step)
        state.local_mode_sign[name].index_copy_(site.dim, idx, sign)
        state.tables[name].index_copy_(site.dim, idx, z + step * sign)

    def _global_step(self, state: PyroChainState, grad_u: torch.Tensor, t: int) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ values
    def site(self, state: PyroChainState, info: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        """The constrained value of latent ``name`` (a local site: its whole table), or an ``info`` entry."""
        program = self._program()
        if name in state.tables:
            return program.constrained(name, state.tables[name]).detach().clone()
        views = program.global_values(state.z)
        if name in views:
            return program.constrained(name, views[name]).detach().clone()
        if name in info:
            return info[name]
        raise ValidationError("name", f"unknown site {name!r}; latent sites: {[s.name for s in program.latents]}")

    guarded_state = ("z", "tables")
