"""SG-MCMC for any Pyro model (:mod:`pyrodps.infer`): reading the model, the potential, the local block,
the MCMC front end, and a posterior check against an exact Gaussian posterior with its power check."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
import xarray as xr

from pyrodps.diagnostics.arviz_adapter import convergence_statistics, group
from pyrodps.errors import PieceError, ValidationError
from pyrodps.infer import MCMC, SGLD, PyroProgram, pSGLD
from pyrodps.infer.adaptation import stationary_variance_factor
from pyrodps.run import DivergenceError


def hierarchical(y: torch.Tensor, batch: int):
    """Group means ``θ_j ~ N(μ, τ)`` (local, subsampled), ``y_j ~ N(θ_j, 1)``; μ, τ global."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(2.0))
    with pyro.plate("groups", y.shape[0], subsample_size=batch) as idx:
        theta = pyro.sample("theta", dist.Normal(mu, tau))
        pyro.sample("y", dist.Normal(theta, 1.0), obs=y[idx])


def test_the_program_reads_global_and_local_sites_and_the_subsampled_plate():
    y = torch.randn(30)
    program = PyroProgram(hierarchical, (y, 6))
    assert [(p.name, p.size, p.subsample_size) for p in program.plates] == [("groups", 30, 6)]
    assert [s.name for s in program.globals] == ["mu", "tau"]
    (theta,) = program.locals
    assert (theta.name, theta.plate, theta.dim, tuple(theta.shape)) == ("theta", "groups", 0, (30,))
    tau = program.globals[1]
    assert float(tau.transform(torch.tensor(-3.0))) > 0  # the positive support's bijection


def test_the_potential_is_pyros_scaled_log_joint_plus_the_jacobian():
    y = torch.randn(30)
    program = PyroProgram(hierarchical, (y, 6))
    idx = torch.tensor([3, 7, 11, 19, 23, 29])
    z = {"mu": torch.tensor(0.3), "tau": torch.tensor(-0.2)}
    z_theta = torch.randn(6)
    log_p, scales = program.log_density(z, {"theta": z_theta}, {"groups": idx})
    tau = torch.exp(z["tau"])
    expected = (dist.Normal(0.0, 5.0).log_prob(z["mu"]) + dist.HalfCauchy(2.0).log_prob(tau) + z["tau"]
                + 5.0 * (dist.Normal(z["mu"], tau).log_prob(z_theta) + dist.Normal(z_theta, 1.0).log_prob(y[idx])).sum())
    torch.testing.assert_close(log_p, expected)
    assert scales == {"mu": 1.0, "tau": 1.0, "theta": 5.0}


def test_a_step_moves_only_the_subsample_of_a_local_table():
    kernel = SGLD(hierarchical)
    kernel.setup((torch.randn(30), 6), {}, warmup_steps=10)
    state = kernel.init(0)
    batch = {"groups": torch.tensor([0, 5, 9, 12, 20, 28])}
    for t in (kernel.mode_steps - 1, kernel.mode_steps):  # an Rprop step of the mode phase, a Langevin step
        state.step = t
        before = state.tables["theta"].clone()
        state, info = kernel.step(state, batch)
        changed = torch.nonzero(state.tables["theta"] != before).flatten()
        assert changed.tolist() == batch["groups"].tolist()
        assert torch.isfinite(info["energy"])


def test_discrete_latents_and_failing_models_are_named():
    def discrete(y):
        pyro.sample("k", dist.Categorical(torch.ones(3)))
        pyro.sample("y", dist.Normal(0.0, 1.0), obs=y)

    with pytest.raises(ValidationError, match="'k' is discrete"):
        MCMC(SGLD(discrete), num_samples=5, progress=False).run(torch.tensor(0.0))

    def broken(y):
        pyro.sample("m", dist.Normal(0.0, 1.0))
        raise RuntimeError("bad model")

    with pytest.raises(PieceError, match="Pyro model .* in broken: RuntimeError: bad model"):
        MCMC(SGLD(broken), num_samples=5, progress=False).run(torch.tensor(0.0))
    with pytest.raises(ValidationError, match="step_size"):
        SGLD(hierarchical, adapt_metric=False)
    with pytest.raises(ValidationError, match="kernel"):
        MCMC(object(), num_samples=5)


