"""A researcher's new prior, likelihood or θ-block sampler is one file: it works with the sampler, through
the Python API and the command line, and a failure inside it is named."""

import json
from pathlib import Path

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyrodps import BADSConfig, fit_bads, make_scenario
from pyrodps.app.cli import main
from pyrodps.bads import BADSKernel
from pyrodps.bads.observers import WeightStatistics
from pyrodps.models import BADSModel, Batch, Likelihood, MinibatchStream, SelectionData, WeightPrior
from pyrodps.models.potential import AutogradGradient, FusedGradient
from pyrodps.run import sample
from pyrodps.run.guard import DivergenceError


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
                 seed=0, observers={"weights": WeightStatistics(n, 20)}, progress=False)
    mean, _ = res.observers["weights"].mean_std()
    assert torch.isfinite(mean).all() and ((mean > 0) & (mean < 1)).all()


# ------------------------------------------------------------------ one file each, through the CLI
PLUGINS = Path(__file__).parent / "plugins"


def _run_cli(tmp_path, name, *args):
    out = tmp_path / name
    rc = main(["run", *args, "--out", str(out), "--no-progress", "--seed", "0"])
    assert rc == 0
    return json.loads((out / "metrics.json").read_text()), json.loads((out / "config.json").read_text())


@pytest.mark.parametrize("flag,spec,kwargs", [
    ("--weight-prior", "kumaraswamy_prior.py:Kumaraswamy", "a=2,b=2"),
    ("--theta-prior", "laplace_prior.py:Laplace", '{"scale": 0.2}'),
    ("--sampler", "sghmc.py:SGHMC", "friction=0.5"),
])
def test_a_piece_in_a_file_of_its_own_runs_through_the_cli(tmp_path, flag, spec, kwargs):
    """A weight prior, a θ prior and a θ-block sampler, each one file outside the package, named on the
    command line with its options; the run finds the mislabelled points."""
    extra = ["--step-size", "1e-5"] if flag == "--sampler" else []  # SGHMC has no preconditioner
    metrics, config = _run_cli(tmp_path, flag[2:], "--scenario", "digits-label-noise", "--method", "bads",
                               "--steps", "300", flag, str(PLUGINS / spec), f"{flag}-kwargs", kwargs, *extra)
    field = flag[2:].replace("-", "_")
    assert config["config"][field] == str(PLUGINS / spec)
    assert config["config"][f"{field}_kwargs"]
    assert metrics["selection_auroc"] > 0.9, metrics["selection_auroc"]
    assert np.isfinite(metrics["test_accuracy"])


def test_a_likelihood_in_a_file_of_its_own_runs_bads_and_the_baselines(tmp_path):
    """A Student-t regression likelihood (one file) on the outlier scenario, for BADS and for mixing."""
    spec = str(PLUGINS / "student_t.py") + ":StudentT"
    common = ["--scenario", "friedman-outliers", "--num-samples", "400", "--steps", "300", "--likelihood", spec,
              "--likelihood-kwargs", "df=4,scale=0.3"]
    bads, config = _run_cli(tmp_path, "bads", *common, "--method", "bads")
    mixing, _ = _run_cli(tmp_path, "mixing", *common, "--method", "mixing")
    assert config["config"]["likelihood"] == spec
    assert bads["selection_auroc"] > 0.9
    assert np.isfinite(bads["test_rmse"]) and np.isfinite(mixing["test_rmse"])


def test_a_user_piece_that_fails_is_named_with_the_chain_and_the_step(tmp_path):
    """A weight prior whose gradient turns NaN after 150 calls: the run stops with the guard's error
    naming the piece, the chain and the step, and the last good checkpoint stays."""
    broken = tmp_path / "broken_prior.py"
    broken.write_text(
        "import torch\n"
        "from pyrodps.models.priors import UniformWeight\n"
        "class Broken(UniformWeight):\n"
        "    calls = 0\n"
        "    def grad_log_prob_u(self, u):\n"
        "        Broken.calls += 1\n"
        "        g = super().grad_log_prob_u(u)\n"
        "        return g * float('nan') if Broken.calls > 150 else g\n")
    problem = make_scenario("digits-label-noise", seed=0)
    config = BADSConfig(steps=400, weight_prior=f"{broken}:Broken", weight_update="langevin", chains=1)
    with pytest.raises(DivergenceError) as e:
        fit_bads(problem, config, progress=False, checkpoint_dir=tmp_path / "run", checkpoint_every=20)
    err = e.value
    assert "weight prior Broken" in str(err) and "grad_log_prob_u" in str(err)
    assert err.chain == 0 and err.step == 150 and f"step {err.step}" in str(err)
    assert "checkpoint" in str(err) and (tmp_path / "run" / "checkpoint.pt").is_file()


def test_the_readme_kumaraswamy_prior_survives_the_seeds_that_crashed(tmp_path):
    """The README's Kumaraswamy(2, 2) (only ``distribution``) used to die with torch's raw ValueError
    where BADS drives bad points (u ≈ -30); the generic path is stable in u-space now."""
    problem = make_scenario("digits-label-noise", seed=0)
    for seed in (0, 1, 2):
        config = BADSConfig(steps=200, hidden=(64,), weight_prior=str(PLUGINS / "kumaraswamy_prior.py") + ":Kumaraswamy")
        fit = fit_bads(problem, config, seed=seed, progress=False)
        assert np.isfinite(fit.weight_mean).all() and fit.selection_auroc > 0.9
