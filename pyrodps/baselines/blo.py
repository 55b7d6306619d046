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

This module holds the settings both share (:class:`BLOConfig`), the result (:class:`BLOFit`), the
per-example loss of a network at a parameter dictionary (:func:`per_example_losses`, through
``torch.func.functional_call``), and the training loop (:func:`train_blo`): reproducible train and
meta batches, the test-accuracy trace, and the selection score of every training point, the mean
of its weights over the steps in which it was in a batch (float64 accumulators).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from tqdm.auto import tqdm

from pyrodps.baselines.sgd import SGDConfig
from pyrodps.diagnostics.metrics import accuracy
from pyrodps.errors import ValidationError, check_positive_int
from pyrodps.models.problem import SelectionProblem
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
            hidden=tuple(self.hidden),
            batch_size=min(self.batch_size, problem.num_train),
            meta_batch_size=min(self.meta_batch_size, int(problem.x_meta.shape[0])),
        )


@dataclass
class BLOFit:
    """What a BLO baseline produced. ``weight_mean`` is the selection score of every training point
    (the mean of its weights over the steps it was in a batch, 0 if it never was), ``weight_std``
    their sample standard deviation, ``weight_visits`` the number of such steps."""

    test_probs: np.ndarray
    test_accuracy: float
    wall_seconds: float
    accuracy_trace: list[tuple[int, float]]
    weight_mean: np.ndarray
    weight_std: np.ndarray
    weight_visits: np.ndarray
    config: dict


def network_params(net: nn.Module) -> Params:
    """The parameters of ``net`` as a dictionary of detached tensors (the point at which the
    ``torch.func`` transforms differentiate; they share storage with the module)."""
    return {name: p.detach() for name, p in net.named_parameters()}


def per_example_losses(
    net: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """``l_i(θ) = -log softmax(f_θ(x_i))[y_i]`` for every row, with ``θ = params`` (buffers, if
    any, are the module's own)."""
    return F.cross_entropy(functional_call(net, params, (x,)), y, reduction="none")


def sgd_step(net: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One real optimizer step of ``net`` on ``loss``."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


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
) -> BLOFit:
    """Run ``config.steps`` steps of ``step`` on reproducible batches and summarise.

    ``config`` must be resolved. Train batches come from ``IndexStream(N, B)`` with the generator
    ``make_generator(seed, 10_000)`` (epoch-wise reshuffling, as :func:`~pyrodps.baselines.fit_sgd`),
    meta batches from ``IndexStream(M, B_m)`` with ``make_generator(seed, 10_001)``. ``step``
    performs the real optimizer step and returns the weights it gave the batch; they are
    accumulated per training point. The test accuracy is recorded every ``eval_every`` steps.
    """
    x = torch.as_tensor(problem.x_train, dtype=torch.float32)
    y = torch.as_tensor(problem.y_train, dtype=torch.long)
    x_meta = torch.as_tensor(problem.x_meta, dtype=torch.float32)
    y_meta = torch.as_tensor(problem.y_meta, dtype=torch.long)
    x_test = torch.as_tensor(problem.x_test, dtype=torch.float32)
    optimizer = torch.optim.SGD(
        net.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    train_stream = IndexStream(x.shape[0], config.batch_size, make_generator(seed, 10_000))
    meta_stream = IndexStream(x_meta.shape[0], config.meta_batch_size, make_generator(seed, 10_001))
    stats = OnlineWeightStats(x.shape[0])
    trace: list[tuple[int, float]] = []
    start = time.perf_counter()
    bar = tqdm(range(config.steps), disable=not progress, desc=desc, unit="step", mininterval=0.5)
    for t in bar:
        idx, idx_meta = train_stream.next(), meta_stream.next()
        weights = step(net, optimizer, x[idx], y[idx], x_meta[idx_meta], y_meta[idx_meta])
        stats.update(idx, weights.detach())
        if (t + 1) % eval_every == 0:
            with torch.no_grad():
                trace.append((t + 1, accuracy(net(x_test).numpy(), problem.y_test)))
    wall = time.perf_counter() - start
    with torch.no_grad():
        probs = torch.softmax(net(x_test), -1).numpy()
    return BLOFit(
        test_probs=probs,
        test_accuracy=accuracy(probs, problem.y_test),
        wall_seconds=wall,
        accuracy_trace=trace,
        weight_mean=stats.mean.numpy(),
        weight_std=stats.variance.sqrt().numpy(),
        weight_visits=stats.count.numpy().astype(np.int64),
        config=config.to_dict(),
    )
