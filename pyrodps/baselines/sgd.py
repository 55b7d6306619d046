"""Plain SGD with the BADS network on the training set of a naive baseline (default: ``mixing``,
``D_t ∪ D_m`` unweighted); see :mod:`pyrodps.baselines.naive`."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from pyrodps.diagnostics.metrics import accuracy
from pyrodps.errors import ValidationError, check_positive, check_positive_int
from pyrodps.models.networks import check_hidden_sizes
from pyrodps.models.problem import SelectionProblem
from pyrodps.sgmcmc.kernel import make_generator
from pyrodps.sgmcmc.minibatch import IndexStream


@dataclass
class SGDConfig:
    """Plain SGD with momentum on the mean cross-entropy.

    ``lr=None`` picks by input kind: 0.003 for vectors (the best of {0.0003, 0.001, 0.002, 0.003,
    0.01, 0.03} for the default MLP at 3,000 steps on digits with 40 % label noise, seeds 0-2) and
    0.01 for sequences and images (the best of {0.01, 0.03, 0.1} for the MNIST-1D CNN with 40 % label
    noise, seed 0): a strong baseline, not a strawman.
    """

    steps: int = 3000
    batch_size: int = 128
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    hidden: tuple[int, ...] = (256, 256)  # the BADS default network

    def validate(self) -> None:
        check_positive_int("steps", self.steps)
        check_positive_int("batch_size", self.batch_size)
        if self.lr is not None:
            check_positive("lr", self.lr)
        if not 0.0 <= self.momentum < 1.0:
            raise ValidationError("momentum", f"must lie in [0, 1), got {self.momentum}")
        check_hidden_sizes("hidden", self.hidden)
        if not self.weight_decay >= 0 or self.weight_decay == float("inf"):
            raise ValidationError("weight_decay", f"must be a finite number >= 0, got {self.weight_decay}")

    def resolved(self, problem: SelectionProblem) -> SGDConfig:
        """A copy with ``lr`` filled in for ``problem``'s kind of input."""
        from pyrodps.bads.fit import input_family

        lr = self.lr if self.lr is not None else (0.003 if input_family(problem) == "vector" else 0.01)
        return replace(self, lr=lr)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SGDFit:
    test_probs: np.ndarray
    test_accuracy: float
    wall_seconds: float
    accuracy_trace: list[tuple[int, float]]
    num_train_points: int


def fit_sgd(
    problem: SelectionProblem,
    config: SGDConfig | None = None,
    *,
    seed: int = 0,
    method: str = "mixing",
    keep_fraction: float = 0.5,
    net: nn.Module | None = None,
    progress: bool = True,
    eval_every: int = 100,
) -> SGDFit:
    """Train ``net`` (default: the BADS default network) with SGD on the training set of the naive
    baseline ``method``; the batch is capped at the size of that set. ``accuracy_trace`` holds the
    test accuracy every ``eval_every`` steps."""
    from pyrodps.bads.fit import default_network
    from pyrodps.baselines.naive import naive_training_set

    config = (config or SGDConfig())
    config.validate()
    config = config.resolved(problem)
    check_positive_int("eval_every", eval_every)
    rng = np.random.default_rng(seed + 7919)
    xs, ys = naive_training_set(problem, method, rng, keep_fraction)
    x = torch.as_tensor(xs, dtype=torch.float32)
    y = torch.as_tensor(ys, dtype=torch.long)
    x_test = torch.as_tensor(problem.x_test, dtype=torch.float32)
    net = net if net is not None else default_network(problem, config.hidden, seed)
    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    stream = IndexStream(x.shape[0], min(config.batch_size, x.shape[0]), make_generator(seed, 10_000))
    trace: list[tuple[int, float]] = []
    start = time.perf_counter()
    for t in tqdm(range(config.steps), disable=not progress, desc=method, unit="step", mininterval=0.5):
        idx = stream.next()
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (t + 1) % eval_every == 0:
            with torch.no_grad():
                trace.append((t + 1, accuracy(net(x_test).numpy(), problem.y_test)))
    wall = time.perf_counter() - start
    with torch.no_grad():
        probs = torch.softmax(net(x_test), -1).numpy()
    return SGDFit(probs, accuracy(probs, problem.y_test), wall, trace, int(x.shape[0]))
