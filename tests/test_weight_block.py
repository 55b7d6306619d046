"""With θ held fixed, the w block step samples the analytic conditional ``p(w_i | θ)^(1/T)``.

``p(w_i | θ) ∝ p(w_i) exp(-ρ_θ w_i l_i(θ))`` on (0, 1). The sampler moves ``u = logit(w)``, and a
temperature tempers the density of ``u`` (Jacobian included), so in w the target is
``(p(w) w (1-w) exp(-ρ_θ w l))^(1/T) / (w (1-w))``. Every training point has its own loss, so
each final weight is mapped through the CDF of its own conditional (probability integral
transform); the transformed values must be Uniform(0, 1) (Kolmogorov-Smirnov test).
"""

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from pyrodps.bads import BADSKernel
from pyrodps.models import (
    BADSModel,
    BetaWeight,
    Categorical,
    MinibatchStream,
    SelectionData,
    UniformWeight,
)
from pyrodps.run import sample


def conditional_cdf(prior, loss: np.ndarray, rho: float, temperature: float, w: np.ndarray) -> np.ndarray:
    """``loss`` is ``l_i(θ)`` (ignore) or ``l_i(θ) - l_i(θ')`` (companion)."""
    """CDF at ``w`` of the conditional density of the tempered u-chain, by quadrature on a fine grid."""
    grid = np.linspace(1e-7, 1 - 1e-7, 20_001)
    log_pw = prior.distribution().log_prob(torch.as_tensor(grid, dtype=torch.float64)).numpy()
    log_jac = np.log(grid * (1 - grid))
    logd = (log_pw[None, :] + log_jac - rho * loss[:, None] * grid[None, :]) / temperature - log_jac
    dens = np.exp(logd - logd.max(1, keepdims=True))
    cdf = np.concatenate([np.zeros((len(loss), 1)), np.cumsum((dens[:, 1:] + dens[:, :-1]) / 2 * np.diff(grid), 1)], 1)
    cdf /= cdf[:, -1:]
    return np.array([np.interp(wi, grid, ci) for wi, ci in zip(w, cdf)])


def linear_problem(n: int, seed: int):
    """Random 3-class data (n train, 10 meta points), the generator that drew it, and a linear net."""
    g = torch.Generator().manual_seed(seed)
    data = SelectionData(torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g),
                         torch.randn(10, 4, generator=g), torch.randint(0, 3, (10,), generator=g))
    torch.manual_seed(0)
    return data, g, nn.Linear(4, 3)


