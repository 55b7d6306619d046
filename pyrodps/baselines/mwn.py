"""Meta-Weight-Net (MW-Net; Shu, Xie, Yi, Zhao, Zhou, Xu, Meng, NeurIPS 2019), as its official code
(``xjtushujun/meta-weight-net``, ``MW-Net.py``) does it.

A weight network ``V(·; φ)`` (1-100-1 MLP, ReLU hidden layer, sigmoid output) maps the detached
per-example loss to a weight in (0, 1). At every step, on a train batch ``B_t`` (size ``B``) and a
meta batch ``B_m``:

    v_i(φ) = V(stopgrad(l_i(θ)); φ)
    L_t(θ, φ) = (1/B) Σ_i v_i l_i(θ)         ("mean", official)
             or Σ_i v_i l_i(θ) / Σ_i v_i      ("normalised", as the official class-imbalance scripts)
    θ̂(φ) = θ - α ∇_θ L_t(θ, φ)              (virtual plain-SGD step, create_graph; α = the real lr)
    φ ← Adam step on ∇_φ (1/|B_m|) Σ_{j∈B_m} l_j(θ̂(φ))      (lr 1e-3, weight decay 1e-4)
    w_i = V(stopgrad(l_i(θ)); φ)             (with the updated φ, no gradient to φ)
    θ ← momentum-SGD step on L_t(θ) with the weights w_i (same reduction)

The selection score of a training point is the mean of its weights ``w_i`` over the steps in which
it was in a batch (a value in (0, 1), like the BADS weights).

Any likelihood works (the losses are its negative log-likelihoods, :mod:`pyrodps.baselines.blo`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad, grad_and_value

from pyrodps.baselines.blo import (
    BLOBatch,
    BLOConfig,
    BLOFit,
    BLOStep,
    Params,
    check_nonnegative_finite,
    example_nll,
    fit_blo,
    network_params,
    per_example_losses,
)
from pyrodps.baselines.sgd import sgd_step
from pyrodps.errors import check_choice, check_positive, check_positive_int
from pyrodps.models.likelihoods import Likelihood
from pyrodps.models.problem import SelectionProblem

WEIGHT_NORMALISATIONS = ("mean", "normalised")


@dataclass
class MWNConfig(BLOConfig):
    """Meta-Weight-Net settings: those of :class:`~pyrodps.baselines.blo.BLOConfig` plus the weight
    network (``weight_net_hidden`` units), its Adam optimizer (``weight_net_lr``,
    ``weight_net_weight_decay``), the step size of the virtual step (``virtual_lr``; ``None``: the
    real ``lr``, as the official code) and the reduction of the weighted loss
    (``weight_normalisation``: ``"mean"`` = ``Σ w_i l_i / B``, ``"normalised"`` = ``Σ w_i l_i / Σ w_i``)."""

    weight_net_hidden: int = 100
    weight_net_lr: float = 1e-3
    weight_net_weight_decay: float = 1e-4
    virtual_lr: float | None = None
    weight_normalisation: str = "mean"

    def validate(self) -> None:
        super().validate()
        check_positive_int("weight_net_hidden", self.weight_net_hidden)
        check_positive("weight_net_lr", self.weight_net_lr)
        check_nonnegative_finite("weight_net_weight_decay", self.weight_net_weight_decay)
        if self.virtual_lr is not None:
            check_positive("virtual_lr", self.virtual_lr)
        check_choice("weight_normalisation", self.weight_normalisation, WEIGHT_NORMALISATIONS)


def weight_network(hidden: int = 100, seed: int = 0) -> nn.Sequential:
    """``V(l) = sigmoid(W_2 relu(W_1 l + b_1) + b_2)``, a ``1 -> hidden -> 1`` MLP with PyTorch's
    default initialisation drawn from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) * 1_000_003 + 20_000)
        return nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Sigmoid())


def example_weights(
    weight_net: nn.Module, weight_params: Params, losses: torch.Tensor
) -> torch.Tensor:
    """``v_i = V(stopgrad(l_i); φ)`` for a vector of losses, ``φ = weight_params``."""
    return functional_call(weight_net, weight_params, (losses.detach().unsqueeze(1),)).squeeze(1)


def weighted_loss(
    weights: torch.Tensor, losses: torch.Tensor, weight_normalisation: str = "mean"
) -> torch.Tensor:
    """``Σ w_i l_i / B`` (``"mean"``) or ``Σ w_i l_i / Σ w_i`` (``"normalised"``; ``Σ w_i l_i`` when
    ``Σ w_i = 0``, the official guard)."""
    total = (weights * losses).sum()
    if weight_normalisation == "mean":
        return total / losses.shape[0]
    norm = weights.sum()
    return total / torch.where(norm > 0, norm, torch.ones_like(norm))


