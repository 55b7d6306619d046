"""Learning to Reweight Examples (L2RW; Ren, Zeng, Yang, Urtasun, ICML 2018), as its official code
(``uber-research/learning-to-reweight-examples``, ``mnist/reweight.py``) does it.

At every step, on a train batch ``B_t`` (size ``B``) and a meta batch ``B_m``:

    ε = 0 ∈ R^B                                             (per-example perturbations)
    L_t(θ, ε) = Σ_i ε_i l_i(θ)        ("sum", official)  or  (1/B) Σ_i ε_i l_i(θ)  ("mean")
    θ̂(ε) = θ - α ∇_θ L_t(θ, ε)                              (differentiable lookahead, α = 1 official)
    u_i = -∂/∂ε_i [ (1/|B_m|) Σ_{j∈B_m} l_j(θ̂(ε)) ] at ε = 0
    w_i = max(u_i, 0) / Σ_k max(u_k, 0)       (all w_i = 0 when Σ_k max(u_k, 0) = 0)
    θ ← momentum-SGD step on Σ_i w_i l_i(θ)

The weights are not kept across steps. Because ``θ̂(0) = θ``, ``u_i = c α ∇_θ l_i(θ) · ∇_θ
L_meta(θ)`` with ``c = 1`` ("sum") or ``1/B`` ("mean"): ``lookahead_lr`` and
``lookahead_reduction`` scale every ``u_i`` by the same positive number, so they change the raw
``u`` but not the normalised weights (beyond rounding). Both are options because the paper and the
official code differ in how they are written.

Selection score of a training point: the mean over the steps in which it was in a batch of
``B · w_i``, so that 1 is the uniform weight ``1/B`` of an unweighted batch, 0 means "never helped
the meta loss", and values above 1 mark points that carried more than their share.

``l_i`` is the per-example negative log-likelihood of the problem's likelihood (see
:mod:`pyrodps.baselines.blo`); called on their own, the step functions use the cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import grad

from pyrodps.baselines.blo import (
    BLOBatch,
    BLOConfig,
    BLOFit,
    BLOStep,
    Params,
    example_nll,
    fit_blo,
    network_params,
    per_example_losses,
)
from pyrodps.baselines.sgd import sgd_step
from pyrodps.errors import check_choice, check_positive
from pyrodps.models.likelihoods import Likelihood
from pyrodps.models.problem import SelectionProblem

LOOKAHEAD_REDUCTIONS = ("sum", "mean")


@dataclass
class L2RWConfig(BLOConfig):
    """L2RW settings: those of :class:`~pyrodps.baselines.blo.BLOConfig` plus the lookahead step
    size ``α`` (``lookahead_lr``, 1 in the official code) and how the perturbed train loss is
    reduced in the lookahead (``"sum"``, official, or ``"mean"``)."""

    lookahead_lr: float = 1.0
    lookahead_reduction: str = "sum"

    def validate(self) -> None:
        super().validate()
        check_positive("lookahead_lr", self.lookahead_lr)
        check_choice("lookahead_reduction", self.lookahead_reduction, LOOKAHEAD_REDUCTIONS)


def l2rw_meta_gradient(
    net: nn.Module,
    params: Params,
    batch: BLOBatch,
    lookahead_lr: float = 1.0,
    lookahead_reduction: str = "sum",
    likelihood: Likelihood | None = None,
) -> torch.Tensor:
    """``u = -∂L_meta(θ̂(ε))/∂ε`` at ``ε = 0`` for the train batch of ``batch`` against its meta
    batch, differentiating through the lookahead ``θ̂(ε) = θ - α ∇_θ L_t(θ, ε)`` with nested
    ``torch.func.grad`` (reverse over reverse); ``θ = params``, losses from ``likelihood``
    (default: the cross-entropy). The L2RW weights are ``normalised_positive_part(u)``."""
    batch_size = batch.x.shape[0]

    def perturbed_train_loss(theta: Params, eps: torch.Tensor) -> torch.Tensor:
        total = (eps * per_example_losses(net, theta, batch.x, batch.y, likelihood)).sum()
        return total / batch_size if lookahead_reduction == "mean" else total

    def meta_loss_after_lookahead(eps: torch.Tensor) -> torch.Tensor:
        inner = grad(perturbed_train_loss)(params, eps)
        lookahead = {name: p - lookahead_lr * inner[name] for name, p in params.items()}
        return per_example_losses(net, lookahead, batch.x_meta, batch.y_meta, likelihood).mean()

    # the parameters' dtype, not the inputs' (token ids are integers)
    eps = torch.zeros(batch_size, dtype=next(iter(params.values())).dtype, device=batch.x.device)
    return -grad(meta_loss_after_lookahead)(eps)


def normalised_positive_part(u: torch.Tensor) -> torch.Tensor:
    """``max(u, 0) / Σ max(u, 0)``, or all zeros when that sum is 0 (the official guard)."""
    positive = u.clamp(min=0)
    total = positive.sum()
    return positive / (total + (total == 0).to(total.dtype))


def l2rw_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    x_meta: torch.Tensor,
    y_meta: torch.Tensor,
    lookahead_lr: float = 1.0,
    lookahead_reduction: str = "sum",
    likelihood: Likelihood | None = None,
) -> torch.Tensor:
    """One L2RW step: the weights ``w = normalised_positive_part(u)`` of the batch at the current
    ``θ`` (:func:`l2rw_meta_gradient`; non-negative and summing to 1, or all 0), then a real
    ``optimizer`` step on ``Σ_i w_i l_i(θ)``. Returns ``w``."""
    u = l2rw_meta_gradient(net, network_params(net), BLOBatch(x, y, x_meta, y_meta), lookahead_lr,
                           lookahead_reduction, likelihood)
    weights = normalised_positive_part(u)
    sgd_step(net, optimizer, (weights * example_nll(likelihood, net(x), y)).sum())
    return weights


def _l2rw_stepper(config: L2RWConfig, likelihood: Likelihood, seed: int) -> BLOStep:
    def step(model: nn.Module, optimizer: torch.optim.Optimizer, *batch: torch.Tensor) -> torch.Tensor:
        weights = l2rw_step(model, optimizer, *batch, config.lookahead_lr, config.lookahead_reduction,
                            likelihood)
        return weights * batch[0].shape[0]  # the score scale: 1 = the uniform weight 1/B

    return step


def fit_l2rw(problem: SelectionProblem, config: L2RWConfig | None = None, *, seed: int = 0,
             net: nn.Module | None = None, likelihood: Likelihood | None = None, progress: bool = True,
             eval_every: int = 100) -> BLOFit:
    """Train ``net`` (default: the network the other baselines use, initialised from ``seed``) with
    L2RW on ``problem``'s train set against its meta set, with the losses of ``likelihood``
    (default: :func:`~pyrodps.models.problem.default_likelihood`). ``weight_mean`` of the result is
    the selection score (mean of ``B · w_i`` over visits; see the module docstring)."""
    return fit_blo(problem, config or L2RWConfig(), _l2rw_stepper, seed=seed, net=net,
                   likelihood=likelihood, progress=progress, eval_every=eval_every, desc="l2rw")
