"""Network priors (fan-in, calibrated) and the loss reference: the fast paths equal the Pyro trace, and
with ``loss_reference="saturated"`` the weights do not depend on the likelihood's additive constants."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from pyrodps.bads import BADSKernel
from pyrodps.bads.observers import WeightStatistics
from pyrodps.errors import ValidationError
from pyrodps.models import (
    BADSModel,
    Batch,
    Categorical,
    Gaussian,
    MinibatchStream,
    ParamLayout,
    SelectionData,
    UniformWeight,
)
from pyrodps.models.potential import AutogradGradient, FusedGradient
from pyrodps.models.priors import (
    FanInGaussian,
    IsotropicGaussian,
    calibrated_scale,
    make_theta_prior,
)
from pyrodps.run import sample
from tests.test_model import classification_data, regression_data
from tests.test_weight_block import conditional_cdf


def test_fan_in_of_linear_and_conv_layers():
    net = nn.Sequential(nn.Conv1d(2, 4, 5), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    assert FanInGaussian.fan_ins(ParamLayout.from_module(net)) == [10, 10, 8, 8]  # weight, bias, weight, bias
    scales = FanInGaussian(2.0).scales(ParamLayout.from_module(net))
    assert scales.shape == (4 * 2 * 5 + 4 + 3 * 8 + 3,)
    assert math.isclose(scales[0].item(), math.sqrt(2.0 / 10)) and math.isclose(scales[-1].item(), math.sqrt(2.0 / 8))


@pytest.mark.parametrize("prior", [FanInGaussian(1.5), IsotropicGaussian(0.3)], ids=repr)
def test_theta_prior_closed_forms_match_pyro_distribution(prior):
    layout = ParamLayout.from_module(nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)))
    theta = torch.randn(layout.size, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(prior.log_prob(theta, layout), prior.distribution(layout).log_prob(theta))
    t = theta.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(prior.distribution(layout).log_prob(t), t)
    torch.testing.assert_close(prior.grad_log_prob(theta, layout), auto)


def test_calibrated_prior_matches_weight_decay():
    """``ρ_θ Σ l_i + |θ|²/(2s²) = ρ_θ N (mean l + λ|θ|²/2)`` with ``s = 1/sqrt(λ ρ_θ N)``."""
    s = calibrated_scale(5e-4, 80.0, 1000)
    assert math.isclose(1.0 / (2 * s**2), 80.0 * 1000 * 5e-4 / 2)
    prior = make_theta_prior("calibrated", rho_theta=80.0, num_train=1000, weight_decay=5e-4)
    assert isinstance(prior, IsotropicGaussian) and math.isclose(prior.scale, s)
    with pytest.raises(ValidationError) as e:
        make_theta_prior("fan-in", rho_theta=1.0, num_train=1, scale=1.0)
    assert e.value.argument == "theta_prior_kwargs"
    with pytest.raises(ValidationError) as e:
        make_theta_prior("laplace", rho_theta=1.0, num_train=1)
    assert e.value.argument == "theta_prior"


@pytest.mark.parametrize("reference", ["saturated", "none"])
@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_fused_gradient_with_fan_in_prior_and_reference_matches_pyro(reference, kind):
    torch.manual_seed(1)
    out = 3 if kind == "categorical" else 1
    net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, out))
    lik, data = (Categorical(3), classification_data()) if kind == "categorical" else (Gaussian(0.4), regression_data())
    model = BADSModel(net, lik, 20, 6, theta_prior=FanInGaussian(1.3), rho_theta=3.0, rho_meta=2.0,
                      loss_reference=reference)
    fused, ref = FusedGradient(model), AutogradGradient(model, "reference")
    g = torch.Generator().manual_seed(4)
    for trial in range(3):
        theta = model.initial_theta() + 0.5 * torch.randn(model.layout.size, generator=g)
        u = 2.0 * torch.randn(20, generator=g)
        it = torch.randperm(20, generator=g)[: 4 + trial]
        batch = Batch.gather(data, it, torch.arange(2 + trial))
        a, b = fused(theta, u[it], batch), ref(theta, u[it], batch)
        torch.testing.assert_close(a.energy, b.energy, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(a.grad_theta, b.grad_theta, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(a.grad_u, b.grad_u, rtol=1e-4, atol=1e-5)


def regression_problem(noise_scale: float, n: int = 600, seed: int = 0) -> tuple[SelectionData, nn.Linear]:
    """``y = x·β + noise_scale·ε`` with a third of the targets shifted by 6 noise sds (outliers); the
    linear net is the true one. Scaling ``noise_scale`` scales targets and the net alike, so the
    standardised residuals ``(y - f(x)) / s`` are the same numbers at every scale."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n + 10, 3, generator=g)
    beta = torch.tensor([0.5, -1.0, 2.0])
    resid = torch.randn(n + 10, generator=g)
    resid[: n // 3] += 6.0
    y = noise_scale * (x @ beta + resid)
    net = nn.Linear(3, 1)
    with torch.no_grad():
        net.weight.copy_(noise_scale * beta[None, :])
        net.bias.zero_()
    return SelectionData(x[:n], y[:n], x[n:], y[n:]), net


def weights_at_scale(noise_scale: float, reference: str) -> torch.Tensor:
    data, net = regression_problem(noise_scale)
    model = BADSModel(net, Gaussian(noise_scale), data.num_train, data.num_meta, rho_theta=4.0,
                      loss_reference=reference)
    kernel = BADSKernel(model, step_size=1e-3, weight_step_size=0.05, update_theta=False)
    res = sample(kernel, lambda gen: MinibatchStream(data, 200, None, gen), num_steps=600, burn_in=300, seed=3,
                 track=(), progress=False,
                 observers={"weights": WeightStatistics(data.num_train, 300)})
    return res.observers["weights"].mean_std()[0]


def test_weights_are_invariant_to_the_gaussian_noise_scale():
    """The Gaussian's constant ``log(s sqrt(2π))`` is -1.38 at s = 0.1 and +0.56 at s = 0.7. With the
    saturated reference the weights see ``(y - f)²/(2s²)`` only: the same chain at both scales. Without
    it, the clean points' weights move with the constant."""
    small, large = weights_at_scale(0.1, "saturated"), weights_at_scale(0.7, "saturated")
    torch.testing.assert_close(small, large, rtol=0, atol=1e-4)
    clean = torch.arange(600) >= 200
    # E[w | d] = 1/(ρd) - 1/(e^{ρd} - 1): about 0.37 for a clean point (d ~ χ²/2), 0.014 for an outlier (d ~ 18)
    assert small[clean].mean() > 0.3 and small[~clean].mean() < 0.05
    raw_small, raw_large = weights_at_scale(0.1, "none"), weights_at_scale(0.7, "none")
    assert raw_small[clean].mean() - raw_large[clean].mean() > 0.3  # the constant moves every clean weight


def test_weight_block_samples_the_deviance_conditional():
    """θ fixed, Gaussian likelihood: the w chain targets ``p(w) exp(-ρ w (l_i - l_i^sat))``; the
    conditional on the raw loss ``l_i`` (the constant kept) is rejected (power)."""
    n, rho, s = 1000, 2.0, 0.2  # log(s sqrt(2π)) = -0.69: the raw loss would tilt every weight up
    data, net = regression_problem(s, n=n, seed=2)
    model = BADSModel(net, Gaussian(s), n, 10, weight_prior=UniformWeight(), rho_theta=rho)
    kernel = BADSKernel(model, step_size=1e-3, weight_step_size=0.05, update_theta=False)
    res = sample(kernel, lambda gen: MinibatchStream(data, n // 2, None, gen), num_steps=4000, seed=5, track=(),
                 progress=False)
    with torch.no_grad():
        nll = Gaussian(s).nll(net(data.x_train), data.y_train).double().numpy()
    deviance = nll - Gaussian(s).saturated_nll(data.y_train).double().numpy()
    w = torch.sigmoid(res.states[0].u).double().numpy()
    assert stats.kstest(conditional_cdf(UniformWeight(), deviance, rho, 1.0, w), "uniform").pvalue > 1e-3
    assert stats.kstest(conditional_cdf(UniformWeight(), nll, rho, 1.0, w), "uniform").pvalue < 1e-6
    assert np.all(np.isfinite(w))
