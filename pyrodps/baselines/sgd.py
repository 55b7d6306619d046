"""Plain SGD with the BADS network on the training set of a naive baseline (default: ``mixing``,
``D_t ∪ D_m`` unweighted); see :mod:`pyrodps.baselines.naive`.

Also the pieces every baseline trains with: the momentum-SGD optimizer (:func:`momentum_sgd`), one
real step (:func:`sgd_step`), checked target tensors (:func:`target_tensor`) and the training loop
with its test trace and final predictions (:func:`train_steps`), which the bi-level baselines of
:mod:`pyrodps.baselines.blo` share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pyrodps.diagnostics.metrics import predictive_scores, trace_score
from pyrodps.errors import ValidationError, check_positive, check_positive_int
from pyrodps.models.likelihoods import Likelihood
from pyrodps.models.networks import (
    check_hidden_sizes,
    default_hidden,
    default_network,
    input_family,
)
from pyrodps.models.problem import SelectionProblem, default_likelihood
from pyrodps.models.sequence_problem import SEQUENCE_TASK, input_dtype, sequence_log_prob
from pyrodps.sgmcmc.kernel import make_generator
from pyrodps.sgmcmc.minibatch import IndexStream


@dataclass
class SGDConfig:
    """Plain SGD with momentum on the mean negative log-likelihood of the problem's likelihood (the
    cross-entropy for classification, the scaled squared error for a Gaussian regression).

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
    hidden: tuple[int, ...] | None = None  # the BADS default network (models.networks.default_hidden)

    def validate(self) -> None:
        check_positive_int("steps", self.steps)
        check_positive_int("batch_size", self.batch_size)
        if self.lr is not None:
            check_positive("lr", self.lr)
        if not 0.0 <= self.momentum < 1.0:
            raise ValidationError("momentum", f"must lie in [0, 1), got {self.momentum}")
        if self.hidden is not None:
            check_hidden_sizes("hidden", self.hidden)
        if not self.weight_decay >= 0 or self.weight_decay == float("inf"):
            raise ValidationError("weight_decay", f"must be a finite number >= 0, got {self.weight_decay}")

    def resolved(self, problem: SelectionProblem) -> SGDConfig:
        """A copy with ``lr`` filled in for ``problem``'s kind of input and ``hidden`` for its kind and
        size (:func:`~pyrodps.models.networks.default_hidden`)."""
        family = input_family(problem)
        lr = self.lr if self.lr is not None else (0.003 if family == "vector" else 0.01)
        hidden = tuple(self.hidden) if self.hidden is not None else default_hidden(
            family, problem.num_train, problem.num_features, problem.num_classes)
        return replace(self, lr=lr, hidden=hidden)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SGDFit:
    """What :func:`fit_sgd` produced. ``test_probs``: class probabilities ``(n_test, C)``, or
    predictive means ``(n_test,)`` for regression; ``test_scores``: their
    :func:`~pyrodps.diagnostics.metrics.predictive_scores`; ``test_accuracy``: the test accuracy
    (NaN for regression); ``accuracy_trace``: ``(step, test accuracy or, for regression, RMSE)``."""

    test_probs: np.ndarray
    test_accuracy: float
    wall_seconds: float
    accuracy_trace: list[tuple[int, float]]
    num_train_points: int
    test_scores: dict[str, float] = field(default_factory=dict)
    example_weights: np.ndarray | None = None  # class-balanced: the loss weight of every example trained on


@dataclass
class TrainingRun:
    """What :func:`train_steps` measured: the test predictions after the last step
    (``likelihood.predict``), their scores, the wall time of the steps and the trace."""

    test_pred: np.ndarray
    test_scores: dict[str, float]
    wall_seconds: float
    trace: list[tuple[int, float]]

    @property
    def test_accuracy(self) -> float:
        return self.test_scores.get("test_accuracy", float("nan"))


