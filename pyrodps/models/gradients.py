"""Which gradient: estimates of the BADS energy and its gradients on one minibatch.

Every estimator returns the same :class:`GradientEstimate`:

* ``energy``: ``Û(θ, u_B) = -log p̂(θ, u_B)``, the N/B, M/B_m-scaled minibatch energy (the fused
  estimator skips it when asked with ``need_energy=False``);
* ``grad_theta``: ``∇_θ Û`` (flat);
* ``grad_u``: ``∂ log p(u_i | θ) / ∂u_i`` for ``i ∈ B``, the gradient of the *conditional* of each
  weight given θ (no N/B factor): ``d log p_u(u_i)/du_i - ρ_θ (l_i(θ) - l_i^ref) w_i (1 - w_i)`` (table
  weights; ``l_i^ref`` the model's loss reference);
* ``grad_phi``: ``∇_φ Û`` (N/B-scaled, flat; weight network);
* ``w``: the batch's current weights.

``weights`` is ``u_B`` for table weights and flat φ for a weight network.

:class:`AutogradGradient` differentiates a whole log joint, the functional fast path or the Pyro
trace (the specification). :class:`FusedGradient` is what the sampler runs: one forward/backward
through the network bound to flat θ, the prior and weight terms in closed form. Tests prove the
three agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyro
import torch

from pyrodps.errors import check_choice
from pyrodps.models.bads import BADSModel
from pyrodps.models.data import Batch
from pyrodps.models.flat_params import FlatParams


@dataclass
class GradientEstimate:
    energy: torch.Tensor | None
    grad_theta: torch.Tensor | None
    grad_u: torch.Tensor | None
    nll_train: torch.Tensor
    nll_meta: torch.Tensor
    w: torch.Tensor
    grad_phi: torch.Tensor | None = None


@dataclass
class CompanionEstimate:
    """Gradient of the companion energy ``-log p̂(θ' | w, D_t)`` and the losses ``l_i(θ')`` of the batch."""

    grad_theta: torch.Tensor
    nll_train: torch.Tensor


class AutogradGradient:
    """Autograd of :meth:`BADSModel.log_joint` (``"functional"``) or of the Pyro trace (``"reference"``).

    ``validate`` switches Pyro's distribution argument checks (off in the sampler's hot loop: the
    conditioned values come from the sampler itself; the tests run with them on).
    """

    def __init__(self, model: BADSModel, path: str = "functional", validate: bool = True) -> None:
        self.model = model
        self.path = check_choice("path", path, ("functional", "reference"))
        self.validate = validate

    def __call__(
        self, theta: torch.Tensor, weights: torch.Tensor, batch: Batch, need_theta: bool = True, need_energy: bool = True
    ) -> GradientEstimate:
        th = theta.detach().requires_grad_(need_theta)
        ub = weights.detach().requires_grad_(True)
        wn = self.model.weight_net
        with torch.enable_grad():
            if self.path == "functional":
                lj = self.model.log_joint(th, ub, batch)
                value, nll_t, nll_m = lj.value, lj.nll_train, lj.nll_meta
            else:
                with pyro.validation_enabled(self.validate):
                    trace = self.model.reference_trace(th, ub, batch)
                value = trace.log_prob_sum()
                nll_t, nll_m = trace.nodes["train_nll"]["value"], trace.nodes["meta_nll"]["value"]
            grads = torch.autograd.grad(value, (th, ub) if need_theta else (ub,))
        scale_t = batch.idx_train.shape[0] / self.model.num_train
        with torch.no_grad():
            deviance = nll_t - self.model.reference_nll(batch.y_train)
            u = ub if wn is None else wn.u(ub, wn.features(batch.x_train, batch.y_train, deviance))
        return GradientEstimate(
            energy=-value.detach(),
            grad_theta=-grads[0] if need_theta else None,
            grad_u=grads[-1] * scale_t if wn is None else None,
            nll_train=nll_t,
            nll_meta=nll_m,
            w=torch.sigmoid(u.detach()),
            grad_phi=-grads[-1] if wn is not None else None,
        )


    def companion(self, theta: torch.Tensor, w_batch: torch.Tensor, batch: Batch) -> CompanionEstimate:
        """Autograd of the companion log density (closed form, or the Pyro trace)."""
        th = theta.detach().requires_grad_(True)
        w = w_batch.detach()
        with torch.enable_grad():
            if self.path == "functional":
                value, nll = self.model.companion_log_density(th, w, batch)
            else:
                with pyro.validation_enabled(self.validate):
                    trace = self.model.companion_reference_trace(th, w, batch)
                value, nll = trace.log_prob_sum(), trace.nodes["train_nll"]["value"]
            (grad,) = torch.autograd.grad(value, (th,))
        return CompanionEstimate(-grad, nll)


class FusedGradient:
    """One forward/backward of ``ρ_θ (N/B) Σ w_i l_i + ρ_m (M/B_m) Σ l_j`` through the network with
    its parameters bound to θ (:class:`FlatParams`); ``∇ log p_0`` and the weight gradients in closed
    form."""

    def __init__(self, model: BADSModel) -> None:
        self.model = model
        self.flat = FlatParams(model.net)

    def __call__(
        self, theta: torch.Tensor, weights: torch.Tensor, batch: Batch, need_theta: bool = True, need_energy: bool = True
    ) -> GradientEstimate:
        if self.model.weight_net is not None:
            return self._amortised(theta, weights, batch, need_theta, need_energy)
        u_batch = weights
        m = self.model
        self.flat.bind(theta)
        n_t, n_m = batch.x_train.shape[0], batch.x_meta.shape[0]
        coef_t, coef_m = m.rho_theta * m.num_train / n_t, m.rho_meta * m.num_meta / n_m
        with torch.no_grad():
            w = torch.sigmoid(u_batch)
            # per-example coefficients of l_i in the energy: ρ_θ (N/B) w_i, then ρ_m (M/B_m)
            coef = torch.cat((w * coef_t, w.new_full((n_m,), coef_m)))
        with torch.set_grad_enabled(need_theta):
            if m.joint_forward:
                out = m.net(torch.cat((batch.x_train, batch.x_meta)))
            else:
                out = torch.cat((m.net(batch.x_train), m.net(batch.x_meta)))
            nll = m.likelihood.nll(out, torch.cat((batch.y_train, batch.y_meta)))
            weighted = torch.dot(nll, coef)
            grad_theta = None
            if need_theta:
                grad_theta = self.flat.grad(weighted).sub_(m.theta_prior.grad_log_prob(theta, m.layout))
        with torch.no_grad():
            nll = nll.detach()
            nll_t, nll_m = nll[:n_t], nll[n_t:]
            ref = m.reference_nll(batch.y_train)
            wp = m.weight_prior
            grad_u = wp.grad_log_prob_u(u_batch).sub_((nll_t - ref) * w * (1.0 - w), alpha=m.rho_theta)
            energy = None
            if need_energy:
                log_prior = m.theta_prior.log_prob(theta, m.layout) + (
                    wp.log_prob_u(u_batch).sum() + m.rho_theta * torch.dot(w, ref)) * (m.num_train / n_t)
                energy = weighted.detach() - log_prior
        return GradientEstimate(energy, grad_theta, grad_u, nll_t, nll_m, w)

    def _amortised(self, theta: torch.Tensor, phi: torch.Tensor, batch: Batch, need_theta: bool, need_energy: bool) -> GradientEstimate:
        """Weight network: one backward gives ∇_θ and ∇_φ of ``ρ_θ (N/B) Σ w_i(φ) l_i(θ) - (N/B) Σ log p_u(u_i(φ))``."""
        m, wn = self.model, self.model.weight_net
        self.flat.bind(theta)
        n_t, n_m = batch.x_train.shape[0], batch.x_meta.shape[0]
        scale_t, coef_m = m.num_train / n_t, m.rho_meta * m.num_meta / n_m
        with torch.enable_grad():
            ph = phi.detach().requires_grad_(True)
            out = m.net(torch.cat((batch.x_train, batch.x_meta)))
            nll = m.likelihood.nll(out, torch.cat((batch.y_train, batch.y_meta)))
            ref = m.reference_nll(batch.y_train)
            deviance = torch.cat((nll[:n_t] - ref, nll[n_t:]))
            u = wn.u(ph, wn.features(batch.x_train, batch.y_train, deviance[:n_t]))
            w = torch.sigmoid(u)
            coef = torch.cat((w * (m.rho_theta * scale_t), w.new_full((n_m,), coef_m)))
            weighted = torch.dot(deviance, coef)
            neg_log_lik = weighted - m.weight_prior.log_prob_u(u).sum() * scale_t
            params = [*self.flat.params, ph] if need_theta else [ph]
            grads = torch.autograd.grad(neg_log_lik, params)
        with torch.no_grad():
            grad_phi = grads[-1].sub_(wn.grad_log_prior(phi))
            grad_theta = None
            if need_theta:
                grad_theta = torch.cat([g.reshape(-1) for g in grads[:-1]]).sub_(m.theta_prior.grad_log_prob(theta, m.layout))
            energy = None
            if need_energy:
                energy = neg_log_lik.detach() - m.theta_prior.log_prob(theta, m.layout) - wn.log_prior(phi)
            nll = nll.detach()
        return GradientEstimate(energy, grad_theta, None, nll[:n_t], nll[n_t:], w.detach(), grad_phi)


    def companion(self, theta: torch.Tensor, w_batch: torch.Tensor, batch: Batch) -> CompanionEstimate:
        """One forward/backward of ``ρ_θ (N/B) Σ w_i l_i(θ')`` on the train batch only (the loss
        reference does not depend on θ' and drops out of the gradient)."""
        m = self.model
        self.flat.bind(theta)
        with torch.enable_grad():
            nll = m.likelihood.nll(m.net(batch.x_train), batch.y_train)
            weighted = torch.dot(nll, w_batch * (m.rho_theta * m.num_train / batch.x_train.shape[0]))
            grad = self.flat.grad(weighted).sub_(m.theta_prior.grad_log_prob(theta, m.layout))
        return CompanionEstimate(grad, nll.detach())


def make_gradient(model: BADSModel, path: str):
    """``"fused"`` (default in the sampler), ``"functional"`` or ``"reference"`` (Pyro trace)."""
    check_choice("path", path, ("fused", "functional", "reference"))
    return FusedGradient(model) if path == "fused" else AutogradGradient(model, path, validate=False)