@pytest.mark.parametrize(
    "prior,temperature", [(UniformWeight(), 1.0), (BetaWeight(2.0, 1.5), 0.5)], ids=["uniform-T1", "beta-T0.5"]
)
def test_weight_block_reproduces_conditional(prior, temperature):
    n, rho = 2000, 2.0
    data, _, net = linear_problem(n, seed=0)
    model = BADSModel(net, Categorical(3), n, 10, weight_prior=prior, rho_theta=rho)
    kernel = BADSKernel(model, step_size=1e-3, weight_step_size=0.05, temperature=temperature, update_theta=False)
    theta0 = model.initial_theta().clone()
    steps = 6000  # batch n/2: 3000 visits per point, ~20 relaxation times of the slowest u-chain
    res = sample(kernel, lambda gen: MinibatchStream(data, n // 2, None, gen), num_steps=steps, seed=5,
                 track=(), progress=False)
    state = res.states[0]
    assert torch.equal(state.theta, theta0)  # θ held fixed
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(net(data.x_train), data.y_train, reduction="none").double().numpy()
    w = torch.sigmoid(state.u).double().numpy()
    pit = conditional_cdf(prior, loss, rho, temperature, w)
    result = stats.kstest(pit, "uniform")
    assert result.pvalue > 1e-3, result
    # and the test has power: the same weights against the conditional at ρ = 2ρ are rejected
    wrong = stats.kstest(conditional_cdf(prior, loss, 2 * rho, temperature, w), "uniform")
    assert wrong.pvalue < 1e-6


def test_companion_weight_block_reproduces_conditional():
    """With θ and θ' held fixed the companion w step targets ``p(w) exp(-ρ w (l_i(θ) - l_i(θ')))``:
    points the train-only model θ' explains worse than θ gain weight."""
    n, rho = 2000, 2.0
    data, g, net = linear_problem(n, seed=1)
    model = BADSModel(net, Categorical(3), n, 10, rho_theta=rho, log_z="companion")
    theta0 = model.initial_theta()
    theta_c = theta0 + 0.8 * torch.randn(theta0.shape, generator=g)
    kernel = BADSKernel(model, step_size=1e-3, weight_step_size=0.05, update_theta=False)
    state = kernel.init(5, companion=theta_c)
    stream = MinibatchStream(data, n // 2, None, torch.Generator().manual_seed(2))
    for _ in range(6000):
        state, _ = kernel.step(state, stream.next(), diagnostics=False)
    assert torch.equal(state.theta, theta0) and torch.equal(state.companion, theta_c)

    def losses(theta):
        params = model.layout.unflatten(theta)
        with torch.no_grad():
            out = torch.func.functional_call(net, params, (data.x_train,))
            return torch.nn.functional.cross_entropy(out, data.y_train, reduction="none").double().numpy()

    diff = losses(theta0) - losses(theta_c)
    assert (diff < 0).mean() > 0.2 and (diff > 0).mean() > 0.2  # both directions occur
    w = torch.sigmoid(state.u).double().numpy()
    pit = conditional_cdf(UniformWeight(), diff, rho, 1.0, w)
    assert stats.kstest(pit, "uniform").pvalue > 1e-3
    assert stats.kstest(conditional_cdf(UniformWeight(), losses(theta0), rho, 1.0, w), "uniform").pvalue < 1e-6


@pytest.mark.parametrize(
    "prior,temperature,rho", [(UniformWeight(), 0.1, 40.0), (BetaWeight(2.0, 1.5), 0.5, 2.0)], ids=["uniform-T0.1", "beta-T0.5"]
)
def test_slice_weight_block_is_exact_after_few_visits(prior, temperature, rho):
    """The slice-sampling w block draws from the exact conditional: from the prior draw, 40 visits
    (80 steps at batch n/2) suffice for the PIT to be uniform, where the strong tilt ``ρ_θ l_i / T`` (up to
    ~1,400 here) makes a small Langevin step need hundreds of visits; the conditional at 2ρ is rejected."""
    n = 2000
    data, _, net = linear_problem(n, seed=0)
    model = BADSModel(net, Categorical(3), n, 10, weight_prior=prior, rho_theta=rho)
    kernel = BADSKernel(model, step_size=1e-3, weight_step_size=1.0, temperature=temperature, update_theta=False,
                        weight_update="slice")
    res = sample(kernel, lambda gen: MinibatchStream(data, n // 2, None, gen), num_steps=80, seed=5, track=(),
                 progress=False)
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(net(data.x_train), data.y_train, reduction="none").double().numpy()
    w = torch.sigmoid(res.states[0].u).double().numpy()
    assert stats.kstest(conditional_cdf(prior, loss, rho, temperature, w), "uniform").pvalue > 1e-3
    assert stats.kstest(conditional_cdf(prior, loss, 2 * rho, temperature, w), "uniform").pvalue < 1e-6


def test_slice_companion_weight_block_targets_the_loss_difference():
    n, rho = 2000, 2.0
    data, g, net = linear_problem(n, seed=1)
    model = BADSModel(net, Categorical(3), n, 10, rho_theta=rho, log_z="companion")
    theta0 = model.initial_theta()
    theta_c = theta0 + 0.8 * torch.randn(theta0.shape, generator=g)
    kernel = BADSKernel(model, step_size=1e-3, update_theta=False, weight_update="slice")
    state = kernel.init(5, companion=theta_c)
    stream = MinibatchStream(data, n // 2, None, torch.Generator().manual_seed(2))
    for _ in range(60):
        state, _ = kernel.step(state, stream.next(), diagnostics=False)

    def losses(theta):
        with torch.no_grad():
            out = torch.func.functional_call(net, model.layout.unflatten(theta), (data.x_train,))
            return torch.nn.functional.cross_entropy(out, data.y_train, reduction="none").double().numpy()

    w = torch.sigmoid(state.u).double().numpy()
    diff = losses(theta0) - losses(theta_c)
    assert stats.kstest(conditional_cdf(UniformWeight(), diff, rho, 1.0, w), "uniform").pvalue > 1e-3
    assert stats.kstest(conditional_cdf(UniformWeight(), losses(theta0), rho, 1.0, w), "uniform").pvalue < 1e-6
