"""Joint minibatch SGLD over the network parameters θ and the weight table ``u`` (``w = sigmoid(u)``).

Each step runs one forward/backward of the minibatch log joint ``log p̂(θ, u_B)``
(:meth:`pyrodps.models.BADSModel.log_joint`, or the Pyro trace with ``log_joint="reference"``) and
moves two blocks with the same gradient evaluation:

* **θ block**, (p)SGLD on the N/B-scaled minibatch energy ``Û = -log p̂``:
  ``θ ← θ - (η_t/2) G ∇_θ Û + sqrt(η_t T G) ξ``.
* **w block**, Gibbs-within-SGLD on the points of the batch: given θ the weights are conditionally
  independent, and the block step is a Langevin step on the *exact conditional* of each ``u_i``,
  with no N/B factor:

      log p(u_i | θ) = log p_u(u_i) - ρ_θ sigmoid(u_i) l_i(θ)      (log Z(w) ignored)
      u_i ← u_i + (ε_t / 2) ∂_{u_i} log p(u_i | θ) + sqrt(ε_t T) ξ_i

  The gradient is read off the joint backward pass: ``∂ log p̂ / ∂u_i = (N/|B|) ∂ log p(u_i|θ)/∂u_i``.
  For fixed θ, repeated visits of point i leave ``p(u_i | θ)^(1/T)`` invariant up to the usual
  O(ε) discretisation error (a test checks the density). Only the B entries of the table in the
  batch are read and written: per-step work does not grow with N.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pyrodps.errors import ValidationError, check_choice, check_positive
from pyrodps.inference.integrators import RMSprop, clip_norm_, langevin_step_
from pyrodps.inference.kernel import make_generator
from pyrodps.inference.schedules import Schedule, as_schedule
from pyrodps.models.bads import Batch, BADSModel


@dataclass
class BADSState:
    """Sampler state of one chain. ``theta`` is flat; ``u`` is the length-N weight table."""

    theta: torch.Tensor
    u: torch.Tensor
    step: int
    generator: torch.Generator
    precond_v: torch.Tensor | None = None


class BADSKernel:
    """Joint θ / w SGLD for a :class:`~pyrodps.models.BADSModel`.

    Args:
        model: the BADS posterior.
        step_size: ``η_t`` of the θ block (a number or a schedule).
        weight_step_size: ``ε_t`` of the w block (a number or a schedule).
        temperature: ``T``; 1 samples the posterior, ``T < 1`` a tempered (sharper) one.
        preconditioner: ``None`` (SGLD) or :class:`RMSprop` (pSGLD) for the θ block.
        clip_norm: clip ``|∇_θ Û|`` to this norm (biases the sampler; off by default).
        update_theta: ``False`` holds θ fixed and samples only the weights given θ.
        log_joint: ``"fast"`` (closed form) or ``"reference"`` (Pyro trace; same numbers, slower).
        init_theta: flat initial θ for a chain index, or ``None`` for the network as it is.
    """

    def __init__(
        self,
        model: BADSModel,
        *,
        step_size: "float | Schedule",
        weight_step_size: "float | Schedule" = 0.5,
        temperature: float = 1.0,
        preconditioner: RMSprop | None = None,
        clip_norm: float | None = None,
        update_theta: bool = True,
        log_joint: str = "fast",
        init_theta: "callable | None" = None,
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
        check_choice("log_joint", log_joint, ("fast", "reference"))
        self._log_joint = model.log_joint if log_joint == "fast" else self._reference
        self.init_theta = init_theta

    def _reference(self, theta: torch.Tensor, u_batch: torch.Tensor, batch: Batch):
        from pyrodps.models.bads import LogJoint

        value = self.model.reference_log_joint(theta, u_batch, batch)
        nan = torch.full_like(u_batch, float("nan"))
        return LogJoint(value, nan, nan[:0])

    def init(self, seed: int, chain: int = 0, *, u: torch.Tensor | None = None) -> BADSState:
        """Start a chain: θ from ``init_theta`` (or the network), ``u`` from the weight prior."""
        gen = make_generator(seed, chain)
        theta = self.init_theta(chain) if self.init_theta else self.model.initial_theta()
        theta = theta.detach().clone()
        if u is None:
            u = self.model.weight_prior.sample_u((self.model.num_train,), gen)
        u = u.detach().clone().to(theta.device)
        if u.shape != (self.model.num_train,):
            raise ValidationError("u", f"must have shape ({self.model.num_train},), got {tuple(u.shape)}")
        if theta.device.type != "cpu":
            gen = make_generator(seed, chain, theta.device)
        v = self.preconditioner.init(theta) if self.preconditioner else None
        return BADSState(theta, u, 0, gen, v)

    def step(self, state: BADSState, batch: Batch) -> tuple[BADSState, dict[str, torch.Tensor]]:
        """One joint step; updates ``state`` in place and returns it with diagnostics."""
        theta = state.theta.detach().requires_grad_(self.update_theta)
        idx = batch.idx_train
        u_b = state.u[idx].requires_grad_(True)
        lj = self._log_joint(theta, u_b, batch)
        if self.update_theta:
            g_theta, g_u = torch.autograd.grad(lj.value, (theta, u_b))
        else:
            (g_u,) = torch.autograd.grad(lj.value, (u_b,))
        t = state.step
        temp = self.temperature
        with torch.no_grad():
            info: dict[str, torch.Tensor] = {"energy": -lj.value.detach()}
            if self.update_theta:
                grad_energy = g_theta.neg_()
                info["grad_norm"] = torch.linalg.vector_norm(grad_energy)
                clip_norm_(grad_energy, self.clip_norm)
                precond = self.preconditioner.update_(state.precond_v, grad_energy) if self.preconditioner else None
                noise = torch.randn(theta.shape, generator=state.generator, dtype=theta.dtype, device=theta.device)
                state.theta = langevin_step_(theta.detach(), grad_energy, self.step_size(t), temp, noise, precond)
            # w block: conditional gradient = joint gradient / (N/B); ascent on log p(u_i | θ).
            cond_grad = g_u.mul_(idx.shape[0] / self.model.num_train)
            baseline = self.model.log_normaliser.expected_train_loss(idx)
            if baseline is not None:
                w_b = torch.sigmoid(u_b.detach())
                cond_grad.addcmul_(w_b * (1 - w_b), baseline, value=self.model.rho_theta)
            noise_u = torch.randn(idx.shape, generator=state.generator, dtype=u_b.dtype, device=u_b.device)
            u_new = langevin_step_(u_b.detach(), cond_grad.neg_(), self.weight_step_size(t), temp, noise_u)
            state.u.index_copy_(0, idx, u_new)
            info["idx"] = idx
            info["w"] = torch.sigmoid(u_new)
            info["train_nll"] = lj.nll_train.mean()
            info["meta_nll"] = lj.nll_meta.mean()
        state.step = t + 1
        return state, info

    def site(self, state: BADSState, info: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        """Value of a tracked site: ``theta`` (flat), ``w`` (the whole table) or a key of ``info``."""
        if name == "theta":
            return state.theta.detach().clone()
        if name == "w":
            return torch.sigmoid(state.u)
        if name in info:
            return info[name]
        raise ValidationError("track", f"unknown site {name!r}; known: theta, w, {', '.join(info)}")
