"""A network prior in a file of its own: p_0(θ) = Laplace(0, b) per parameter (a sparsity prior).
Only ``distribution`` is given; ``log_prob`` and ``grad_log_prob`` fall back to the distribution and
autograd."""

import pyro.distributions as dist

from pyrodps.models.priors import ThetaPrior


class Laplace(ThetaPrior):
    def __init__(self, scale: float = 0.1) -> None:
        self.scale = float(scale)

    def distribution(self, layout):
        return dist.Laplace(0.0, self.scale).expand([layout.size]).to_event(1)
