"""The Pyro program is the specification: the fast path must give the same log joint and gradients."""

import itertools

import pytest
import torch
from torch import nn

from pyrodps.models import (
    BADSModel,
    Batch,
    BetaWeight,
    Categorical,
    Gaussian,
    IsotropicGaussian,
    SelectionData,
    TruncatedGaussianWeight,
    UniformWeight,
)

PRIORS = [UniformWeight(), BetaWeight(2.0, 0.5), TruncatedGaussianWeight(0.3, 0.2)]


def classification_data(n=20, m=6, d=5, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SelectionData(
        torch.randn(n, d, generator=g), torch.randint(0, c, (n,), generator=g),
        torch.randn(m, d, generator=g), torch.randint(0, c, (m,), generator=g),
    )


def regression_data(n=20, m=6, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SelectionData(torch.randn(n, d, generator=g), torch.randn(n, generator=g),
                         torch.randn(m, d, generator=g), torch.randn(m, generator=g))


def make_model(likelihood, out, prior, n=20, m=6, joint_forward=True):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, out))
    return BADSModel(net, likelihood, n, m, weight_prior=prior, rho_theta=3.0, rho_meta=2.0,
                     theta_prior=IsotropicGaussian(0.7), joint_forward=joint_forward)


def both_paths(model, data, theta, u, it, im):
    batch = Batch.gather(data, it, im)
    th1, ub1 = theta.clone().requires_grad_(), u[it].clone().requires_grad_()
    ref = model.reference_log_joint(th1, ub1, batch)
    g_ref = torch.autograd.grad(ref, (th1, ub1))
    th2, ub2 = theta.clone().requires_grad_(), u[it].clone().requires_grad_()
    fast = model.log_joint(th2, ub2, batch).value
    g_fast = torch.autograd.grad(fast, (th2, ub2))
    return ref, fast, g_ref, g_fast


@pytest.mark.parametrize("prior", PRIORS, ids=repr)
@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
@pytest.mark.parametrize("joint_forward", [True, False])
def test_reference_and_fast_paths_agree(prior, kind, joint_forward):
    if kind == "categorical":
        model, data = make_model(Categorical(3), 3, prior, joint_forward=joint_forward), classification_data()
    else:
        model, data = make_model(Gaussian(0.5), 1, prior, joint_forward=joint_forward), regression_data()
    g = torch.Generator().manual_seed(7)
    for trial in range(5):  # random states and random minibatches
        theta = model.initial_theta() + 0.5 * torch.randn(model.layout.size, generator=g)
        u = 2.0 * torch.randn(20, generator=g)
        it = torch.randperm(20, generator=g)[: 3 + trial]
        im = torch.randperm(6, generator=g)[: 2 + trial % 3]
        ref, fast, g_ref, g_fast = both_paths(model, data, theta, u, it, im)
        torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(g_fast[0], g_ref[0], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(g_fast[1], g_ref[1], rtol=1e-4, atol=1e-5)


def test_minibatch_log_joint_is_unbiased():
    """The average of the N/B, M/B_m scaled minibatch log joint over *every* pair of subsets equals the
    full-data log joint: exact enumeration, no sampling error."""
    n, m = 8, 4
    model, data = make_model(Categorical(3), 3, BetaWeight(1.5, 2.0), n=n, m=m), classification_data(n, m)
    theta = model.initial_theta().double()
    model.net.double()
    data = SelectionData(data.x_train.double(), data.y_train, data.x_meta.double(), data.y_meta)
    u = torch.linspace(-2, 2, n, dtype=torch.float64)
    full = model.log_joint(theta, u, Batch.gather(data, torch.arange(n), torch.arange(m))).value
    total, count = 0.0, 0
    for it in itertools.combinations(range(n), 3):
        for im in itertools.combinations(range(m), 2):
            it_t, im_t = torch.tensor(it), torch.tensor(im)
            total += model.log_joint(theta, u[it_t], Batch.gather(data, it_t, im_t)).value
            count += 1
    torch.testing.assert_close(total / count, full, rtol=1e-10, atol=1e-9)


def test_likelihood_nll_matches_distribution():
    out = torch.randn(9, 4)
    y = torch.randint(0, 4, (9,))
    lik = Categorical(4)
    torch.testing.assert_close(lik.nll(out, y), -lik.distribution(out).log_prob(y))
    lik = Gaussian(0.3)
    out1, yr = torch.randn(9, 1), torch.randn(9)
    torch.testing.assert_close(lik.nll(out1, yr), -lik.distribution(out1).log_prob(yr))


@pytest.mark.parametrize("prior", PRIORS, ids=repr)
def test_weight_prior_density_includes_jacobian(prior):
    """``log p_u(u)`` equals Pyro's pushforward density and integrates to one over u."""
    u = torch.linspace(-6, 6, 101, dtype=torch.float64)
    torch.testing.assert_close(prior.log_prob_u(u).float(), prior.u_distribution().log_prob(u.float()), rtol=1e-4, atol=1e-4)
    grid = torch.linspace(-40, 40, 400_001, dtype=torch.float64)
    mass = torch.trapezoid(prior.log_prob_u(grid).exp(), grid)
    assert abs(mass.item() - 1.0) < 1e-3


def test_theta_prior_closed_form_matches_distribution():
    model = make_model(Categorical(3), 3, UniformWeight())
    prior = model.theta_prior
    theta = torch.randn(model.layout.size)
    torch.testing.assert_close(prior.log_prob(theta, model.layout), prior.distribution(model.layout).log_prob(theta))
    auto = super(IsotropicGaussian, prior).grad_log_prob(theta, model.layout)
    torch.testing.assert_close(prior.grad_log_prob(theta, model.layout), auto)
