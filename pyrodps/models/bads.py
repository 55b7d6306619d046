"""The BADS model: a Pyro program (the specification); the same density written once in closed form
for the samplers is :class:`~pyrodps.models.potential.BADSPotential`.

Posterior over the main network's parameters θ and the instance weights ``w = sigmoid(u)``:

    log p(θ, u | D_t, D_m) = log p_0(θ)
                             + Σ_{i ∈ D_t} [ log p_u(u_i) - ρ_θ w_i (l_i(θ) - l_i^ref) ]
                             - ρ_m Σ_{j ∈ D_m} l_j(θ)          (+ const, log Z(w) dropped)

``l_i^ref`` is the loss's reference level (``loss_reference``): with ``"saturated"`` (the default) the
loss of the best possible output for ``y_i`` (:meth:`Likelihood.saturated_nll`; 0 for a categorical
likelihood, ``log(s sqrt(2π))`` for a Gaussian of scale ``s``), so the weights see the deviance and do
not move when the likelihood gains an additive constant; ``"none"`` uses ``l_i^ref = 0``. The
reference does not depend on θ: it is an exponential tilt ``exp(ρ_θ w_i l_i^ref)`` of the weight
prior, and the θ-gradient is unchanged.

With a weight network ``w_i = sigmoid(g_φ(h_i))`` (amortised, or one latent per group), and with
product weights ``w_i = sigmoid(u_i) sigmoid(g_φ(h_i))``: a point's own trust times its group's
(:mod:`pyrodps.models.weight_net`).

On a train minibatch ``B_t`` and a meta minibatch ``B_m`` each sum is replaced by its unbiased
estimate ``(N / |B_t|) Σ_{i ∈ B_t}`` and ``(M / |B_m|) Σ_{j ∈ B_m}``; Pyro's subsampled
``pyro.plate`` applies exactly these scales.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pyro
import torch
from pyro import poutine
from torch import nn
from torch.func import functional_call

from pyrodps.errors import ValidationError, check_choice, check_positive
from pyrodps.models.data import Batch, SelectionData
from pyrodps.models.layout import ParamLayout
from pyrodps.models.likelihoods import Likelihood
from pyrodps.models.networks import penultimate
from pyrodps.models.normaliser import check_log_z
from pyrodps.models.pieces import checked
from pyrodps.models.priors import IsotropicGaussian, ThetaPrior, UniformWeight, WeightPrior
from pyrodps.models.subset import Selection, sample_only
from pyrodps.models.weight_net import WeightNet

LOSS_REFERENCES = ("saturated", "none")
# what the density is evaluated at besides θ: the batch's table entries u_B, the weight network's flat φ,
# or the pair (u_B, φ) of product weights
Weights = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass
class LogJoint:
    """The minibatch log joint and the per-example losses computed on the way."""

    value: torch.Tensor
    nll_train: torch.Tensor
    nll_meta: torch.Tensor


class BADSModel:
    """The BADS posterior for a network ``net`` (an ordinary ``nn.Module``).

    Args:
        net: the main network. θ covers its sampled parameters (``requires_grad=True``; their current
            values are θ's starting point); frozen ones keep their values in every forward
            (:mod:`pyrodps.models.subset`).
        likelihood: the observation model giving ``l_i(θ)``.
        num_train, num_meta: ``N`` and ``M``, the sizes of ``D_t`` and ``D_m``.
        theta_prior: ``p_0(θ)``; isotropic ``N(0, 1)`` by default.
        weight_prior: ``p(w)``; uniform by default.
        rho_theta: impact constant ``ρ_θ`` of the weighted train term.
        rho_meta: ``ρ_m`` of the meta likelihood.
        log_z: treatment of ``log Z(w)``: ``"ignore"`` or ``"companion"``
            (:mod:`pyrodps.models.normaliser`).
        loss_reference: ``"saturated"`` or ``"none"``: the level ``l_i^ref`` the weights measure the
            loss against (module docstring).
        joint_forward: run train and meta examples through the network in one call (faster; needs a
            network whose output for one example does not depend on the rest of the batch).
        weight_net: amortise the weights with a :class:`~pyrodps.models.weight_net.WeightNet`
            (``u_i = g_φ(h_i)``, prior on φ) instead of a table of ``u_i``.
        product: with ``weight_net``, keep the table too and multiply: ``w_i = sigmoid(u_i) v_i`` with
            ``v_i = sigmoid(g_φ(h_i))`` (per-point weights times group weights when ``g_φ`` is the
            linear map on a one-hot group). The weight prior stays on the table entries ``u_i``; φ has
            only its own prior.
        sample: which parameters θ covers: ``None`` (default) those that require gradients (all of a
            fresh network; only the adapter of a ``peft`` LoRA model); glob patterns on the parameter
            names or a predicate ``(name, parameter) -> bool``, which freeze the others in ``net`` in
            place (:func:`~pyrodps.models.subset.sample_only`, :func:`~pyrodps.models.subset.last_blocks`).
    """

    def __init__(
        self,
        net: nn.Module,
        likelihood: Likelihood,
        num_train: int,
        num_meta: int,
        *,
        theta_prior: ThetaPrior | None = None,
        weight_prior: WeightPrior | None = None,
        rho_theta: float = 1.0,
        rho_meta: float = 1.0,
        log_z: str = "ignore",
        loss_reference: str = "saturated",
        joint_forward: bool = True,
        weight_net: WeightNet | None = None,
        product: bool = False,
        sample: Selection | None = None,
    ) -> None:
        if not isinstance(net, nn.Module):
            raise ValidationError("net", f"must be a torch.nn.Module, got {type(net).__name__}")
        if not isinstance(likelihood, Likelihood):
            raise ValidationError("likelihood", f"must be a Likelihood, got {type(likelihood).__name__}")
        if num_train < 1:
            raise ValidationError("num_train", f"must be >= 1, got {num_train}")
        if num_meta < 1:
            raise ValidationError("num_meta", "the meta set is empty: BADS needs at least one clean example")
        self.net = net
        self.likelihood = checked(likelihood, "likelihood")
        self.num_train = int(num_train)
        self.num_meta = int(num_meta)
        self.theta_prior = checked(theta_prior if theta_prior is not None else IsotropicGaussian(1.0), "θ prior")
        self.weight_prior = checked(weight_prior if weight_prior is not None else UniformWeight(), "weight prior")
        self.rho_theta = check_positive("rho_theta", rho_theta)
        self.rho_meta = check_positive("rho_meta", rho_meta)
        self.log_z = check_log_z(log_z)
        self.loss_reference = check_choice("loss_reference", loss_reference, LOSS_REFERENCES)
        self.weight_net = weight_net
        if product and weight_net is None:
            raise ValidationError("weights", "product weights need a weight network (the group factor)")
        self.product = bool(product)
        if self.log_z == "companion-groups" and weight_net is None:
            raise ValidationError("log_z", "'companion-groups' keeps log Z(w) for the weight network's φ; "
                                  "it needs weights='network' or 'product'")
        self.joint_forward = joint_forward
        if sample is not None:
            sample_only(net, sample)
        self.layout = ParamLayout.from_module(net)
        if self.layout.size == 0:
            raise ValidationError("net", "has no sampled parameter: every parameter has requires_grad=False")
        self._theta0 = self.layout.flatten(net).clone()

    # ------------------------------------------------------------------ the specification (Pyro)
    def pyro_model(self, batch: Batch | SelectionData, *, weights_as_table: bool = False,
                   subsample_sizes: tuple[int, int] | None = None) -> None:
        """The generative program on one minibatch. Sites: ``theta`` (flat), ``u`` (train plate,
        subsampled at ``batch.idx_train``), ``train_loss`` (factor), ``y_meta`` (observed, meta plate,
        subsampled at ``batch.idx_meta``); ``train_nll`` and ``meta_nll`` record the per-example
        losses (deterministic sites, no density). With a weight network, ``phi`` replaces ``u`` and a
        factor ``weight_prior`` carries ``log p_u(g_φ(h_i))`` (``weights_as_table``: the table form even
        with a weight network, for the companion target, whose weights are held fixed). With
        ``product`` both ``u`` and ``phi`` are sampled and ``w_i = sigmoid(u_i) sigmoid(g_φ(h_i))``.

        Given the whole :class:`~pyrodps.models.data.SelectionData` and ``subsample_sizes = (B, B_m)``
        instead of a batch, the plates are ``pyro.plate(..., subsample_size=B)``: Pyro (or the generic
        SG-MCMC of :mod:`pyrodps.infer`) chooses the subsamples, and the program is otherwise the same.
        With ``joint_forward`` the network runs once over both subsamples, as the fast paths run it."""
        theta = pyro.sample("theta", self.theta_prior.distribution(self.layout))
        params = self.layout.unflatten(theta)
        wn = None if weights_as_table else self.weight_net
        phi = pyro.sample("phi", wn.prior()) if wn is not None else None
        full = isinstance(batch, SelectionData)
        if full and subsample_sizes is None:
            raise ValidationError("subsample_sizes", "give (batch_size, meta_batch_size) with the whole data set")
        # the plates draw (or take) their subsamples as they are built
        train = (pyro.plate("train", self.num_train, subsample_size=subsample_sizes[0]) if full
                 else pyro.plate("train", self.num_train, subsample=batch.idx_train))
        meta = (pyro.plate("meta", self.num_meta, subsample_size=subsample_sizes[1]) if full
                else pyro.plate("meta", self.num_meta, subsample=batch.idx_meta))
        with train as idx_train:
            x_t, y_t = (batch.x_train[idx_train], batch.y_train[idx_train]) if full else (batch.x_train, batch.y_train)
        with meta as idx_meta:
            x_m, y_m = (batch.x_meta[idx_meta], batch.y_meta[idx_meta]) if full else (batch.x_meta, batch.y_meta)
        if self.joint_forward:  # one pass over both subsamples, as the fast paths run it
            out_t, out_m = functional_call(self.net, params, (torch.cat((x_t, x_m)),)).split([len(x_t), len(x_m)])
        else:
            out_t, out_m = functional_call(self.net, params, (x_t,)), functional_call(self.net, params, (x_m,))
        with train:
            nll = -self.likelihood.distribution(out_t).log_prob(y_t)
            pyro.deterministic("train_nll", nll.detach())
            deviance = nll - self.reference_nll(y_t)
            u = pyro.sample("u", self.weight_prior.u_distribution()) if wn is None or self.product else None
            if wn is None:
                w = torch.sigmoid(u)
            else:
                emb = penultimate(self.net, x_t, params) if wn.needs_embedding else None
                u_net = wn.u(phi, wn.features(x_t, y_t, deviance, idx_train, emb))
                if self.product:  # per-point table times the network's (group) factor
                    w = torch.sigmoid(u) * torch.sigmoid(u_net)
                else:  # amortised: u_i = g_φ(h_i), the weight prior kept as a factor on the amortised u_i
                    pyro.factor("weight_prior", self.weight_prior.log_prob_u(u_net))
                    w = torch.sigmoid(u_net)
            pyro.factor("train_loss", -self.rho_theta * w * deviance)
        with meta:
            lik_m = self.likelihood.distribution(out_m)
            with poutine.scale(scale=self.rho_meta):
                pyro.sample("y_meta", lik_m, obs=y_m)
            pyro.deterministic("meta_nll", -lik_m.log_prob(y_m).detach())

    def companion_reference_trace(self, theta: torch.Tensor, w_batch: torch.Tensor, batch: Batch) -> poutine.Trace:
        """Pyro trace of :meth:`pyro_model` at ``θ'`` with the batch's weights fixed at ``w_batch``
        (in the table form, whatever parametrises the weights); :meth:`companion_log_prob` reads the
        companion target from it."""
        model = functools.partial(self.pyro_model, weights_as_table=True)
        data = {"theta": theta, "u": torch.logit(w_batch)}
        return poutine.trace(poutine.condition(model, data=data)).get_trace(batch)

    @staticmethod
    def companion_log_prob(trace: poutine.Trace) -> torch.Tensor:
        """The companion target ``log p(θ' | w, D_t) ∝ log p_0(θ') - ρ_θ Σ_i w_i d_i(θ')`` from a trace of
        :meth:`pyro_model`: every site but the weight prior (``u``) and the meta likelihood (``y_meta``)."""
        return trace.log_prob_sum(site_filter=lambda name, site: name not in ("u", "y_meta"))

    def reference_trace(self, theta: torch.Tensor, weights: Weights, batch: Batch) -> poutine.Trace:
        """Pyro trace of :meth:`pyro_model` conditioned on ``θ`` (flat) and ``weights``: ``u_B = u[idx_train]``
        for table weights, flat φ for a weight network, the pair ``(u_B, φ)`` for product weights."""
        if self.product:
            u_batch, phi = self.split_product(weights)
            data = {"theta": theta, "u": u_batch, "phi": phi}
        else:
            data = {"theta": theta, ("u" if self.weight_net is None else "phi"): weights}
        return poutine.trace(poutine.condition(self.pyro_model, data=data)).get_trace(batch)

    @staticmethod
    def split_product(weights: Weights) -> tuple[torch.Tensor, torch.Tensor]:
        """``(u_B, φ)`` of product weights, or a :class:`ValidationError` naming ``weights``."""
        if not (isinstance(weights, tuple | list) and len(weights) == 2):
            raise ValidationError("weights", "product weights are evaluated at the pair (u_B, φ), got "
                                  f"{type(weights).__name__}")
        return weights[0], weights[1]

    def reference_log_joint(self, theta: torch.Tensor, weights: Weights, batch: Batch) -> torch.Tensor:
        """Minibatch log joint ``log_prob_sum`` of :meth:`reference_trace`."""
        return self.reference_trace(theta, weights, batch).log_prob_sum()

    # ------------------------------------------------------------------ the fast path
    def log_joint(self, theta: torch.Tensor, weights: Weights, batch: Batch) -> LogJoint:
        """The same minibatch log joint as :meth:`reference_log_joint` (``weights`` as there), from the
        one formula of :class:`~pyrodps.models.potential.BADSPotential`."""
        from pyrodps.models.potential import BADSPotential

        return LogJoint(*BADSPotential(self).functional_log_density(theta, weights, batch))

    def reference_nll(self, y: torch.Tensor) -> torch.Tensor:
        """``l_i^ref`` of the targets ``y`` (per example): the likelihood's saturated loss, or zeros."""
        if self.loss_reference == "none":
            return torch.zeros(y.shape[0], dtype=torch.get_default_dtype(), device=y.device)
        return self.likelihood.saturated_nll(y)

    def initial_theta(self) -> torch.Tensor:
        """The flat parameter vector of the network as it was when the model was built (samplers
        may rebind the network's parameters to their own state later)."""
        return self._theta0.clone()
