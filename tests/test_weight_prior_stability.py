"""The weight prior's density of ``u = logit(w)`` and its gradient stay finite and accurate far into the
tails, in float32, where BADS drives bad points (``u`` of -30 and below).

A user's prior that gives only ``distribution()`` (the README's Kumaraswamy, a Beta) goes through the
generic path; the built-in priors have closed forms. Both are checked against the analytic density,
evaluated at 60 digits with mpmath, and the gradient against finite differences.
"""

import math

import mpmath
import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F

from pyrodps.models.priors import (
    WEIGHT_PRIORS,
    BetaWeight,
    KumaraswamyWeight,
    TruncatedGaussianWeight,
    UniformWeight,
    WeightPrior,
    generic_log_prob_u,
    make_weight_prior,
)

mpmath.mp.dps = 60
GRID = torch.linspace(-80.0, 80.0, 321)  # float32, step 0.5


class UserKumaraswamy(WeightPrior):
    """The README's example: a user's prior that gives only ``distribution()``."""

    def __init__(self, a=2.0, b=2.0):
        self.a, self.b = a, b

    def distribution(self):
        return dist.Kumaraswamy(self.a, self.b)

    def __repr__(self):
        return f"UserKumaraswamy({self.a}, {self.b})"


class UserBeta(WeightPrior):
    """A Beta prior through its Pyro distribution only."""

    def __init__(self, a=1.0, b=1.0):
        self.a, self.b = a, b

    def distribution(self):
        return dist.Beta(self.a, self.b)

    def __repr__(self):
        return f"UserBeta({self.a}, {self.b})"


# ----------------------------------------------------------------------------- analytic reference
def _log_w_terms(u):
    """``log w`` and ``log(1 - w)`` for ``w = sigmoid(u)``, at mpmath precision."""
    u = mpmath.mpf(u)
    return -mpmath.log1p(mpmath.exp(-u)), -mpmath.log1p(mpmath.exp(u))


def reference_log_prob_w(prior, u):
    """``log p_w(sigmoid(u))`` in closed form for the priors under test."""
    log_w, log_1mw = _log_w_terms(u)
    if isinstance(prior, (UserKumaraswamy, KumaraswamyWeight)):
        a, b = mpmath.mpf(prior.a), mpmath.mpf(prior.b)
        # log p(w) = log a + log b + (a-1) log w + (b-1) log(1 - w^a)
        return mpmath.log(a) + mpmath.log(b) + (a - 1) * log_w + (b - 1) * mpmath.log(-mpmath.expm1(a * log_w))
    if isinstance(prior, (UserBeta, BetaWeight)):
        a, b = mpmath.mpf(prior.a), mpmath.mpf(prior.b)
        return (a - 1) * log_w + (b - 1) * log_1mw - (mpmath.loggamma(a) + mpmath.loggamma(b) - mpmath.loggamma(a + b))
    if isinstance(prior, TruncatedGaussianWeight):
        beta, sigma = mpmath.mpf(prior.beta), mpmath.mpf(prior.sigma)
        w = mpmath.exp(log_w)
        mass = mpmath.ncdf((1 - beta) / sigma) - mpmath.ncdf(-beta / sigma)
        return -((w - beta) ** 2) / (2 * sigma**2) - mpmath.log(sigma * mpmath.sqrt(2 * mpmath.pi) * mass)
    if isinstance(prior, UniformWeight):
        return mpmath.mpf(0)
    raise TypeError(prior)


def reference_log_prob_u(prior, u):
    log_w, log_1mw = _log_w_terms(u)
    return reference_log_prob_w(prior, u) + log_w + log_1mw


def reference(prior, grid):
    value = [float(reference_log_prob_u(prior, float(x))) for x in grid]
    grad = [float(mpmath.diff(lambda x: reference_log_prob_u(prior, x), mpmath.mpf(float(x)))) for x in grid]
    return torch.tensor(value, dtype=torch.float64), torch.tensor(grad, dtype=torch.float64)


PRIORS = [
    UserKumaraswamy(2.0, 2.0),
    UserKumaraswamy(0.5, 3.0),
    UserKumaraswamy(5.0, 0.7),
    UserBeta(2.0, 0.5),
    UserBeta(0.7, 1.5),
    UniformWeight(),
    BetaWeight(2.0, 0.5),
    TruncatedGaussianWeight(0.3, 0.2),
    KumaraswamyWeight(2.0, 2.0),
    KumaraswamyWeight(0.5, 3.0),
]
_REFERENCES: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


