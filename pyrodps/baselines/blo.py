"""One-step-lookahead bi-level optimisation (BLO) baselines: the pieces L2RW and Meta-Weight-Net share.

Both methods train the network ``θ`` with momentum SGD on a *weighted* train loss, the weights of a
train batch ``B_t`` being chosen at every step by how one differentiable SGD step on that batch
would change the mean loss on a meta batch ``B_m``:

    θ̂(λ) = θ - α ∇_θ Σ_{i∈B_t} λ_i l_i(θ)          (lookahead / virtual step)
    L_meta(λ) = (1/|B_m|) Σ_{j∈B_m} l_j(θ̂(λ))

with ``λ`` the per-example perturbations (L2RW, :mod:`pyrodps.baselines.l2rw`) or the outputs of a
weight network (Meta-Weight-Net, :mod:`pyrodps.baselines.mwn`). The hypergradient
``∂L_meta/∂λ`` is a minibatch estimate of a one-step approximation, i.e. a biased estimate of the
bi-level objective (see ``shared/design/bads-model.md``).

The losses ``l_i`` are the per-example negative log-likelihoods of the problem's likelihood
(:func:`~pyrodps.models.problem.default_likelihood`: the cross-entropy for classification, a
Gaussian for regression), so both methods work for either task.

This module holds the settings both share (:class:`BLOConfig`), the result (:class:`BLOFit`), a
train batch with its meta batch (:class:`BLOBatch`), the per-example loss of a network at a
parameter dictionary (:func:`per_example_losses`, through ``torch.func.functional_call``), the
training loop (:func:`train_blo`: reproducible train and meta batches, the test trace, and the
selection score of every training point, the mean of its weights over the steps in which it was in
a batch, float64 accumulators) and the common body of ``fit_l2rw`` and ``fit_mwn``
(:func:`fit_blo`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Self, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from pyrodps.baselines.sgd import SGDConfig, momentum_sgd, target_tensor, train_steps
from pyrodps.errors import ValidationError, check_positive_int
from pyrodps.models.likelihoods import Likelihood
from pyrodps.models.networks import default_network
from pyrodps.models.problem import SelectionProblem, default_likelihood
from pyrodps.models.sequence_problem import input_dtype
from pyrodps.run.weight_stats import OnlineWeightStats
from pyrodps.sgmcmc.kernel import make_generator
from pyrodps.sgmcmc.minibatch import IndexStream

Params = dict[str, torch.Tensor]


def check_nonnegative_finite(argument: str, value: float) -> float:
    """Return ``value`` if it is a finite number >= 0, else raise :class:`ValidationError`."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValidationError(argument, f"must be a number, got {value!r}") from None
    if not 0.0 <= v < float("inf"):
        raise ValidationError(argument, f"must be a finite number >= 0, got {value!r}")
    return v


@dataclass
class BLOConfig(SGDConfig):
    """Settings shared by the BLO baselines: those of :class:`~pyrodps.baselines.sgd.SGDConfig` for
    the real step (momentum SGD with weight decay; ``lr=None`` picks the same rule, 0.003 for vectors
    and 0.01 for sequences and images) plus ``meta_batch_size``. Both batch sizes are capped at the
    sizes of the train and meta sets by :meth:`resolved` (a meta set of 50 points is used whole)."""

    meta_batch_size: int = 128

    def validate(self) -> None:
        """Raise :class:`~pyrodps.errors.ValidationError` naming the first bad field."""
        super().validate()
        check_positive_int("meta_batch_size", self.meta_batch_size)

    def resolved(self, problem: SelectionProblem) -> Self:
        """A copy with ``lr`` filled in for ``problem``'s kind of input and the batch sizes capped
        at the sizes of its train and meta sets."""
        return replace(
            super().resolved(problem),
            batch_size=min(self.batch_size, problem.num_train),
            meta_batch_size=min(self.meta_batch_size, int(problem.x_meta.shape[0])),
        )


@dataclass
class BLOFit:
    """What a BLO baseline produced. ``test_probs`` are class probabilities, or predictive means
    for regression, with their ``test_scores`` (:func:`~pyrodps.diagnostics.metrics.predictive_scores`;
    ``test_accuracy`` is NaN for regression, and ``accuracy_trace`` records the RMSE instead).
    ``weight_mean`` is the selection score of every training point (the mean of its weights over
    the steps it was in a batch, 0 if it never was), ``weight_std`` their sample standard
    deviation, ``weight_visits`` the number of such steps."""

    test_probs: np.ndarray
    test_accuracy: float
    wall_seconds: float
    accuracy_trace: list[tuple[int, float]]
    weight_mean: np.ndarray
    weight_std: np.ndarray
    weight_visits: np.ndarray
    config: dict
    test_scores: dict[str, float] = field(default_factory=dict)


class BLOBatch(NamedTuple):
    """A train batch ``(x, y)`` and the meta batch ``(x_meta, y_meta)`` it is weighted against."""

    x: torch.Tensor
    y: torch.Tensor
    x_meta: torch.Tensor
    y_meta: torch.Tensor