def momentum_sgd(net: nn.Module, config: SGDConfig) -> torch.optim.SGD:
    """The optimizer of every baseline's real step: SGD with ``config``'s lr, momentum and weight decay."""
    return torch.optim.SGD(
        net.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def sgd_step(net: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One real optimizer step of ``net`` on ``loss``."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def target_tensor(likelihood: Likelihood, y: np.ndarray, argument: str) -> torch.Tensor:
    """``y`` as the tensor ``likelihood.nll`` takes, after :meth:`~Likelihood.check_targets` has
    raised a :class:`ValidationError` naming ``argument`` if ``y`` does not fit the likelihood."""
    likelihood.check_targets(torch.as_tensor(y), argument)
    return likelihood.targets(y)


def predict_test_set(net: nn.Module, likelihood: Likelihood, x_test: torch.Tensor, y_test: np.ndarray) -> torch.Tensor:
    """``likelihood.predict`` of the test inputs (class probabilities, predictive means); for a sequence
    likelihood the log-likelihood of every test sequence, ``log p(y_n | x_n, θ)``, shape ``(n_test,)``
    (:func:`~pyrodps.models.sequence_problem.sequence_log_prob`)."""
    with torch.no_grad():
        out = net(x_test)
        if likelihood.task == SEQUENCE_TASK:
            return sequence_log_prob(out, torch.as_tensor(y_test, dtype=torch.long), likelihood.ignore_index)
        return likelihood.predict(out)


def _trace_point(net: nn.Module, likelihood: Likelihood, x_test: torch.Tensor, y_test: np.ndarray) -> float:
    if likelihood.task == "classification":  # scored on the logits (same arg-max as the probabilities)
        with torch.no_grad():
            return trace_score(net(x_test).numpy(), y_test, likelihood.task)
    return trace_score(predict_test_set(net, likelihood, x_test, y_test).numpy(), y_test, likelihood.task)


def train_steps(
    net: nn.Module,
    problem: SelectionProblem,
    likelihood: Likelihood,
    step: Callable[[], None],
    *,
    steps: int,
    progress: bool,
    eval_every: int,
    desc: str,
) -> TrainingRun:
    """Call ``step`` (one optimisation step of ``net``) ``steps`` times with a progress bar, record
    the test score (:func:`~pyrodps.diagnostics.metrics.trace_score`: accuracy, or RMSE for
    regression) every ``eval_every`` steps, then predict the test set with ``likelihood.predict``."""
    x_test = torch.as_tensor(problem.x_test, dtype=input_dtype(problem))
    trace: list[tuple[int, float]] = []
    start = time.perf_counter()
    for t in tqdm(range(steps), disable=not progress, desc=desc, unit="step", mininterval=0.5):
        step()
        if (t + 1) % eval_every == 0:
            trace.append((t + 1, _trace_point(net, likelihood, x_test, problem.y_test)))
    wall = time.perf_counter() - start
    pred = predict_test_set(net, likelihood, x_test, problem.y_test).numpy()
    return TrainingRun(pred, predictive_scores(pred, problem.y_test, likelihood.task), wall, trace)


def fit_sgd(
    problem: SelectionProblem,
    config: SGDConfig | None = None,
    *,
    seed: int = 0,
    method: str = "mixing",
    keep_fraction: float = 0.5,
    net: nn.Module | None = None,
    likelihood: Likelihood | None = None,
    progress: bool = True,
    eval_every: int = 100,
) -> SGDFit:
    """Train ``net`` (default: the BADS default network, output width ``likelihood.output_dim``)
    with SGD on the mean ``likelihood.nll`` (default likelihood:
    :func:`~pyrodps.models.problem.default_likelihood`) over the training set of the naive baseline
    ``method``; the batch is capped at the size of that set. ``class-balanced`` weights each
    example's NLL by the inverse frequency of its class (:func:`~pyrodps.baselines.naive.class_balanced_weights`). ``accuracy_trace`` holds the test
    accuracy (regression: RMSE) every ``eval_every`` steps."""
    from pyrodps.baselines.naive import class_balanced_weights, naive_training_set

    config = (config or SGDConfig())
    config.validate()
    config = config.resolved(problem)
    check_positive_int("eval_every", eval_every)
    likelihood = default_likelihood(problem) if likelihood is None else likelihood
    if method == "class-balanced" and likelihood.task != "classification":
        raise ValidationError("method", "class-balanced weights need class labels; this is a regression problem")
    rng = np.random.default_rng(seed + 7919)
    xs, ys = naive_training_set(problem, method, rng, keep_fraction)
    x = torch.as_tensor(xs, dtype=input_dtype(problem))
    y = target_tensor(likelihood, ys, "y_train")
    net = net if net is not None else default_network(problem, config.hidden, seed, likelihood.output_dim(y))
    opt = momentum_sgd(net, config)
    stream = IndexStream(x.shape[0], min(config.batch_size, x.shape[0]), make_generator(seed, 10_000))
    weights = class_balanced_weights(ys, problem.num_classes) if method == "class-balanced" else None
    w = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)

    def step() -> None:
        idx = stream.next()
        loss = likelihood.nll(net(x[idx]), y[idx])
        sgd_step(net, opt, loss.mean() if w is None else (w[idx] * loss).mean())

    run = train_steps(net, problem, likelihood, step, steps=config.steps, progress=progress,
                      eval_every=eval_every, desc=method)
    return SGDFit(run.test_pred, run.test_accuracy, run.wall_seconds, run.trace, int(x.shape[0]),
                  run.test_scores, weights)
