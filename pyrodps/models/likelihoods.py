"""Likelihoods ``p(y | x, θ)`` of the main network; ``l_i(θ) = -log p(y_i | x_i, θ)``.

A likelihood turns the network's output into a Pyro distribution over targets (the specification,
used by the Pyro model) and gives the same per-example negative log-likelihood in closed form (the
fast path). A test proves the two agree. Add a likelihood by subclassing :class:`Likelihood`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import pyro.distributions as dist
import torch
import torch.nn.functional as F

from pyrodps.errors import ValidationError, check_positive
from pyrodps.plugins import build


class Likelihood(ABC):
    """Observation model of the main network.

    ``task`` says what the targets are: ``"classification"`` (integer labels; the posterior
    predictive is a class distribution) or ``"regression"`` (float targets; the predictive is
    summarised by its mean). :meth:`predict` is the per-example summary averaged over posterior draws.
    """

    task: ClassVar[str] = "regression"

    @abstractmethod
    def distribution(self, output: torch.Tensor) -> dist.Distribution:
        """``p(y | x, θ)`` for a batch of network outputs; batch shape ``(B,)``."""

    def nll(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example ``l_i = -log p(y_i | x_i, θ)``, shape ``(B,)``."""
        return -self.distribution(output).log_prob(y)

    def saturated_nll(self, y: torch.Tensor) -> torch.Tensor:
        """``l_i^sat = inf_output -log p(y_i | output)``, per example: the loss of the best possible output
        (the saturated model). The weights measure ``l_i - l_i^sat`` (the deviance), which does not
        change when the likelihood gains a constant. Default: 0 (right for a loss whose infimum is 0,
        such as the cross-entropy); a likelihood with a normalising constant overrides it."""
        return torch.zeros(y.shape[0], dtype=torch.get_default_dtype(), device=y.device)

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        """What the posterior predictive averages over draws for one network output: the mean of
        ``p(y | x, θ)`` (shape ``(B,)``) by default; class probabilities ``(B, C)`` for a classifier."""
        return self.distribution(output).mean

    def targets(self, y: object, device: torch.device | str = "cpu") -> torch.Tensor:
        """Targets as the tensor type :meth:`nll` takes: ``long`` labels for classification,
        ``float32`` otherwise."""
        dtype = torch.long if self.task == "classification" else torch.float32
        return torch.as_tensor(y, dtype=dtype, device=device)

    @abstractmethod
    def output_dim(self, y: torch.Tensor) -> int:
        """Width of the network's last layer for targets ``y``."""

    @abstractmethod
    def check_targets(self, y: torch.Tensor, argument: str) -> None:
        """Raise :class:`ValidationError` naming ``argument`` if ``y`` is not a valid target array."""


class Categorical(Likelihood):
    """Classification: ``p(y | x, θ) = softmax(f_θ(x))_y``, ``l_i`` is the cross-entropy."""

    task: ClassVar[str] = "classification"

    def __init__(self, num_classes: int) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValidationError("num_classes", f"must be an integer >= 2, got {num_classes!r}")
        self.num_classes = num_classes

    def distribution(self, output: torch.Tensor) -> dist.Distribution:
        return dist.Categorical(logits=output)

    def nll(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output, y, reduction="none")

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``softmax(f_θ(x))``, shape ``(B, C)``."""
        return torch.softmax(output, -1)

    def output_dim(self, y: torch.Tensor) -> int:
        return self.num_classes

    def check_targets(self, y: torch.Tensor, argument: str) -> None:
        if y.dtype.is_floating_point or y.dtype == torch.bool or y.dtype.is_complex:
            raise ValidationError(argument, f"class labels must be integers, got dtype {y.dtype}")
        if y.ndim != 1:
            raise ValidationError(argument, f"must be one-dimensional, got shape {tuple(y.shape)}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValidationError(
                argument,
                f"labels must lie in [0, {self.num_classes}), got range [{int(y.min())}, {int(y.max())}]",
            )

    def __repr__(self) -> str:
        return f"Categorical(num_classes={self.num_classes})"


class Gaussian(Likelihood):
    """Regression: ``y ~ N(f_θ(x), s^2)``, ``l_i = (y_i - f_θ(x_i))^2 / (2 s^2) + log(s sqrt(2π))``."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = check_positive("noise_scale", scale)
        self._log_norm = math.log(self.scale) + 0.5 * math.log(2 * math.pi)

    def distribution(self, output: torch.Tensor) -> dist.Distribution:
        return dist.Normal(output.squeeze(-1), self.scale)

    def nll(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (output.squeeze(-1) - y).square() * (0.5 / self.scale**2) + self._log_norm

    def saturated_nll(self, y: torch.Tensor) -> torch.Tensor:
        """``log(s sqrt(2π))``, the loss at ``f_θ(x_i) = y_i``."""
        return torch.full((y.shape[0],), self._log_norm, dtype=y.dtype, device=y.device)

    def output_dim(self, y: torch.Tensor) -> int:
        return 1

    def check_targets(self, y: torch.Tensor, argument: str) -> None:
        if not y.dtype.is_floating_point:
            raise ValidationError(argument, f"regression targets must be floating point, got {y.dtype}")
        if y.ndim != 1:
            raise ValidationError(argument, f"must be one-dimensional, got shape {tuple(y.shape)}")
        if not bool(torch.isfinite(y).all()):
            raise ValidationError(argument, "contains NaN or infinite values")

    def __repr__(self) -> str:
        return f"Gaussian(scale={self.scale})"


LIKELIHOODS: dict[str, type[Likelihood]] = {"categorical": Categorical, "gaussian": Gaussian}

from pyrodps.models.sequence import TokenSequence  # it subclasses Likelihood, defined above

LIKELIHOODS["token-sequence"] = TokenSequence


def make_likelihood(spec: str | type[Likelihood], *, num_classes: int | None = None, **kwargs: object) -> Likelihood:
    """Build a likelihood from a name of :data:`LIKELIHOODS`, ``module.path:ClassName`` or
    ``path/to/file.py:ClassName`` (a :class:`Likelihood` subclass) and its options. ``num_classes``
    (from the data) goes only to a constructor that names it. Errors name ``likelihood`` (the spec) or
    ``likelihood_kwargs`` (the options)."""
    injected = {} if num_classes is None else {"num_classes": num_classes}
    return build(spec, kwargs, LIKELIHOODS, Likelihood, "likelihood", **injected)