def _regression(n: int = 500, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    x[:, 1] += 0.5 * x[:, 0]  # correlated coefficients
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + torch.randn(n, generator=g)
    return x, y


def linear_regression(x: torch.Tensor, y: torch.Tensor, batch: int, rescale: bool = False):
    """``β ~ N(0, I)``, ``y_i ~ N(x_iᵀβ, 1)`` on a subsampled plate (``rescale``: undo Pyro's ``N/B``,
    the power check's broken model)."""
    beta = pyro.sample("beta", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", x.shape[0], subsample_size=batch) as idx, \
            pyro.poutine.scale(scale=batch / x.shape[0] if rescale else 1.0):
        pyro.sample("y", dist.Normal(x[idx] @ beta, 1.0), obs=y[idx])


def _exact_posterior(x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    x, y = x.double(), y.double()
    cov = torch.linalg.inv(torch.eye(x.shape[1], dtype=torch.float64) + x.T @ x)
    return (cov @ x.T @ y).numpy(), cov.diagonal().sqrt().numpy()


def _agreement(mcmc: MCMC, mean: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Errors and their tolerances in posterior-sd units: ``|Δmean| <= 0.1 + z MCSE_mean``;
    ``|sd ratio - 1| <= 0.2 + z MCSE_sd / sd``, ``z`` Bonferroni over the 2 d comparisons at α = 0.01."""
    draws = mcmc.get_samples(group_by_chain=True)["beta"].double().numpy()
    stats = convergence_statistics(xr.Dataset({"beta": (("chain", "draw", "k"), draws)}),
                                   statistics=("mcse_mean", "mcse_sd"))
    z = 3.02  # Φ⁻¹(1 - 0.01 / 12)
    flat = draws.reshape(-1, draws.shape[-1])
    mean_err = np.abs(flat.mean(0) - mean) / sd
    sd_err = np.abs(flat.std(0, ddof=1) / sd - 1)
    return (mean_err, 0.1 + z * stats["mcse_mean"]["beta"].values / sd,
            sd_err, 0.2 + z * stats["mcse_sd"]["beta"].values / sd)


def test_subsampled_linear_regression_matches_the_exact_posterior_and_fails_without_the_plate_scale():
    """B = N/10, defaults (dense metric, control variate, η = 0.1: variance inflated by at most
    (1 + η/4)/(1 - η/4) = 1.05). The power check samples the model with Pyro's N/B undone: its posterior
    sd is sqrt(10) times too large, and the same tolerances reject it."""
    x, y = _regression()
    mean, sd = _exact_posterior(x, y)
    good = MCMC(SGLD(linear_regression), num_samples=5000, warmup_steps=1000, progress=False).run(x, y, 50)
    mean_err, mean_tol, sd_err, sd_tol = _agreement(good, mean, sd)
    assert (mean_err <= mean_tol).all() and (sd_err <= sd_tol).all(), (mean_err, mean_tol, sd_err, sd_tol)
    bad = MCMC(SGLD(linear_regression), num_samples=1500, warmup_steps=500, progress=False).run(x, y, 50, True)
    _, _, bad_sd_err, bad_sd_tol = _agreement(bad, mean, sd)
    assert (bad_sd_err > bad_sd_tol).all(), (bad_sd_err, bad_sd_tol)
    assert stationary_variance_factor(0.1) < 1.06


def test_mcmc_front_end_summary_diagnostics_arviz_and_psgld():
    y = torch.randn(30, generator=torch.Generator().manual_seed(1)) + 2.0
    mcmc = MCMC(pSGLD(hierarchical), num_samples=40, warmup_steps=40, num_chains=2, thinning=2,
                progress=False).run(y, 6)
    samples = mcmc.get_samples()
    assert samples["mu"].shape == (80,) and samples["theta"].shape == (80, 30)
    assert (samples["tau"] > 0).all()
    assert mcmc.get_samples(group_by_chain=True)["mu"].shape == (2, 40)
    summary = mcmc.summary(print_table=False)
    assert set(summary["mu"]) >= {"mean", "std", "median", "n_eff", "r_hat"}
    diagnostics = mcmc.diagnostics()
    assert diagnostics["tau"]["n_eff"].shape == () and diagnostics["run"]["backoffs"] == []
    posterior = group(mcmc.to_arviz(), "posterior")
    assert posterior["theta"].shape == (2, 40, 30)
    with pytest.raises(ValidationError, match="prob"):
        mcmc.summary(prob=1.5)


def test_a_checkpointed_run_resumes_to_the_uninterrupted_result(tmp_path):
    x, y = _regression(200, seed=3)
    ref = MCMC(SGLD(linear_regression), num_samples=60, warmup_steps=200, progress=False).run(x, y, 20)
    calls = {"n": 0}

    def failing(x, y, batch):
        calls["n"] += 1
        if calls["n"] == 300:  # two traces per step (the control variate's too): about step 150
            raise RuntimeError("killed")
        linear_regression(x, y, batch)

    folder = tmp_path / "run"
    with pytest.raises(DivergenceError, match="Pyro model"):
        MCMC(SGLD(failing), num_samples=60, warmup_steps=200, progress=False, checkpoint_dir=folder,
             checkpoint_every=10).run(x, y, 20)
    calls["n"] = -10**9  # never fails again
    resumed = MCMC(SGLD(failing), num_samples=60, warmup_steps=200, progress=False, checkpoint_dir=folder,
                   checkpoint_every=10).run(x, y, 20)
    assert resumed.result.extras["resumed_at"]
    assert torch.equal(resumed.get_samples()["beta"], ref.get_samples()["beta"])


def test_a_pass_of_chunks_adds_up_to_the_full_data_log_joint():
    """The control variate's full-data gradient: 57 points in chunks of 10 (the last overlapping)."""
    x, y = _regression(57, seed=4)
    program = PyroProgram(linear_regression, (x, y, 10))
    beta = torch.tensor([0.3, -0.2, 0.1])
    total = sum(program.log_density({"beta": beta}, {}, batch, chunk)[0] for batch, chunk in program.full_data_chunks())
    full = dist.Normal(0.0, 1.0).log_prob(beta).sum() + dist.Normal(x @ beta, 1.0).log_prob(y).sum()
    torch.testing.assert_close(total, full)


def test_the_log_joint_messenger_equals_the_traces_log_prob_sum():
    """:class:`LogJoint` sums as the model runs what ``trace.log_prob_sum()`` sums: scales, masks,
    factors, nested plates; deterministic and subsample sites add nothing."""
    from pyro import poutine

    from pyrodps.infer.program import LogJoint

    y = torch.randn(8, 3)

    def model():
        mu = pyro.sample("mu", dist.Normal(0.0, 2.0))
        with pyro.plate("rows", 8, subsample=torch.tensor([1, 4, 6]), dim=-2) as idx:
            with pyro.plate("cols", 3, dim=-1), poutine.mask(mask=torch.tensor([True, False, True])):
                pyro.sample("y", dist.Normal(mu, 1.0), obs=y[idx])
            pyro.factor("bonus", torch.full((3, 1), 0.25))
            pyro.deterministic("twice", 2 * mu)
        with poutine.scale(scale=0.5):
            pyro.sample("z", dist.Gamma(2.0, 1.0), obs=torch.tensor(1.5))

    conditioned = poutine.condition(model, data={"mu": torch.tensor(0.4)})
    joint = LogJoint(record=("mu",))
    joint(conditioned)()
    torch.testing.assert_close(joint.total, poutine.trace(conditioned).get_trace().log_prob_sum())
    assert joint.scales == {"mu": 1.0}


def test_the_first_log_density_runs_with_pyros_validation_and_later_ones_without():
    def model(scale):
        pyro.sample("m", dist.Normal(0.0, 1.0))
        pyro.sample("y", dist.Normal(0.0, scale), obs=torch.tensor(0.0))

    program = PyroProgram(model, (torch.tensor(1.0),))
    program.args = (torch.tensor(-1.0),)  # an invalid scale: Pyro's validation refuses it
    with pytest.raises(PieceError, match="Pyro model"):
        program.log_density({"m": torch.tensor(0.0)}, {}, {})
    program.checked = True
    log_p, _ = program.log_density({"m": torch.tensor(0.0)}, {}, {})  # not checked again: NaN, no error
    assert torch.isnan(log_p)


def test_locals_far_from_their_initial_values_reach_their_conditionals_in_the_warm_up():
    """The warm-up's mode-finding phase moves the locals too: group means 40 away from ``init_to_uniform``'s
    ``[-2, 2]`` sit within a few of their (unit) posterior sds of their data after it (with Langevin
    steps from the start, ``G = 1/E[g²]`` far from the mode crawls, ``g`` being large there)."""
    pyro.set_rng_seed(0)
    y = 40.0 + torch.randn(40)
    mcmc = MCMC(SGLD(hierarchical), num_samples=200, warmup_steps=2000, seed=0, progress=False).run(y, 8)
    theta = mcmc.get_samples()["theta"].mean(0)
    assert (theta - y).abs().max() < 3.0
    assert abs(float(mcmc.get_samples()["mu"].mean()) - float(y.mean())) < 3.0
