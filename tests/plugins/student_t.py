"""A regression likelihood in a file of its own: y ~ StudentT(df, f(x), scale), for heavy-tailed noise."""

import pyro.distributions as dist
import torch

from pyrodps.errors import ValidationError
from pyrodps.models.likelihoods import Likelihood


class StudentT(Likelihood):
    """Robust regression; only ``distribution``, ``output_dim`` and ``check_targets`` are given."""

    def __init__(self, df: float = 4.0, scale: float = 1.0) -> None:
        self.df, self.scale = float(df), float(scale)

    def distribution(self, output: torch.Tensor):
        return dist.StudentT(self.df, output.squeeze(-1), self.scale)

    def output_dim(self, y: torch.Tensor) -> int:
        return 1

    def check_targets(self, y: torch.Tensor, argument: str) -> None:
        if not y.dtype.is_floating_point:
            raise ValidationError(argument, f"regression targets must be floating point, got {y.dtype}")
