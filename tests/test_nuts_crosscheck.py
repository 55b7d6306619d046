"""pyrodps' SGLD against Pyro's NUTS on Bayesian logistic regression (two digit classes, 4 PCA features).

Tolerances come from the samplers' Monte Carlo standard errors and the O(η) step bias; see
:mod:`pyrodps.crosscheck.nuts`. The fast test checks agreement within those derived
tolerances (about 0.2 sd for its short chains); the slow one runs long enough that the tolerances
are below the targets (means within 0.1 posterior sd, sds within 20 %) and checks both.
"""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch

from pyrodps.crosscheck.nuts import (
    compare_posteriors,
    crosscheck,
    digits_logistic_regression,
    family_z,
    run_nuts,
    run_sgld,
    summarise,
)

STEP = 0.2


@pytest.fixture(scope="module")
def problem():
    return digits_logistic_regression(num_points=100, num_components=4, seed=0)


@pytest.fixture(scope="module")
def nuts_short(problem):
    """NUTS 2 x (200 warm-up + 300 draws): about 6 s."""
    return summarise(run_nuts(problem, num_samples=300, warmup=200, chains=2, seed=0))


def test_pyro_model_is_the_sgld_energy(problem):
    """``log p(β, y)`` of the Pyro trace and ``-U(β)`` differ by a constant."""
    gen = torch.Generator().manual_seed(0)
    diffs = []
    for _ in range(3):
        beta = torch.randn(problem.dim, generator=gen, dtype=torch.float64)
        trace = pyro.poutine.trace(pyro.poutine.condition(problem.pyro_model, {"beta": beta})).get_trace()
        diffs.append((trace.log_prob_sum() + problem.energy(beta)).item())
    np.testing.assert_allclose(diffs, diffs[0], rtol=0, atol=1e-9)


def test_laplace_whitening(problem):
    mode, hess, chol = problem.laplace()
    beta = mode.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(problem.energy(beta), beta)
    assert grad.abs().max() < 1e-8
    np.testing.assert_allclose((chol.T @ hess @ chol).numpy(), np.eye(problem.dim), atol=1e-10)


def test_family_z():
    assert abs(family_z(1, 0.05) - 1.959964) < 1e-5
    assert family_z(10, 0.01) > family_z(2, 0.01)


def test_sgld_agrees_with_nuts_within_derived_tolerances(problem, nuts_short):
    """Short chains: SGLD 2 x 4,000 steps, NUTS 2 x (200 + 300); about 10 s."""
    sgld = summarise(run_sgld(problem, step_size=STEP, num_steps=4000, burn_in=500, chains=2, seed=0))
    c = compare_posteriors(sgld, nuts_short, STEP)
    assert np.all(c["mean_error"] <= c["mean_tolerance"]), c
    assert np.all(np.abs(c["sd_ratio"] - 1) <= c["sd_tolerance"]), c
    # short chains: the check is sharp to about 0.2-0.25 posterior sd (the slow test reaches the targets)
    assert np.all(c["mean_tolerance"] < 0.3) and np.all(c["sd_tolerance"] < 0.3)


def test_the_check_detects_a_wrong_posterior(nuts_short):
    """SGLD on the same data with the prior sd halved must fail the comparison with NUTS."""
    wrong = digits_logistic_regression(num_points=100, num_components=4, seed=0, prior_scale=0.5)
    sgld = summarise(run_sgld(wrong, step_size=STEP, num_steps=4000, burn_in=500, chains=2, seed=0))
    c = compare_posteriors(sgld, nuts_short, STEP)
    assert np.any(c["mean_error"] > c["mean_tolerance"])


@pytest.mark.slow
def test_sgld_matches_nuts_at_the_target(problem):
    """Means within 0.1 posterior sd and sds within 20 %, with tolerances derived from the run.

    SGLD 4 x 15,000 steps at η = 0.2 (and 4 x 7,500 at 2η for the Richardson bias estimate), NUTS
    4 x (300 + 800): bulk ESS about 2,500-4,000 per coordinate for each; about a minute.
    """
    out = crosscheck(problem, step_size=STEP, sgld_steps=15_000, nuts_samples=800, nuts_warmup=300, chains=4)
    c = out["comparison"]
    # the run is long enough for the derived tolerances to resolve the targets ...
    assert np.all(c["mean_tolerance"] <= 0.1), c["mean_tolerance"]
    assert np.all(c["sd_tolerance"] <= 0.2), c["sd_tolerance"]
    # ... and SGLD agrees with NUTS within them
    assert np.all(c["mean_error"] <= c["mean_tolerance"]), c
    assert np.all(np.abs(c["sd_ratio"] - 1) <= c["sd_tolerance"]), c
    # the O(η) mean bias left out of the bound is below the Monte Carlo error (Richardson: mean(2η) - mean(η))
    z = family_z(problem.dim)
    assert np.all(np.abs(out["richardson_bias"]) <= z * out["richardson_se"]), out["richardson_bias"]
    for name in ("sgld", "nuts"):
        assert np.all(out[name]["rhat"] < 1.01)
