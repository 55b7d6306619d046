"""A weight prior as a researcher writes one, in a file of its own: only ``distribution`` is given
(the generic path derives the density of u = logit(w), its gradient and sampling)."""

import pyro.distributions as dist

from pyrodps.models.priors import WeightPrior


class Kumaraswamy(WeightPrior):
    """p(w) = Kumaraswamy(a, b)."""

    def __init__(self, a: float = 2.0, b: float = 2.0) -> None:
        self.a, self.b = float(a), float(b)

    def distribution(self):
        return dist.Kumaraswamy(self.a, self.b)
