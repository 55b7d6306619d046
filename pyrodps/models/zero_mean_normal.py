"""``N(0, diag(s²))`` over a flat vector as a Pyro distribution with a closed-form density.

``dist.Normal(0, s).expand([P]).to_event(1)`` evaluates ``log p`` in about nine passes over ``x`` (the
scale's square and log per coordinate, the difference, its square, ...) and as many backwards; for a
network's ``P = 10^5`` parameters that is a sizeable part of a step. :class:`ZeroMeanNormal` is the
same distribution with ``log p`` in one pass (tests check that the two agree in value and gradient).
"""

from __future__ import annotations

import math
from typing import ClassVar

import pyro.distributions as dist
import torch
from torch.distributions import constraints


class ZeroMeanNormal(dist.TorchDistribution):
    """``x ~ N(0, diag(s²))`` with event shape ``(size,)``; ``s`` a float or a ``(size,)`` tensor:

        log p(x) = -½ Σ_k x_k² / s_k² - Σ_k log s_k - (size / 2) log 2π
    """

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, scale: float | torch.Tensor, size: int, validate_args: bool | None = None) -> None:
        self.size = int(size)
        half_log_2pi = 0.5 * math.log(2 * math.pi)
        if isinstance(scale, torch.Tensor):
            if scale.shape != (self.size,):
                raise ValueError(f"scale has shape {tuple(scale.shape)}, expected ({self.size},)")
            self.scale = scale
            self.precision: float | torch.Tensor = scale.pow(-2)
            self.log_normaliser = float(scale.double().log().sum()) + self.size * half_log_2pi
        else:
            self.scale = float(scale)
            self.precision = self.scale ** -2
            self.log_normaliser = self.size * (math.log(self.scale) + half_log_2pi)
        super().__init__(batch_shape=torch.Size(), event_shape=torch.Size([self.size]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return dist.ExpandedDistribution(self, batch_shape)

    @property
    def mean(self) -> torch.Tensor:
        return torch.zeros(self.size)

    @property
    def variance(self) -> torch.Tensor:
        return torch.ones(self.size) / self.precision if isinstance(self.precision, float) else 1 / self.precision

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        if isinstance(self.precision, torch.Tensor):
            return (value.square() * self.precision.to(value.dtype)).sum(-1) * -0.5 - self.log_normaliser
        return value.square().sum(-1) * (-0.5 * self.precision) - self.log_normaliser

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008 (torch's signature)
        eps = torch.randn(self._extended_shape(sample_shape))
        return eps * (self.scale.to(eps.dtype) if isinstance(self.scale, torch.Tensor) else self.scale)