def cached_reference(prior):
    key = repr(prior)
    if key not in _REFERENCES:
        _REFERENCES[key] = reference(prior, GRID)
    return _REFERENCES[key]


def naive_float32(prior, u):
    """The old generic path: ``distribution().log_prob(sigmoid(u)) + Jacobian`` in u's dtype, autograd."""
    t = u.detach().clone().requires_grad_(True)
    value = prior.distribution().log_prob(torch.sigmoid(t)) + F.logsigmoid(t) + F.logsigmoid(-t)
    return value.detach(), torch.autograd.grad(value.sum(), t)[0]


def all_finite(value, grad):
    return bool(torch.isfinite(value).all()) and bool(torch.isfinite(grad).all())


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("prior", PRIORS, ids=repr)
def test_log_prob_u_is_finite_and_accurate_in_float32(prior):
    """Over u in [-80, 80] in float32: value and gradient finite, float32, and within float32 rounding
    (rtol 1e-5) of the analytic density and its derivative."""
    value, grad = prior.log_prob_u(GRID), prior.grad_log_prob_u(GRID)
    assert value.dtype == torch.float32 and grad.dtype == torch.float32
    assert all_finite(value, grad)
    ref_value, ref_grad = cached_reference(prior)
    torch.testing.assert_close(value.double(), ref_value, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("prior", PRIORS, ids=repr)
def test_log_prob_u_is_accurate_in_float64(prior):
    """A float64 ``u`` gets a float64 answer, within 1e-5 of the analytic one (the generic path's
    power-law tails beyond u = 20 are good to about 3e-6 at u = 80, the float32 closed forms to their
    float32 constants)."""
    u = GRID.double()
    value, grad = prior.log_prob_u(u), prior.grad_log_prob_u(u)
    assert value.dtype == torch.float64 and grad.dtype == torch.float64
    ref_value, ref_grad = cached_reference(prior)
    torch.testing.assert_close(value, ref_value, rtol=1e-7, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("prior", PRIORS, ids=repr)
def test_gradient_matches_finite_differences(prior):
    """``grad_log_prob_u`` is the derivative of ``log_prob_u`` itself (central differences, h = 1e-3,
    float64); near u = ±20 the float64 value carries ~5e-8 of rounding in ``1 - w``, hence the tolerance."""
    u = GRID.double()
    h = 1e-3
    fd = (prior.log_prob_u(u + h) - prior.log_prob_u(u - h)) / (2 * h)
    torch.testing.assert_close(prior.grad_log_prob_u(u), fd, rtol=1e-4, atol=2e-4)


@pytest.mark.parametrize("prior", PRIORS, ids=repr)
def test_autograd_through_log_prob_u_is_finite(prior):
    """The weight network differentiates ``log_prob_u`` by autograd in float32 (``u`` from φ)."""
    u = GRID.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(prior.log_prob_u(u).sum(), u)
    assert g.dtype == torch.float32 and bool(torch.isfinite(g).all())
    torch.testing.assert_close(g, prior.grad_log_prob_u(GRID), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("prior", [UserKumaraswamy(2.0, 2.0), UserBeta(2.0, 0.5)], ids=repr)
def test_far_tails_stay_finite(prior):
    u = torch.tensor([-1e4, -700.0, -200.0, 200.0, 700.0, 1e4])
    value, grad = prior.log_prob_u(u), prior.grad_log_prob_u(u)
    assert all_finite(value, grad)
    a, b = (prior.a, prior.b)
    # log p_u ~ a u as u -> -inf and ~ -b u as u -> +inf (Beta and Kumaraswamy alike)
    torch.testing.assert_close(grad, torch.tensor([a, a, a, -b, -b, -b]), rtol=1e-5, atol=1e-5)


def test_the_check_catches_the_old_naive_path():
    """Power of the finiteness check: the old float32 path is -inf / NaN at u = -30 and u = 30 for the
    README's Kumaraswamy(2, 2), and already -inf at u = -10; the new path is finite at all three."""
    prior = UserKumaraswamy(2.0, 2.0)
    for u0 in (-30.0, -10.0, 30.0):
        u = torch.tensor([u0])
        assert not all_finite(*naive_float32(prior, u)), u0
        assert all_finite(prior.log_prob_u(u), prior.grad_log_prob_u(u)), u0
    assert not all_finite(*naive_float32(prior, GRID))
    # where the naive path is finite and accurate (|u| <= 5), the new path agrees with it
    mid = GRID[GRID.abs() <= 5]
    naive_value, naive_grad = naive_float32(prior, mid)
    torch.testing.assert_close(prior.log_prob_u(mid), naive_value, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(prior.grad_log_prob_u(mid), naive_grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "closed,generic",
    [(KumaraswamyWeight(2.0, 2.0), UserKumaraswamy(2.0, 2.0)), (KumaraswamyWeight(0.5, 3.0), UserKumaraswamy(0.5, 3.0)),
     (BetaWeight(2.0, 0.5), UserBeta(2.0, 0.5)), (TruncatedGaussianWeight(0.3, 0.2), None), (UniformWeight(), None)],
    ids=repr,
)
def test_closed_forms_match_the_generic_path(closed, generic):
    u = torch.linspace(-100.0, 100.0, 2001, dtype=torch.float64)
    d = (generic or closed).distribution()
    torch.testing.assert_close(closed.log_prob_u(u), generic_log_prob_u(d, u), rtol=1e-7, atol=1e-5)
    auto = WeightPrior.grad_log_prob_u(generic, u) if generic else WeightPrior.grad_log_prob_u(_Generic(d), u)
    torch.testing.assert_close(closed.grad_log_prob_u(u), auto, rtol=1e-6, atol=1e-6)


class _Generic(WeightPrior):
    def __init__(self, d):
        self.d = d

    def distribution(self):
        return self.d


def test_kumaraswamy_weight_is_a_named_prior():
    prior = make_weight_prior("kumaraswamy", a=3.0, b=1.5)
    assert isinstance(prior, KumaraswamyWeight) and WEIGHT_PRIORS["kumaraswamy"] is KumaraswamyWeight
    assert (prior.a, prior.b) == (3.0, 1.5)
    grid = torch.linspace(-40, 40, 400_001, dtype=torch.float64)
    assert abs(torch.trapezoid(prior.log_prob_u(grid).exp(), grid).item() - 1.0) < 1e-6
    # the quantile function inverts the CDF 1 - (1 - w^a)^b
    q = torch.linspace(0.001, 0.999, 99, dtype=torch.float64)
    w = prior.icdf(q)
    torch.testing.assert_close(1 - (1 - w**prior.a) ** prior.b, q)
    # sample_u draws from the prior: E[w] = b B(1 + 1/a, b)
    u = prior.sample_u((40_000,), torch.Generator().manual_seed(0))
    mean = prior.b * math.exp(math.lgamma(1 + 1 / prior.a) + math.lgamma(prior.b) - math.lgamma(1 + 1 / prior.a + prior.b))
    assert abs(torch.sigmoid(u.double()).mean().item() - mean) < 4 * 0.25 / math.sqrt(40_000)


def test_u_distribution_is_finite_in_the_pyro_model():
    """The Pyro program's ``u`` site uses ``u_distribution()``: its log density is the generic one,
    finite at extreme u inside a plate, and its samples are finite."""
    prior = UserKumaraswamy(2.0, 2.0)
    u = torch.tensor([-80.0, -30.0, 0.0, 30.0, 80.0])

    def model():
        with pyro.plate("train", 5):
            pyro.sample("u", prior.u_distribution())

    trace = pyro.poutine.trace(pyro.poutine.condition(model, data={"u": u})).get_trace()
    trace.compute_log_prob()
    site = trace.nodes["u"]["log_prob"]
    assert bool(torch.isfinite(site).all())
    torch.testing.assert_close(site, prior.log_prob_u(u))
    draws = prior.u_distribution().sample((1000,))
    assert draws.shape == (1000,) and bool(torch.isfinite(draws).all())
    assert abs(torch.sigmoid(draws).mean().item() - 8 / 15) < 0.03  # E[w] of Kumaraswamy(2, 2)
