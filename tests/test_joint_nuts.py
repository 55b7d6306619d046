"""The joint BADS sampler against Pyro's NUTS on ``BADSModel.pyro_model`` (:mod:`pyrodps.crosscheck.joint`).

NUTS on this 30-dimensional posterior costs about 0.1 s per iteration here, so the fast test
compares with a **cached** NUTS summary (:data:`CACHED_NUTS`; how it was made is written next to it)
and a fingerprint test keeps the cache honest: it fails when the problem or the model's density
changes. The slow tests run NUTS afresh, every variant, the Richardson step-bias estimate, and check
the cache against the fresh run. Tolerances are the module's: MCSEs (ArviZ) with a Bonferroni ``z``
plus the linearised chain's sd allowance; none is tuned here.
"""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch
from scipy.linalg import solve_discrete_lyapunov

from pyrodps.crosscheck.joint import (
    JointProblem,
    compare_joint,
    float64,
    full_batch,
    joint_crosscheck,
    linearised_sd_ratio,
    run_bads,
    stationary_covariance,
    summarise_joint,
)

# NUTS on JointProblem() (table weights), summarised by summarise_joint (θ's 6 coordinates, then
# w_1..w_24): summarise_joint(run_nuts(JointProblem(), num_samples=1000, warmup=300, chains=4, seed=100)),
# 4 chains x (300 warm-up + 1,000 draws), bulk ESS 4,870-7,690, R-hat <= 1.005; 10 minutes.
CACHED_NUTS: dict[str, list[float]] = {
    "mean": [
        -0.57888, -0.48583, 0.57757, 0.49078, 0.26702, -0.26146, 0.49922, 0.41106, 0.49408,
        0.28701, 0.4595, 0.48612, 0.46755, 0.44527, 0.4857, 0.30563, 0.46258, 0.37694, 0.4327,
        0.19198, 0.44179, 0.21111, 0.084535, 0.3198, 0.50375, 0.48185, 0.43556, 0.45074, 0.47073,
        0.19949
    ],
    "sd": [
        0.3781, 0.39841, 0.38014, 0.39953, 0.4201, 0.42162, 0.2792, 0.27746, 0.28281, 0.24753,
        0.28172, 0.2902, 0.2888, 0.28192, 0.29027, 0.25513, 0.28238, 0.27764, 0.27813, 0.19239,
        0.29621, 0.20513, 0.087941, 0.25532, 0.28886, 0.28189, 0.2784, 0.2886, 0.2878, 0.19373
    ],
    "mcse_mean": [
        0.0053707, 0.0055188, 0.005268, 0.0054855, 0.0051339, 0.0050661, 0.0035469, 0.0033794,
        0.0034667, 0.0038159, 0.0036855, 0.0033903, 0.0034329, 0.003333, 0.0034739, 0.0039208,
        0.0033662, 0.0037302, 0.0033071, 0.0031427, 0.0034222, 0.0029001, 0.0012126, 0.003475,
        0.0036602, 0.0034895, 0.0037181, 0.0035618, 0.003515, 0.0025966
    ],
    "mcse_sd": [
        0.006037, 0.0064562, 0.0055106, 0.006012, 0.0063976, 0.0072629, 0.0034135, 0.003563,
        0.0034944, 0.0042758, 0.0034456, 0.0031388, 0.0035376, 0.0034056, 0.003299, 0.0039617,
        0.0032058, 0.0036117, 0.0032031, 0.0043987, 0.0036813, 0.004096, 0.0026906, 0.0034869,
        0.0033855, 0.003384, 0.0036006, 0.0034105, 0.0038422, 0.0039467
    ],
}
# -log p of the full batch at θ = 0.1 (1, ..., P), u = 0.05 (1, ..., N): the cache's problem and density
CACHED_FINGERPRINT = 90.13986522285532
FAST = {"step_size": 0.03, "weight_step_size": 0.4, "num_steps": 4_000, "burn_in": 500, "chains": 2}


def cached_nuts() -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in CACHED_NUTS.items()}


def fingerprint(problem: JointProblem) -> float:
    model, data = problem.model(), problem.data()
    with float64():
        theta = 0.1 * torch.arange(1, model.layout.size + 1, dtype=torch.float64)
        u = 0.05 * torch.arange(1, data.num_train + 1, dtype=torch.float64)
        return -model.reference_log_joint(theta, u, full_batch(data)).item()


def test_cache_is_for_this_problem_and_density():
    assert fingerprint(JointProblem()) == pytest.approx(CACHED_FINGERPRINT, rel=1e-9)


def test_full_range_subsample_has_unit_scale():
    """NUTS sees the whole data: the subsampled plates at the full range scale by N/N = 1 (ρ_m for y_meta)."""
    problem = JointProblem()
    model, data = problem.model(), problem.data()
    with float64():
        trace = pyro.poutine.trace(model.pyro_model).get_trace(full_batch(data))
    assert trace.nodes["u"]["scale"] == 1.0 and trace.nodes["train_loss"]["scale"] == 1.0
    assert trace.nodes["y_meta"]["scale"] == pytest.approx(problem.rho_meta)
    assert trace.nodes["u"]["value"].shape == (data.num_train,)


