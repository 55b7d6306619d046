"""Joint minibatch SGLD over the network parameters θ and the weight table ``u`` (``w = sigmoid(u)``).

Each step evaluates the minibatch energy and its gradients once
(:mod:`pyrodps.models.potential`) and moves two blocks:

* **θ block**, any :class:`~pyrodps.sgmcmc.integrators.Integrator` on the N/B-scaled minibatch energy
  ``Û = -log p̂``; pSGLD by default: ``θ ← θ - (η_t/2) G ∇_θ Û + sqrt(η_t T G) ξ``.
* **w block**, Gibbs-within-SGLD on the points of the batch: given θ the weights are conditionally
  independent, and the block step is a Langevin step on the *exact conditional* of each ``u_i``,
  with no N/B factor:

      log p(u_i | θ) = log p_u(u_i) - ρ_θ sigmoid(u_i) (l_i(θ) - l_i^ref)      (log Z(w) ignored)
      u_i ← u_i + (ε_t / 2) ∂_{u_i} log p(u_i | θ) + sqrt(ε_t T) ξ_i

* **weight-network block** (a :class:`~pyrodps.models.weight_net.WeightNet` instead of the table):
  φ takes the same (p)SGLD step as θ on the N/B-scaled energy (φ is shared by all points).
  With **product weights** ``w_i = sigmoid(u_i) v_i``, ``v_i = sigmoid(g_φ(h_i))`` (per-point times
  group weights) the kernel keeps both: φ steps as above, and the w block draws each table entry
  from its conditional, which is the one above with ``δ_i`` replaced by ``v_i δ_i``.
* **companion block** (``log_z="companion"`` only): θ' takes the same (p)SGLD step (with its own
  step size and temperature when given) on the train-only weighted energy
  ``-log p_0(θ') + ρ_θ (N/B) Σ_{i∈B} w_i l_i(θ')``, and the w block adds ``ρ_θ d̄_i w_i (1 - w_i)``
  to its gradient, the estimate of ``-∂ log Z / ∂u_i`` (:mod:`pyrodps.models.normaliser`): the w step
  then targets the conditional with ``log Z(w)`` kept. ``d̄_i`` is the deviance ``l_i(θ') - l_i^ref``
  of this step's θ' (``companion_window=1``) or a per-point running mean over its visits (O(N)
  memory): the exact mean of its first ``K = companion_window`` visits, then an exponential moving
  average ``d̄ ← d̄ + (d - d̄) / K``, less noisy than one draw of θ'. With a weight
  network the same term reaches φ: ``∇_φ Û`` gains ``-ρ_θ (N/B) Σ_{i∈B} d̄_i ∇_φ w_i``.

  For fixed θ, repeated visits of point i leave ``p(u_i | θ)^(1/T)`` invariant up to the usual
  O(ε) discretisation error (a test checks the density). ``T`` tempers the density of ``(θ, u)``,
  the sampler's coordinates. Only the B entries of the table in the batch are read and written:
  per-step work does not grow with N.

Both updates dispatch (``backend``, :mod:`pyrodps.sgmcmc.fused`): torch by default on CPU
(results unchanged, noise from the chain's generator), fused Triton kernels on CUDA, whose noise
is the counter-based stream keyed on ``(seed, step, block)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pyrodps.bads.weight_slice import weight_block_slice_
from pyrodps.errors import ValidationError, check_choice, check_positive, check_positive_int
from pyrodps.models.bads import BADSModel
from pyrodps.models.data import Batch
from pyrodps.models.pieces import checked
from pyrodps.models.potential import make_gradient
from pyrodps.sgmcmc import fused
from pyrodps.sgmcmc.integrators import (
    Integrator,
    PSGLDIntegrator,
    RMSprop,
    SGLDIntegrator,
    clip_norm_,
)
from pyrodps.sgmcmc.kernel import make_generator
from pyrodps.sgmcmc.schedules import ScalableStepSizes, Schedule, as_schedule

WEIGHT_UPDATES = ("langevin", "slice")


@dataclass
class BADSState:
    """Sampler state of one chain. ``theta`` is flat; ``u`` is the length-N weight table, or ``phi``
    the flat parameters of a weight network; ``*_aux`` are the θ-block sampler's auxiliary states
    (pSGLD's second moment, SGHMC's momentum, or ``None``)."""

    theta: torch.Tensor
    u: torch.Tensor | None
    step: int
    generator: torch.Generator
    theta_aux: torch.Tensor | None = None
    companion: torch.Tensor | None = None  # θ' of the log Z(w) estimator
    companion_aux: torch.Tensor | None = None
    phi: torch.Tensor | None = None
    phi_aux: torch.Tensor | None = None
    companion_mean: torch.Tensor | None = None  # per point: mean companion deviance over its last visits
    companion_visits: torch.Tensor | None = None  # per point: visits counted in it (at most the window)


class BADSKernel(ScalableStepSizes):
    """Joint θ / w SGLD for a :class:`~pyrodps.models.BADSModel`.

    Args:
        model: the BADS posterior. With ``path="fused"`` the kernel binds the network's parameters
            to the chain's flat θ: after sampling, the network holds the last state of the last chain.
        step_size: ``η_t`` of the θ block (a number or a schedule).
        weight_step_size: ``ε_t`` of the w block (a number or a schedule).
        temperature: ``T``; 1 samples the posterior, ``T < 1`` a tempered (sharper) one.
        sampler: the θ-block :class:`~pyrodps.sgmcmc.integrators.Integrator` (also moving φ and the
            companion θ'); default SGLD, or pSGLD when ``preconditioner`` is given.
        preconditioner: shorthand for ``sampler=PSGLDIntegrator(alpha, eps)`` of an :class:`RMSprop`.
        clip_norm: clip ``|∇_θ Û|`` to this norm (biases the sampler; off by default).
        update_theta: ``False`` holds θ (and the companion θ') fixed and samples only the weights.
        path: how gradients are computed: ``"fused"`` (fastest), ``"functional"`` (autograd of
            ``torch.func.functional_call``) or ``"reference"`` (autograd of the Pyro trace).
        init_theta: flat initial θ for a chain index, or ``None`` for the network as it was built.
        backend: ``"auto"`` (Triton kernels for CUDA tensors, torch otherwise), ``"torch"`` or
            ``"triton"`` for the θ/φ/θ' and w updates; ``None`` reads ``PYRODPS_KERNELS`` (default auto).
        weight_update: ``"langevin"`` (the unadjusted Langevin step above; fused on Triton) or ``"slice"``
            (an exact draw from each weight's conditional by slice sampling, no step-size bias, a nearly
            independent value at every visit; torch operations on any device,
            :mod:`pyrodps.bads.weight_slice`; ``weight_step_size`` is then its initial width over
            ``sqrt(T)``).
        companion_window: with ``log_z="companion"``, average each point's companion deviance over its
            last visits (a running mean over at most this many); 1 uses this step's θ' alone.
        companion_step_size, companion_temperature: θ''s own step size and temperature (default: θ's).

    The step sizes can be scaled at run time (the divergence guard's back-off); the scale is the
    kernel's hyper-state (``state_dict``), checkpointed with the run.
    """

    scaled_schedules = ("step_size", "weight_step_size")

    def __init__(
        self,
        model: BADSModel,
        *,
        step_size: float | Schedule,
        weight_step_size: float | Schedule = 0.5,
        temperature: float = 1.0,
        sampler: Integrator | None = None,
        preconditioner: RMSprop | None = None,
        clip_norm: float | None = None,
        update_theta: bool = True,
        path: str = "fused",
        init_theta: Callable[[int], torch.Tensor] | None = None,
        backend: str | None = None,
        weight_update: str = "langevin",
        companion_window: int = 1,
        companion_step_size: float | Schedule | None = None,
        companion_temperature: float | None = None,
    ) -> None:
        self.model = model
        self.step_size = as_schedule(step_size, "step_size")
        self.weight_step_size = as_schedule(weight_step_size, "weight_step_size")
        self.temperature = check_positive("temperature", temperature)
        if preconditioner is not None and not isinstance(preconditioner, RMSprop):
            raise ValidationError("preconditioner", f"must be None or RMSprop, got {preconditioner!r}")
        if sampler is not None and preconditioner is not None:
            raise ValidationError("preconditioner", "give sampler or preconditioner, not both")
        if sampler is None:
            sampler = SGLDIntegrator() if preconditioner is None else PSGLDIntegrator(preconditioner.alpha,
                                                                                      preconditioner.eps)
        if not isinstance(sampler, Integrator):
            raise ValidationError("sampler", f"must be an Integrator, got {type(sampler).__name__}")
        self.sampler = checked(sampler, "θ-block sampler")
        self.phi_sampler = self._phi_sampler(self.sampler, model)
        self.clip_norm = None if clip_norm is None else check_positive("clip_norm", clip_norm)
        self.update_theta = bool(update_theta)
        self.gradient = make_gradient(model, path)
        self.init_theta = init_theta
        self.backend = fused.check_backend(backend)
        self.weight_update = check_choice("weight_update", weight_update, WEIGHT_UPDATES)
        self.companion_window = check_positive_int("companion_window", companion_window)
        if companion_step_size is not None:
            self.companion_step_size = as_schedule(companion_step_size, "companion_step_size")
            self.scaled_schedules = (*type(self).scaled_schedules, "companion_step_size")
        else:
            self.companion_step_size = None
        self.companion_temperature = None if companion_temperature is None else check_positive(
            "companion_temperature", companion_temperature)

    @staticmethod
    def _phi_sampler(sampler: Integrator, model: BADSModel) -> Integrator:
        """The φ block's integrator: θ's, except that pSGLD's ``λ`` is at least ``sqrt(ρ_φ)``, the size of
        the φ prior's gradient one prior sd from its centre. φ starts at that centre, where with
        ``log_z="companion"`` (θ' = θ) the first gradient is exactly 0: with ``λ = 1e-5`` the
        preconditioner ``G = 1/(λ + sqrt V)`` would be 1e5 and the first step's noise ``sqrt(η T G)``
        would throw φ several prior sds away. The floor keeps a step on a flat φ no larger than plain
        SGLD on the prior; where the likelihood's gradient is large, it changes nothing."""
        wn = model.weight_net
        if wn is None or not isinstance(sampler, PSGLDIntegrator):
            return sampler
        pre = sampler.preconditioner
        return PSGLDIntegrator(pre.alpha, max(pre.eps, wn.rho_phi ** 0.5))

    def init(
        self, seed: int, chain: int = 0, *, u: torch.Tensor | None = None, companion: torch.Tensor | None = None
    ) -> BADSState:
        """Start a chain: θ from ``init_theta`` (or the network as built), ``u`` from the weight prior,
        the companion θ' (``log_z="companion"``) at θ unless given."""
        gen = make_generator(seed, chain)
        theta = (self.init_theta(chain) if self.init_theta else self.model.initial_theta()).detach().clone()
        wn = self.model.weight_net
        if wn is None or self.model.product:
            if u is None:
                u = self.model.weight_prior.sample_u((self.model.num_train,), gen)
            u = u.detach().clone().to(device=theta.device, dtype=theta.dtype)
            if u.shape != (self.model.num_train,):
                raise ValidationError("u", f"must have shape ({self.model.num_train},), got {tuple(u.shape)}")
        if theta.device.type != "cpu":
            gen = make_generator(seed, chain, theta.device)
        state = BADSState(theta, u, 0, gen, self.sampler.init(theta))
        if wn is not None:
            state.phi = wn.initial_phi().to(theta.device)
            state.phi_aux = self.phi_sampler.init(state.phi)
        if self.model.log_z in ("companion", "companion-groups"):
            state.companion = (theta if companion is None else companion).detach().clone()
            state.companion_aux = self.sampler.init(theta)
            if self.companion_window > 1:
                state.companion_mean = theta.new_zeros(self.model.num_train)
                state.companion_visits = torch.zeros(self.model.num_train, dtype=torch.long, device=theta.device)
        return state

    def _theta_step(self, x: torch.Tensor, grad: torch.Tensor, aux: torch.Tensor | None, state: BADSState,
                    stream: int, backend: str) -> None:
        clip_norm_(grad, self.clip_norm)
        step_size, temperature = self.step_size(state.step), self.temperature
        if stream == fused.STREAM_COMPANION:
            if self.companion_step_size is not None:
                step_size = self.companion_step_size(state.step)
            if self.companion_temperature is not None:
                temperature = self.companion_temperature
        sampler = self.phi_sampler if stream == fused.STREAM_PHI else self.sampler
        sampler.update_(x, grad, aux, step_size=step_size, temperature=temperature,
                        generator=state.generator, step=state.step, stream=stream, backend=backend)

    def _companion(self, state: BADSState, batch: Batch, w: torch.Tensor, diagnostics: bool, info: dict,
                   backend: str) -> torch.Tensor:
        """Step θ' on the batch and return ``d̄`` of the batch's points: this step's companion deviance,
        or its running mean over each point's last ``companion_window`` visits."""
        comp = self.gradient.companion(state.companion, w, batch)
        if self.update_theta:
            self._theta_step(state.companion, comp.grad_theta, state.companion_aux, state, fused.STREAM_COMPANION,
                             backend)
        if diagnostics:
            info["companion_nll"] = comp.nll_train.mean()
        deviance = comp.nll_train - self.model.reference_nll(batch.y_train)
        if state.companion_mean is None:
            return deviance
        idx = batch.idx_train
        visits = (state.companion_visits.index_select(0, idx) + 1).clamp_(max=self.companion_window)
        mean = state.companion_mean.index_select(0, idx)
        mean = mean + (deviance - mean) / visits.to(mean.dtype)
        state.companion_mean.index_copy_(0, idx, mean)
        state.companion_visits.index_copy_(0, idx, visits)
        return mean

    # what the divergence guard checks: not the length-N table u, whose moving entries are info["w"]
    guarded_state = ("theta", "theta_aux", "companion", "companion_aux", "phi", "phi_aux", "companion_mean")

    def step(self, state: BADSState, batch: Batch, diagnostics: bool = True) -> tuple[BADSState, dict[str, torch.Tensor]]:
        """One joint step; updates ``state`` in place and returns it with ``info``.

        ``info`` always holds ``idx`` and ``w`` (the batch's new weights); with ``diagnostics`` also
        ``energy``, ``grad_norm``, ``train_nll``, ``meta_nll`` (and ``companion_nll``); the driver asks
        for them only at steps it keeps or reports.
        """
        idx = batch.idx_train
        if state.phi is None:
            weights = state.u.index_select(0, idx)
        else:
            weights = (state.u.index_select(0, idx), state.phi) if state.u is not None else state.phi
        est = self.gradient(state.theta, weights, batch, self.update_theta, diagnostics)
        t = state.step
        backend = fused.resolve_backend(self.backend, state.theta.device)  # "torch" or "triton"
        with torch.no_grad():
            info: dict[str, torch.Tensor] = {}
            if diagnostics:
                info["energy"] = est.energy
                info["train_nll"] = est.nll_train.mean()
                info["meta_nll"] = est.nll_meta.mean()
            d_bar = None
            if state.phi is not None and state.companion is not None:  # the log Z(w) term reaches φ
                d_bar = self._companion(state, batch, est.w, diagnostics, info, backend)
                table_w = None if state.u is None else torch.sigmoid(weights[0])
                est.grad_phi.add_(self.gradient.potential.companion_phi_grad(state.phi, est.weight_features, d_bar,
                                                                             table_w))
            if self.update_theta:
                if diagnostics:
                    info["grad_norm"] = torch.linalg.vector_norm(est.grad_theta)
                self._theta_step(state.theta, est.grad_theta, state.theta_aux, state, fused.STREAM_THETA, backend)
            info["idx"] = idx
            if state.phi is not None:
                self._theta_step(state.phi, est.grad_phi, state.phi_aux, state, fused.STREAM_PHI, backend)
            if state.u is not None:
                info["w"] = self._weight_block(state, batch, est, diagnostics, info, backend, d_bar)
            else:
                info["w"] = est.w
        state.step = t + 1
        return state, info

    def _weight_block(self, state: BADSState, batch: Batch, est, diagnostics: bool, info: dict,
                      backend: str, d_bar: torch.Tensor | None = None) -> torch.Tensor:
        """The table's block (and the companion chain it needs, unless the φ block stepped it and
        passed ``d_bar``): the batch's new weights (times ``v_i`` with product weights)."""
        idx, t, temp = batch.idx_train, state.step, self.temperature
        if state.companion is not None and state.phi is None:
            d_bar = self._companion(state, batch, est.w, diagnostics, info, backend)
        if self.model.log_z == "companion-groups":  # the table entries see their own loss only
            d_bar = None
        scale = est.weight_scale  # v_i of product weights: the table's conditional sees v_i δ_i
        if self.weight_update == "slice":  # an exact draw from each conditional
            delta = est.deviance_train if d_bar is None else est.deviance_train - d_bar
            w, _ = weight_block_slice_(
                state.u, idx, delta=delta if scale is None else delta * scale,
                log_density=self.gradient.potential.weight_conditional,
                width=self.weight_step_size(t), temperature=temp, generator=state.generator)
            return w if scale is None else w * scale
        # Langevin: gather u_i, add the companion term, step, scatter back (one launch on Triton;
        # noise in-kernel there, from the chain's generator on torch)
        noise = fused.NoiseKey(state.generator.initial_seed(), t, fused.STREAM_U) if backend == "triton" \
            else state.generator
        w = fused.weight_block_update_(
            state.u, idx, step_size=self.weight_step_size(t), temperature=temp, rho_theta=self.model.rho_theta,
            grad_base=est.grad_u,
            companion_nll=d_bar if d_bar is None or scale is None else d_bar * scale,
            noise=noise, backend=backend)
        return w if scale is None else w * scale

    def site(self, state: BADSState, info: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        """Value of a tracked site: ``theta`` (flat), ``companion`` (θ'), ``w`` (the whole table) or a
        key of ``info``."""
        if name == "theta":
            return state.theta.detach().clone()
        if name == "companion" and state.companion is not None:
            return state.companion.detach().clone()
        if name == "w" and state.u is not None and state.phi is None:
            return torch.sigmoid(state.u)
        if name == "phi" and state.phi is not None:
            return state.phi.detach().clone()
        if name in info:
            return info[name]
        raise ValidationError("track", f"unknown site {name!r}; known: theta, w, {', '.join(info)}")
