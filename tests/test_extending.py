"""A researcher's new prior or likelihood, in the few lines the README shows, works with the sampler."""

import pyro.distributions as dist
import torch
from torch import nn

from pyrodps.bads import BADSKernel
from pyrodps.models import BADSModel, Batch, Likelihood, MinibatchStream, SelectionData, WeightPrior
from pyrodps.models.gradients import AutogradGradient, FusedGradient
from pyrodps.run import sample


class KumaraswamyWeight(WeightPrior):
    """p(w) = Kumaraswamy(a, b): only ``distribution`` is given."""

    def __init__(self, a=2.0, b=2.0):
        self.a, self.b = a, b

    def distribution(self):
        return dist.Kumaraswamy(self.a, self.b)


class StudentT(Likelihood):
    """Robust regression: y ~ StudentT(df, f(x), scale); only ``distribution`` is given."""

    def __init__(self, df=4.0, scale=1.0):
        self.df, self.scale = df, scale

    def distribution(self, output):
        return dist.StudentT(self.df, output.squeeze(-1), self.scale)

    def output_dim(self, y):
        return 1

    def check_targets(self, y, argument):
        pass


def test_custom_prior_and_likelihood_match_reference_and_sample():
    g = torch.Generator().manual_seed(0)
    n, m = 30, 8
    data = SelectionData(torch.randn(n, 3, generator=g), torch.randn(n, generator=g),
                         torch.randn(m, 3, generator=g), torch.randn(m, generator=g))
    torch.manual_seed(0)
    model = BADSModel(nn.Linear(3, 1), StudentT(), n, m, weight_prior=KumaraswamyWeight(), rho_theta=2.0)
    theta = model.initial_theta()
    u = torch.randn(n, generator=g)
    it, im = torch.arange(0, 30, 3), torch.arange(4)
    batch = Batch.gather(data, it, im)
    a = FusedGradient(model)(theta, u[it], batch)
    b = AutogradGradient(model, "reference")(theta, u[it], batch)
    torch.testing.assert_close(a.energy, b.energy, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(a.grad_theta, b.grad_theta, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a.grad_u, b.grad_u, rtol=1e-4, atol=1e-5)
    kernel = BADSKernel(model, step_size=1e-3, weight_step_size=0.2)
    res = sample(kernel, lambda gen: MinibatchStream(data, 10, None, gen), num_steps=100, burn_in=20,
                 seed=0, num_points=n, progress=False)
    mean, _ = res.weight_mean_std()
    assert torch.isfinite(mean).all() and ((mean > 0) & (mean < 1)).all()