def network_params(net: nn.Module) -> Params:
    """The trained parameters of ``net`` (``requires_grad``; a frozen one, as in a LoRA model, keeps its
    value from the module) as a dictionary of detached tensors (the point at which the ``torch.func``
    transforms differentiate; they share storage with the module)."""
    return {name: p.detach() for name, p in net.named_parameters() if p.requires_grad}


def example_nll(likelihood: Likelihood | None, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``likelihood.nll(output, y)``; the cross-entropy when ``likelihood`` is None (the default of
    the step functions, for integer labels)."""
    if likelihood is None:
        return F.cross_entropy(output, y, reduction="none")
    return likelihood.nll(output, y)


def per_example_losses(
    net: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, likelihood: Likelihood | None = None
) -> torch.Tensor:
    """``l_i(θ) = -log p(y_i | f_θ(x_i))`` for every row (:func:`example_nll`), with ``θ = params``
    (buffers, if any, are the module's own)."""
    return example_nll(likelihood, functional_call(net, params, (x,)), y)


# step(net, optimizer, x, y, x_meta, y_meta) -> the per-example weights of the batch to record
BLOStep = Callable[
    [nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    torch.Tensor,
]


def train_blo(
    problem: SelectionProblem,
    config: BLOConfig,
    step: BLOStep,
    *,
    net: nn.Module,
    seed: int,
    progress: bool,
    eval_every: int,
    desc: str,
    likelihood: Likelihood | None = None,
) -> BLOFit:
    """Run ``config.steps`` steps of ``step`` on reproducible batches and summarise.

    ``config`` must be resolved. Train batches come from ``IndexStream(N, B)`` with the generator
    ``make_generator(seed, 10_000)`` (epoch-wise reshuffling, as :func:`~pyrodps.baselines.fit_sgd`),
    meta batches from ``IndexStream(M, B_m)`` with ``make_generator(seed, 10_001)``. ``step``
    performs the real optimizer step and returns the weights it gave the batch; they are
    accumulated per training point. The targets are ``likelihood``'s (default:
    :func:`~pyrodps.models.problem.default_likelihood`); the test score (accuracy, or RMSE for
    regression) is recorded every ``eval_every`` steps.
    """
    likelihood = default_likelihood(problem) if likelihood is None else likelihood
    x = torch.as_tensor(problem.x_train, dtype=input_dtype(problem))
    y = target_tensor(likelihood, problem.y_train, "y_train")
    x_meta = torch.as_tensor(problem.x_meta, dtype=input_dtype(problem))
    y_meta = target_tensor(likelihood, problem.y_meta, "y_meta")
    optimizer = momentum_sgd(net, config)
    train_stream = IndexStream(x.shape[0], config.batch_size, make_generator(seed, 10_000))
    meta_stream = IndexStream(x_meta.shape[0], config.meta_batch_size, make_generator(seed, 10_001))
    stats = OnlineWeightStats(x.shape[0])

    def one_step() -> None:
        idx, idx_meta = train_stream.next(), meta_stream.next()
        weights = step(net, optimizer, x[idx], y[idx], x_meta[idx_meta], y_meta[idx_meta])
        stats.update(idx, weights.detach())

    run = train_steps(net, problem, likelihood, one_step, steps=config.steps, progress=progress,
                      eval_every=eval_every, desc=desc)
    return BLOFit(
        test_probs=run.test_pred,
        test_accuracy=run.test_accuracy,
        wall_seconds=run.wall_seconds,
        accuracy_trace=run.trace,
        weight_mean=stats.mean.numpy(),
        weight_std=stats.variance.sqrt().numpy(),
        weight_visits=stats.count.numpy().astype(np.int64),
        config=config.to_dict(),
        test_scores=run.test_scores,
    )


ConfigT = TypeVar("ConfigT", bound=BLOConfig)


def fit_blo(
    problem: SelectionProblem,
    config: ConfigT,
    make_step: Callable[[ConfigT, Likelihood, int], BLOStep],
    *,
    seed: int,
    net: nn.Module | None,
    likelihood: Likelihood | None,
    progress: bool,
    eval_every: int,
    desc: str,
) -> BLOFit:
    """The body of ``fit_l2rw`` and ``fit_mwn``: validate ``config`` and ``eval_every`` (before any
    work), resolve ``config`` for ``problem``, fill in the likelihood
    (:func:`~pyrodps.models.problem.default_likelihood`) and the network (the other baselines'
    default network from ``seed``, ``likelihood.output_dim`` outputs), build the method's step with
    ``make_step(resolved config, likelihood, seed)`` and run :func:`train_blo`."""
    config.validate()
    check_positive_int("eval_every", eval_every)
    config = config.resolved(problem)
    likelihood = default_likelihood(problem) if likelihood is None else likelihood
    if net is None:
        out_features = likelihood.output_dim(target_tensor(likelihood, problem.y_train, "y_train"))
        net = default_network(problem, config.hidden, seed, out_features)
    step = make_step(config, likelihood, seed)
    return train_blo(problem, config, step, net=net, seed=seed, progress=progress,
                     eval_every=eval_every, desc=desc, likelihood=likelihood)
