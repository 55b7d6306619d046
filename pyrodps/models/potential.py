"""The BADS density on a minibatch, written once, and every estimate the samplers take from it.

From the per-example losses ``l_k(θ)`` (train ``i ∈ B_t``, meta ``j ∈ B_m``), with deviances
``d_i = l_i - l_i^ref`` (train) and ``d_j = l_j`` (meta):

    log p̂(θ, u_B) = log p_0(θ) + (N/B) Σ_{i∈B_t} log p_u(u_i) - Σ_k c_k d_k          [+ log p(φ)]
    c_i = ρ_θ (N/B) w_i,   c_j = ρ_m (M/B_m),   w_i = sigmoid(u_i)

(with a weight network ``w_i = sigmoid(g_φ(h_i))``; with product weights ``w_i = sigmoid(u_i) v_i``,
``v_i = sigmoid(g_φ(h_i))``, and both ``log p_u(u_i)`` and ``log p(φ)`` in the density)

:meth:`BADSPotential.log_density` is this formula (the Pyro program
:meth:`~pyrodps.models.bads.BADSModel.pyro_model` is its specification; tests prove them equal), and
everything else is derived from it:

* **the fast path** (:class:`FusedGradient`, what the sampler runs): one forward/backward of
  ``Σ_k c_k d_k`` with ``c`` held fixed gives ``Σ_k c_k ∇_θ l_k``; ``∇ log p_0`` and the weight
  gradients are the closed-form derivatives of the same formula (:meth:`~BADSPotential.weight_conditional_grad`);
* **the weight conditional** of one table weight given θ (all terms of the formula holding ``u_i``,
  without the N/B factor), used by the Langevin and the slice-sampling weight blocks:
  ``ℓ_i(u) = log p_u(u) - ρ_θ sigmoid(u) δ_i`` (:meth:`~BADSPotential.weight_conditional`);
* **the companion target** ``p(θ' | w, D_t)`` of the log Z(w) estimator: the formula with the meta term
  and the weight prior dropped and ``w`` held fixed (``companion=True``);
* :class:`AutogradGradient` differentiates the whole formula (``"functional"``, outputs from
  ``torch.func.functional_call``) or the Pyro trace (``"reference"``).

Every estimator returns a :class:`GradientEstimate`: ``energy`` ``Û = -log p̂`` (skipped with
``need_energy=False``), ``grad_theta`` ``∇_θ Û``, ``grad_u`` ``∂ℓ_i/∂u_i`` (table weights, no N/B
factor), ``grad_phi`` ``∇_φ Û`` (weight network), ``w`` and the per-example losses; with product weights
``weight_scale`` holds ``v_i`` and ``grad_u`` the table entries' ``∂ℓ_i/∂u_i`` with ``δ_i = v_i d_i``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyro
import torch
from torch.func import functional_call

from pyrodps.errors import check_choice
from pyrodps.models.data import Batch
from pyrodps.models.flat_params import FlatParams
from pyrodps.models.networks import penultimate

if TYPE_CHECKING:
    from pyrodps.models.bads import BADSModel, Weights


@dataclass
class GradientEstimate:
    energy: torch.Tensor | None
    grad_theta: torch.Tensor | None
    grad_u: torch.Tensor | None
    nll_train: torch.Tensor
    nll_meta: torch.Tensor
    w: torch.Tensor
    grad_phi: torch.Tensor | None = None
    deviance_train: torch.Tensor | None = None  # d_i = l_i - l_i^ref of the train batch (detached)
    weight_features: torch.Tensor | None = None  # h_i of the batch (weight network), for the companion's φ term
    weight_scale: torch.Tensor | None = None  # product weights: v_i = sigmoid(g_φ(h_i)) of the batch (detached)


@dataclass
class CompanionEstimate:
    """Gradient of the companion energy ``-log p̂(θ' | w, D_t)`` and the losses ``l_i(θ')`` of the batch."""

    grad_theta: torch.Tensor
    nll_train: torch.Tensor


class BADSPotential:
    """The minibatch log density of a :class:`~pyrodps.models.bads.BADSModel` (module docstring)."""

    def __init__(self, model: BADSModel) -> None:
        self.model = model

    # ------------------------------------------------------------------ the formula
    def loss_coefficients(self, w: torch.Tensor, n_meta: int,
                          batch_sizes: tuple[int, int] | None = None) -> torch.Tensor:
        """``c_k = -∂ log p̂ / ∂d_k``: ``ρ_θ (N/B) w_i`` for the batch's train points, then ``ρ_m (M/B_m)``
        for its ``n_meta`` meta points (none for the companion target, ``n_meta=0``).

        ``batch_sizes = (B, B_m)``, the sizes the sums are scaled by: by default those of ``w`` and
        ``n_meta``; a rank of a data-parallel step (:mod:`pyrodps.parallel`) holds a share of the global
        batch and scales by the global sizes, so that the ranks' sums add up to the global estimate."""
        m = self.model
        size_t, size_m = (w.shape[0], n_meta) if batch_sizes is None else batch_sizes
        coef_t = w * (m.rho_theta * m.num_train / size_t)
        if n_meta == 0:
            return coef_t
        return torch.cat((coef_t, w.new_full((n_meta,), m.rho_meta * m.num_meta / size_m)))

    def log_density(self, theta: torch.Tensor, deviance: torch.Tensor, w: torch.Tensor, u: torch.Tensor | None,
                    phi: torch.Tensor | None = None, *, weighted: torch.Tensor | None = None) -> torch.Tensor:
        """``log p̂`` from the deviances ``d`` (train then meta; train only for the companion), the
        weights ``w`` and their logits ``u`` (``None`` for the companion: no weight prior) and, with a
        weight network, its parameters φ. ``weighted = Σ_k c_k d_k`` when the caller has it already."""
        m = self.model
        if weighted is None:
            weighted = torch.dot(deviance, self.loss_coefficients(w, deviance.shape[0] - w.shape[0]))
        value = m.theta_prior.log_prob(theta, m.layout)
        if u is not None:
            value = value + m.weight_prior.log_prob_u(u).sum() * (m.num_train / u.shape[0])
        if phi is not None:
            value = value + m.weight_net.log_prior(phi)
        return value - weighted

    def weight_conditional(self, u: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """``ℓ(u) = log p_u(u) - ρ_θ sigmoid(u) δ``, elementwise: the terms of :meth:`log_density` holding
        a table weight ``u_i``, over N/B (``δ_i = d_i``; with the companion, ``l_i(θ) - l_i(θ')``)."""
        return self.model.weight_prior.log_prob_u(u) - self.model.rho_theta * torch.sigmoid(u) * delta

    def weight_conditional_grad(self, u: torch.Tensor, delta: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``∂ℓ/∂u = d log p_u/du - ρ_θ δ w (1 - w)`` (``w = sigmoid(u)``), elementwise."""
        return self.model.weight_prior.grad_log_prob_u(u).sub_(delta * w * (1.0 - w), alpha=self.model.rho_theta)

    def companion_phi_grad(self, phi: torch.Tensor, features: torch.Tensor, companion_deviance: torch.Tensor,
                           table_w: torch.Tensor | None = None) -> torch.Tensor:
        """The log Z(w) term's share of ``∇_φ Û`` with a weight network:
        ``-ρ_θ (N/B) Σ_{i∈B} d̄_i ∇_φ w_i(φ)``, where ``d̄_i`` estimates ``E_{θ'}[l_i(θ') - l_i^ref]``
        (``∂(-log Z)/∂w_i = ρ_θ E[d_i(θ')]``) and ``features`` are the batch's ``h_i``
        (:meth:`weight_features`, held constant; the gradient estimate carries them). With product
        weights ``w_i = table_w_i sigmoid(g_φ(h_i))``, ``table_w`` the batch's ``sigmoid(u_i)``."""
        m, wn = self.model, self.model.weight_net
        ph = phi.detach().requires_grad_(True)
        with torch.enable_grad():
            w = torch.sigmoid(wn.u(ph, features.detach()))
            if table_w is not None:
                w = w * table_w.detach()
            term = torch.dot(w, companion_deviance.detach()) * (m.rho_theta * m.num_train / w.shape[0])
            (grad,) = torch.autograd.grad(term, (ph,))
        return grad.neg_()

    # ------------------------------------------------------------------ losses of a batch
    def deviances(self, out_t: torch.Tensor, out_m: torch.Tensor | None, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(d, l)``: deviances (train, then meta when ``out_m`` is given) and the plain losses."""
        m = self.model
        if out_m is None:
            nll = m.likelihood.nll(out_t, batch.y_train)
            return nll - m.reference_nll(batch.y_train), nll
        nll = m.likelihood.nll(torch.cat((out_t, out_m)), torch.cat((batch.y_train, batch.y_meta)))
        ref = m.reference_nll(batch.y_train)
        return nll - torch.cat((ref, ref.new_zeros(out_m.shape[0]))), nll

    def weights_of(self, weights: Weights, batch: Batch,
                   deviance_t: torch.Tensor, theta: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``(w_B, u_B, φ)``: the batch's weights, the logits that carry the weight prior (``None``
        for none) and the weight network's parameters (``None`` without one). ``weights`` is the
        table's entries ``u_B``, φ of the weight network, or the pair ``(u_B, φ)`` of product weights;
        ``theta``: where the ``"embedding"`` feature is read (``None``: the network as it is bound)."""
        m, wn = self.model, self.model.weight_net
        if wn is None:
            return torch.sigmoid(weights), weights, None
        u_table, phi = m.split_product(weights) if m.product else (None, weights)
        u_net = wn.u(phi, self.weight_features(batch, deviance_t, theta))
        if u_table is None:
            return torch.sigmoid(u_net), u_net, phi
        return torch.sigmoid(u_table) * torch.sigmoid(u_net), u_table, phi

    def weight_features(self, batch: Batch, deviance_t: torch.Tensor, theta: torch.Tensor | None = None) -> torch.Tensor:
        """``h_i`` of the batch's training points for the weight network (see :meth:`weights_of`)."""
        m, wn = self.model, self.model.weight_net
        embedding = None
        if wn.needs_embedding:
            params = None if theta is None else m.layout.unflatten(theta.detach())
            embedding = penultimate(m.net, batch.x_train, params)
        return wn.features(batch.x_train, batch.y_train, deviance_t, batch.idx_train, embedding)

    def functional_log_density(self, theta: torch.Tensor, weights: Weights | None, batch: Batch, *,
                               companion_w: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(log p̂, l_train, l_meta)`` with the network run by ``functional_call`` on θ (differentiable in
        θ and the weights). With ``companion_w`` (and ``weights=None``): the companion target."""
        m = self.model
        params = m.layout.unflatten(theta)
        n_t = batch.x_train.shape[0]
        if companion_w is not None:
            dev, nll = self.deviances(functional_call(m.net, params, (batch.x_train,)), None, batch)
            return self.log_density(theta, dev, companion_w, None), nll.detach(), nll.new_zeros(0)
        if m.joint_forward:
            out = functional_call(m.net, params, (torch.cat((batch.x_train, batch.x_meta)),))
            out_t, out_m = out[:n_t], out[n_t:]
        else:
            out_t = functional_call(m.net, params, (batch.x_train,))
            out_m = functional_call(m.net, params, (batch.x_meta,))
        dev, nll = self.deviances(out_t, out_m, batch)
        w, u, phi = self.weights_of(weights, batch, dev[:n_t], theta)
        value = self.log_density(theta, dev, w, u, phi)
        return value, nll[:n_t].detach(), nll[n_t:].detach()


class AutogradGradient:
    """Autograd of :meth:`BADSPotential.functional_log_density` (``"functional"``) or of the Pyro trace
    (``"reference"``).

    ``validate`` switches Pyro's distribution argument checks (off in the sampler's hot loop: the
    conditioned values come from the sampler itself; the tests run with them on).
    """

    def __init__(self, model: BADSModel, path: str = "functional", validate: bool = True) -> None:
        self.model = model
        self.potential = BADSPotential(model)
        self.path = check_choice("path", path, ("functional", "reference"))
        self.validate = validate

    def __call__(
        self, theta: torch.Tensor, weights: Weights, batch: Batch, need_theta: bool = True, need_energy: bool = True
    ) -> GradientEstimate:
        m, wn = self.model, self.model.weight_net
        th = theta.detach().requires_grad_(need_theta)
        if m.product:
            ub, ph = (x.detach().requires_grad_(True) for x in m.split_product(weights))
            leaves, wrt = (ub, ph), {"u": ub, "phi": ph}
        else:
            leaf = weights.detach().requires_grad_(True)
            leaves, wrt = leaf, {("u" if wn is None else "phi"): leaf}
            ub, ph = (leaf, None) if wn is None else (None, leaf)
        if need_theta:
            wrt = {"theta": th, **wrt}
        with torch.enable_grad():
            if self.path == "functional":
                value, nll_t, nll_m = self.potential.functional_log_density(th, leaves, batch)
            else:
                with pyro.validation_enabled(self.validate):
                    trace = m.reference_trace(th, leaves, batch)
                value = trace.log_prob_sum()
                nll_t, nll_m = trace.nodes["train_nll"]["value"], trace.nodes["meta_nll"]["value"]
            grads = dict(zip(wrt, torch.autograd.grad(value, tuple(wrt.values()))))
        scale_t = batch.idx_train.shape[0] / m.num_train
        with torch.no_grad():
            deviance = nll_t - m.reference_nll(batch.y_train)
            h = self.potential.weight_features(batch, deviance, theta) if wn is not None else None
            v = torch.sigmoid(wn.u(ph.detach(), h)) if wn is not None else None
            w = v  # the network's factor, times the table's where there is one
            if ub is not None:
                w = torch.sigmoid(ub.detach()) if v is None else torch.sigmoid(ub.detach()) * v
        return GradientEstimate(
            energy=-value.detach(),
            grad_theta=-grads["theta"] if "theta" in grads else None,
            grad_u=grads["u"] * scale_t if "u" in grads else None,
            nll_train=nll_t,
            nll_meta=nll_m,
            w=w,
            grad_phi=-grads["phi"] if "phi" in grads else None,
            deviance_train=deviance,
            weight_features=h,
            weight_scale=v if m.product else None,
        )

    def companion(self, theta: torch.Tensor, w_batch: torch.Tensor, batch: Batch) -> CompanionEstimate:
        """Autograd of the companion log density (the formula, or the Pyro trace)."""
        th = theta.detach().requires_grad_(True)
        w = w_batch.detach()
        with torch.enable_grad():
            if self.path == "functional":
                value, nll, _ = self.potential.functional_log_density(th, None, batch, companion_w=w)
            else:
                with pyro.validation_enabled(self.validate):
                    trace = self.model.companion_reference_trace(th, w, batch)
                value = self.model.companion_log_prob(trace)
                nll = trace.nodes["train_nll"]["value"]
            (grad,) = torch.autograd.grad(value, (th,))
        return CompanionEstimate(-grad, nll)


class FusedGradient:
    """What the sampler runs: one forward/backward of ``Σ_k c_k d_k`` (``c`` held fixed) through the
    network with its parameters bound to θ (:class:`FlatParams`); ``∇ log p_0`` and the weight
    gradients in closed form (:class:`BADSPotential`)."""

    def __init__(self, model: BADSModel) -> None:
        self.model = model
        self.potential = BADSPotential(model)
        self.flat = FlatParams(model.net, model.layout)  # the sampled parameters only

    def _forward(self, batch: Batch, meta: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        m = self.model
        if not meta:
            return m.net(batch.x_train), None
        n_t = batch.x_train.shape[0]
        if m.joint_forward or m.weight_net is not None:
            out = m.net(torch.cat((batch.x_train, batch.x_meta)))
            return out[:n_t], out[n_t:]
        return m.net(batch.x_train), m.net(batch.x_meta)

    def __call__(
        self, theta: torch.Tensor, weights: Weights, batch: Batch, need_theta: bool = True, need_energy: bool = True
    ) -> GradientEstimate:
        m, pot = self.model, self.potential
        self.flat.bind(theta)
        n_t, n_m = batch.x_train.shape[0], batch.x_meta.shape[0]
        amortised = m.weight_net is not None
        u_table, phi = m.split_product(weights) if m.product else ((None, weights) if amortised else (weights, None))
        with torch.set_grad_enabled(need_theta or amortised):
            ph = phi.detach().requires_grad_(True) if amortised else None
            dev, nll = pot.deviances(*self._forward(batch), batch)
            h = pot.weight_features(batch, dev[:n_t].detach()) if amortised else None
            u_net = m.weight_net.u(ph, h) if amortised else None
            v = torch.sigmoid(u_net) if amortised else None
            w_table = torch.sigmoid(u_table).detach() if u_table is not None else None
            w = w_table if not amortised else v if w_table is None else w_table * v
            weighted = torch.dot(dev, pot.loss_coefficients(w, n_m))
            grad_theta = grad_phi = grad_u = None
            if amortised:  # ∇ of Σ c_k d_k [- (N/B) Σ log p_u(u_i(φ)), amortised alone] in θ and φ, one backward
                target = weighted if m.product else weighted - m.weight_prior.log_prob_u(u_net).sum() * (m.num_train / n_t)
                grads = torch.autograd.grad(target, [*self.flat.params, ph] if need_theta else [ph])
                grad_phi = grads[-1].sub_(m.weight_net.grad_log_prior(phi))
                if need_theta:
                    grad_theta = torch.cat([g.reshape(-1) for g in grads[:-1]])
            elif need_theta:
                grad_theta = self.flat.grad(weighted)
        with torch.no_grad():
            if grad_theta is not None:
                grad_theta.sub_(m.theta_prior.grad_log_prob(theta, m.layout))
            nll, w = nll.detach(), w.detach()
            v = None if v is None else v.detach()
            if u_table is not None:  # ∂ℓ_i/∂u_i with δ_i = d_i (v_i d_i with product weights)
                delta = dev[:n_t].detach() if v is None else dev[:n_t].detach() * v
                grad_u = pot.weight_conditional_grad(u_table, delta, w_table)
            energy = None
            if need_energy:
                energy = -pot.log_density(theta, dev, w, u_table if u_table is not None else u_net.detach(), phi,
                                          weighted=weighted.detach())
        return GradientEstimate(energy, grad_theta, grad_u, nll[:n_t], nll[n_t:], w, grad_phi, dev[:n_t].detach(), h,
                                v if m.product else None)

    def companion(self, theta: torch.Tensor, w_batch: torch.Tensor, batch: Batch) -> CompanionEstimate:
        """One forward/backward of ``ρ_θ (N/B) Σ w_i d_i(θ')`` on the train batch only (the loss
        reference does not depend on θ' and drops out of the gradient)."""
        m = self.model
        self.flat.bind(theta)
        with torch.enable_grad():
            dev, nll = self.potential.deviances(*self._forward(batch, meta=False), batch)
            weighted = torch.dot(dev, self.potential.loss_coefficients(w_batch, 0))
            grad = self.flat.grad(weighted).sub_(m.theta_prior.grad_log_prob(theta, m.layout))
        return CompanionEstimate(grad, nll.detach())


def make_gradient(model: BADSModel, path: str):
    """``"fused"`` (default in the sampler), ``"functional"`` or ``"reference"`` (Pyro trace)."""
    check_choice("path", path, ("fused", "functional", "reference"))
    return FusedGradient(model) if path == "fused" else AutogradGradient(model, path, validate=False)