def mwn_meta_gradient(
    net: nn.Module,
    params: Params,
    weight_net: nn.Module,
    weight_params: Params,
    batch: BLOBatch,
    virtual_lr: float,
    weight_normalisation: str = "mean",
    likelihood: Likelihood | None = None,
) -> tuple[Params, torch.Tensor]:
    """``∇_φ L_meta(θ̂(φ))`` and ``L_meta(θ̂(φ))`` for the train batch of ``batch`` against its meta
    batch, through the virtual step ``θ̂(φ) = θ - α ∇_θ L_t(θ, φ)`` (nested ``torch.func``
    gradients: reverse over reverse); ``θ = params``, ``φ = weight_params``, losses from
    ``likelihood`` (default: the cross-entropy)."""

    def train_loss(theta: Params, phi: Params) -> torch.Tensor:
        losses = per_example_losses(net, theta, batch.x, batch.y, likelihood)
        return weighted_loss(example_weights(weight_net, phi, losses), losses, weight_normalisation)

    def meta_loss_after_virtual_step(phi: Params) -> torch.Tensor:
        inner = grad(train_loss)(params, phi)
        virtual = {name: p - virtual_lr * inner[name] for name, p in params.items()}
        return per_example_losses(net, virtual, batch.x_meta, batch.y_meta, likelihood).mean()

    return grad_and_value(meta_loss_after_virtual_step)(weight_params)


def mwn_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    weight_net: nn.Module,
    weight_optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    x_meta: torch.Tensor,
    y_meta: torch.Tensor,
    virtual_lr: float,
    weight_normalisation: str = "mean",
    likelihood: Likelihood | None = None,
) -> torch.Tensor:
    """One MW-Net step: a ``weight_optimizer`` step of ``φ`` on the meta gradient through the
    virtual step (:func:`mwn_meta_gradient`), then a real ``optimizer`` step of ``θ`` on the loss
    weighted by the updated weight network. Returns the weights ``w`` used in the real step."""
    phi_grads, _ = mwn_meta_gradient(net, network_params(net), weight_net, network_params(weight_net),
                                     BLOBatch(x, y, x_meta, y_meta), virtual_lr, weight_normalisation,
                                     likelihood)
    for name, p in weight_net.named_parameters():
        p.grad = phi_grads[name]
    weight_optimizer.step()
    losses = example_nll(likelihood, net(x), y)
    with torch.no_grad():
        weights = weight_net(losses.detach().unsqueeze(1)).squeeze(1)
    sgd_step(net, optimizer, weighted_loss(weights, losses, weight_normalisation))
    return weights


def _mwn_stepper(config: MWNConfig, likelihood: Likelihood, seed: int) -> BLOStep:
    """The MW-Net step of ``fit_mwn``: its weight network from ``seed``, Adam on it, virtual lr."""
    weight_net = weight_network(config.weight_net_hidden, seed)
    weight_optimizer = torch.optim.Adam(
        weight_net.parameters(),
        lr=config.weight_net_lr,
        weight_decay=config.weight_net_weight_decay,
    )
    virtual_lr = config.virtual_lr if config.virtual_lr is not None else config.lr

    def step(model: nn.Module, optimizer: torch.optim.Optimizer, *batch: torch.Tensor) -> torch.Tensor:
        return mwn_step(model, optimizer, weight_net, weight_optimizer, *batch, virtual_lr,
                        config.weight_normalisation, likelihood)

    return step


def fit_mwn(problem: SelectionProblem, config: MWNConfig | None = None, *, seed: int = 0,
            net: nn.Module | None = None, likelihood: Likelihood | None = None, progress: bool = True,
            eval_every: int = 100) -> BLOFit:
    """Train ``net`` (default: the network the other baselines use, initialised from ``seed``) with
    Meta-Weight-Net on ``problem``'s train set against its meta set, with the losses of
    ``likelihood`` (default: :func:`~pyrodps.models.problem.default_likelihood`). ``weight_mean``
    of the result is the selection score (mean MW-Net weight over visits)."""
    return fit_blo(problem, config or MWNConfig(), _mwn_stepper, seed=seed, net=net,
                   likelihood=likelihood, progress=progress, eval_every=eval_every, desc="mwn")
