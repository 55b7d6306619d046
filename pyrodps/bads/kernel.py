"""Joint minibatch SGLD over the network parameters θ and the weight table ``u`` (``w = sigmoid(u)``).

Each step evaluates the minibatch energy and its gradients once
(:mod:`pyrodps.models.gradients`) and moves two blocks:

* **θ block**, (p)SGLD on the N/B-scaled minibatch energy ``Û = -log p̂``:
  ``θ ← θ - (η_t/2) G ∇_θ Û + sqrt(η_t T G) ξ``.
* **w block**, Gibbs-within-SGLD on the points of the batch: given θ the weights are conditionally
  independent, and the block step is a Langevin step on the *exact conditional* of each ``u_i``,
  with no N/B factor:

      log p(u_i | θ) = log p_u(u_i) - ρ_θ sigmoid(u_i) (l_i(θ) - l_i^ref)      (log Z(w) ignored)
      u_i ← u_i + (ε_t / 2) ∂_{u_i} log p(u_i | θ) + sqrt(ε_t T) ξ_i

* **weight-network block** (a :class:`~pyrodps.models.weight_net.WeightNet` instead of the table):
  φ takes the same (p)SGLD step as θ on the N/B-scaled energy (φ is shared by all points).
* **companion block** (``log_z="companion"`` only): θ' takes the same (p)SGLD step on the
  train-only weighted energy ``-log p_0(θ') + ρ_θ (N/B) Σ_{i∈B} w_i l_i(θ')``, and the w block adds
  ``ρ_θ l_i(θ') w_i (1 - w_i)`` to its gradient, the one-draw estimate of ``-∂ log Z / ∂u_i``
  (:mod:`pyrodps.models.normaliser`): the w step then targets the conditional with ``log Z(w)`` kept.

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
from pyrodps.errors import ValidationError, check_choice, check_positive
from pyrodps.models.bads import BADSModel
from pyrodps.models.data import Batch
from pyrodps.models.gradients import make_gradient
from pyrodps.sgmcmc import fused
from pyrodps.sgmcmc.integrators import RMSprop, clip_norm_, langevin_update_
from pyrodps.sgmcmc.kernel import make_generator
from pyrodps.sgmcmc.schedules import Schedule, as_schedule

WEIGHT_UPDATES = ("langevin", "slice")


@dataclass
class BADSState:
    """Sampler state of one chain. ``theta`` is flat; ``u`` is the length-N weight table, or ``phi``
    the flat parameters of a weight network."""

    theta: torch.Tensor
    u: torch.Tensor | None
    step: int
    generator: torch.Generator
    precond_v: torch.Tensor | None = None
    companion: torch.Tensor | None = None  # θ' of the log Z(w) estimator
    companion_precond_v: torch.Tensor | None = None
    phi: torch.Tensor | None = None
    phi_precond_v: torch.Tensor | None = None


class BADSKernel:
    """Joint θ / w SGLD for a :class:`~pyrodps.models.BADSModel`.

    Args:
        model: the BADS posterior. With ``path="fused"`` the kernel binds the network's parameters
            to the chain's flat θ: after sampling, the network holds the last state of the last chain.
        step_size: ``η_t`` of the θ block (a number or a schedule).
        weight_step_size: ``ε_t`` of the w block (a number or a schedule).
        temperature: ``T``; 1 samples the posterior, ``T < 1`` a tempered (sharper) one.
        preconditioner: ``None`` (SGLD) or :class:`RMSprop` (pSGLD) for the θ block.
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
    """

    def __init__(
        self,
        model: BADSModel,
        *,
        step_size: float | Schedule,
        weight_step_size: float | Schedule = 0.5,
        temperature: float = 1.0,
        preconditioner: RMSprop | None = None,
        clip_norm: float | None = None,
        update_theta: bool = True,
        path: str = "fused",
        init_theta: Callable[[int], torch.Tensor] | None = None,
        backend: str | None = None,
        weight_update: str = "langevin",
    ) -> None:
        self.model = model
        self.step_size = as_schedule(step_size, "step_size")
        self.weight_step_size = as_schedule(weight_step_size, "weight_step_size")
        self.temperature = check_positive("temperature", temperature)
        if preconditioner is not None and not isinstance(preconditioner, RMSprop):
            raise ValidationError("preconditioner", f"must be None or RMSprop, got {preconditioner!r}")
        self.preconditioner = preconditioner
        self.clip_norm = None if clip_norm is None else check_positive("clip_norm", clip_norm)
        self.update_theta = bool(update_theta)
        self.gradient = make_gradient(model, path)
        self.init_theta = init_theta
        self.backend = fused.check_backend(backend)
        self.weight_update = check_choice("weight_update", weight_update, WEIGHT_UPDATES)

    def init(
        self, seed: int, chain: int = 0, *, u: torch.Tensor | None = None, companion: torch.Tensor | None = None
    ) -> BADSState:
        """Start a chain: θ from ``init_theta`` (or the network as built), ``u`` from the weight prior,
        the companion θ' (``log_z="companion"``) at θ unless given."""
        gen = make_generator(seed, chain)
        theta = (self.init_theta(chain) if self.init_theta else self.model.initial_theta()).detach().clone()
        wn = self.model.weight_net
        if wn is None:
            if u is None:
                u = self.model.weight_prior.sample_u((self.model.num_train,), gen)
            u = u.detach().clone().to(device=theta.device, dtype=theta.dtype)
            if u.shape != (self.model.num_train,):
                raise ValidationError("u", f"must have shape ({self.model.num_train},), got {tuple(u.shape)}")
        if theta.device.type != "cpu":
            gen = make_generator(seed, chain, theta.device)
        v = self.preconditioner.init(theta) if self.preconditioner else None
        state = BADSState(theta, u, 0, gen, v)
        if wn is not None:
            state.phi = wn.initial_phi().to(theta.device)
            state.phi_precond_v = self.preconditioner.init(state.phi) if self.preconditioner else None
        if self.model.log_z == "companion":
            state.companion = (theta if companion is None else companion).detach().clone()
            state.companion_precond_v = self.preconditioner.init(theta) if self.preconditioner else None
        return state

    def _theta_step(
        self, theta: torch.Tensor, grad: torch.Tensor, v: torch.Tensor | None, state: BADSState, stream: int,
        backend: str,
    ) -> None:
        clip_norm_(grad, self.clip_norm)
        langevin_update_(theta, grad, self.step_size(state.step), self.temperature, generator=state.generator,
                         step=state.step, stream=stream, preconditioner=self.preconditioner, v=v, backend=backend)

    # the driver may hand the online weight statistics to step(): the weight-block update adds the
    # batch's new weights to them (in the same launch on Triton); info["stats_updated"] says it did
    fuses_weight_stats = True
    # what the divergence guard checks: not the length-N table u, whose moving entries are info["w"]
    guarded_state = ("theta", "precond_v", "companion", "companion_precond_v", "phi", "phi_precond_v")

    def step(
        self, state: BADSState, batch: Batch, diagnostics: bool = True, stats: object | None = None
    ) -> tuple[BADSState, dict[str, torch.Tensor]]:
        """One joint step; updates ``state`` in place and returns it with ``info``.

        ``info`` always holds ``idx`` and ``w`` (the batch's new weights); with ``diagnostics`` also
        ``energy``, ``grad_norm``, ``train_nll``, ``meta_nll`` (and ``companion_nll``); the driver asks
        for them only at steps it keeps or reports. ``stats`` (an
        :class:`~pyrodps.run.weight_stats.OnlineWeightStats`): the weight-table block adds the
        batch's new weights to it (in the same launch on Triton) and ``info["stats_updated"]`` is
        ``True``; with a weight network it is left to the caller.
        """
        idx = batch.idx_train
        weights = state.phi if state.phi is not None else state.u.index_select(0, idx)
        est = self.gradient(state.theta, weights, batch, self.update_theta, diagnostics)
        t, temp = state.step, self.temperature
        backend = fused.resolve_backend(self.backend, state.theta.device)  # "torch" or "triton"
        with torch.no_grad():
            info: dict[str, torch.Tensor] = {}
            if diagnostics:
                info["energy"] = est.energy
                info["train_nll"] = est.nll_train.mean()
                info["meta_nll"] = est.nll_meta.mean()
            if self.update_theta:
                if diagnostics:
                    info["grad_norm"] = torch.linalg.vector_norm(est.grad_theta)
                self._theta_step(state.theta, est.grad_theta, state.precond_v, state, fused.STREAM_THETA, backend)
            info["idx"] = idx
            if state.phi is not None:
                self._theta_step(state.phi, est.grad_phi, state.phi_precond_v, state, fused.STREAM_PHI, backend)
                info["w"] = est.w
                state.step = t + 1
                return state, info
            comp = None
            if state.companion is not None:
                comp = self.gradient.companion(state.companion, est.w, batch)
                if self.update_theta:
                    self._theta_step(state.companion, comp.grad_theta, state.companion_precond_v, state,
                                     fused.STREAM_COMPANION, backend)
                if diagnostics:
                    info["companion_nll"] = comp.nll_train.mean()
            if self.weight_update == "slice":  # an exact draw from each conditional
                ref = self.model.reference_nll(batch.y_train)
                delta = est.nll_train - ref if comp is None else est.nll_train - comp.nll_train
                info["w"], _ = weight_block_slice_(
                    state.u, idx, delta=delta, prior=self.model.weight_prior, width=self.weight_step_size(t),
                    temperature=temp, rho_theta=self.model.rho_theta, generator=state.generator, stats=stats)
            else:
                # w block: gather u_i, add the companion term, Langevin step, scatter back, statistics
                # (one launch on Triton; noise in-kernel there, from the chain's generator on torch)
                noise = fused.NoiseKey(state.generator.initial_seed(), t, fused.STREAM_U) if backend == "triton" \
                    else state.generator
                info["w"] = fused.weight_block_update_(
                    state.u, idx, step_size=self.weight_step_size(t), temperature=temp, rho_theta=self.model.rho_theta,
                    grad_base=est.grad_u, stats=stats,
                    companion_nll=None if comp is None else comp.nll_train - self.model.reference_nll(batch.y_train),
                    noise=noise, backend=backend)
            info["stats_updated"] = stats is not None
        state.step = t + 1
        return state, info

    def site(self, state: BADSState, info: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        """Value of a tracked site: ``theta`` (flat), ``companion`` (θ'), ``w`` (the whole table) or a
        key of ``info``."""
        if name == "theta":
            return state.theta.detach().clone()
        if name == "companion" and state.companion is not None:
            return state.companion.detach().clone()
        if name == "w" and state.u is not None:
            return torch.sigmoid(state.u)
        if name == "phi" and state.phi is not None:
            return state.phi.detach().clone()
        if name in info:
            return info[name]
        raise ValidationError("track", f"unknown site {name!r}; known: theta, w, {', '.join(info)}")