def test_stationary_covariance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    h = a @ a.T + np.eye(5)
    d = np.array([0.05, 0.05, 0.1, 0.2, 0.2])
    s = stationary_covariance(h, d)
    amat = np.eye(5) - 0.5 * d[:, None] * h
    np.testing.assert_allclose(s, solve_discrete_lyapunov(amat, np.diag(d)), rtol=1e-9)
    # one coordinate, moved with probability p: every visit is the same AR(1) step, so p drops out
    for p in (1.0, 0.3):
        one = stationary_covariance(np.array([[2.0]]), np.array([0.1]), np.array([p]), np.array([[p]]))
        assert one[0, 0] == pytest.approx(1 / (2.0 * (1 - 0.1 * 2.0 / 4)))
    # gradient noise inflates the variance
    assert stationary_covariance(h, d, noise=np.eye(5))[0, 0] > s[0, 0]


def test_sgld_agrees_with_cached_nuts_and_the_power_check_fails():
    """Variant (a): 2 chains x 4,000 steps at (2η, 2ε) = (0.03, 0.4), which mix twice as fast as the
    module's (η, ε) (the slow Richardson test finds their bias within the MC error; the allowance
    r(2η) is in the tolerance): agreement with NUTS. The same run with the sampler's ρ_m doubled must
    fail. About 15 s."""
    problem, nuts = JointProblem(), cached_nuts()
    r = linearised_sd_ratio(problem, step_size=FAST["step_size"], weight_step_size=FAST["weight_step_size"])
    good = compare_joint(summarise_joint(run_bads(problem, **FAST)), nuts, r)
    assert good["passed"], {k: good[k] for k in ("mean_error", "mean_tolerance", "sd_ratio", "sd_tolerance")}
    bad = compare_joint(summarise_joint(run_bads(problem, rho_meta_factor=2.0, **FAST)), nuts, r)
    assert not bad["passed"]


def test_slice_weight_block_agrees_with_cached_nuts():
    """fit_bads' default weight block (exact slice-sampling draws of each weight's conditional) with the
    fast test's θ step: agreement with NUTS (the weights' allowance is the Langevin one of ε = 0.4, which
    only loosens the sd tolerance)."""
    problem, nuts = JointProblem(), cached_nuts()
    r = linearised_sd_ratio(problem, step_size=FAST["step_size"], weight_step_size=FAST["weight_step_size"])
    run = run_bads(problem, **{**FAST, "weight_step_size": 3.0}, weight_update="slice")
    c = compare_joint(summarise_joint(run), nuts, r)
    assert c["passed"], {k: c[k] for k in ("mean_error", "mean_tolerance", "sd_ratio", "sd_tolerance")}


@pytest.fixture(scope="module")
def full_check():
    """Fresh NUTS (table: 3 x (150 + 300); weight network: 2 x (150 + 300)) and every variant at the
    module's settings (4 chains x 10,000 steps): about 10 minutes on one loaded core."""
    return joint_crosscheck()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sgld", "psgld", "slice", "weight_net", "minibatch", "minibatch_double_step"])
def test_variant_agrees_with_nuts(full_check, name):
    summary = full_check["variants"][name]["summary"]
    assert summary["passed"], summary


@pytest.mark.slow
def test_power_check_fails(full_check):
    assert not full_check["variants"]["power"]["summary"]["passed"]


@pytest.mark.slow
def test_step_bias_below_mc_error(full_check):
    """Richardson: mean(2η) - mean(η) (and the sds) within z x their standard error."""
    assert full_check["richardson"]["within_mc_error"]


@pytest.mark.slow
def test_minibatch_extra_bias_within_stated_bound(full_check):
    """Minibatch minus full batch at the same steps: means within z x MC error, sds within z x MC error
    plus the noise-aware allowance (module docstring)."""
    z = full_check["z"]
    for name in ("minibatch", "minibatch_double_step"):
        v = full_check["variants"][name]
        e, allowance = v["extra"], np.asarray(v["sd_allowance"]) - 1
        assert np.all(np.abs(e["mean"]) <= z * np.asarray(e["mean_se"])), name
        assert np.all(np.abs(e["sd"]) <= z * np.asarray(e["sd_se"]) + allowance), name


@pytest.mark.slow
def test_psgld_gamma_tilt_below_resolution(full_check):
    """The first-order effect of pSGLD's dropped Γ term is below the check's resolution."""
    v = full_check["variants"]["psgld"]
    assert v["summary"]["max_gamma_tilt_sd"] < v["summary"]["mean_tolerance_range"][0]


@pytest.mark.slow
def test_cached_nuts_matches_a_fresh_run(full_check):
    fresh = {k: np.asarray(x) for k, x in full_check["nuts"]["table"].items()}
    assert compare_joint(fresh, cached_nuts())["passed"]
