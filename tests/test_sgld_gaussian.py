"""(p)SGLD samples a Gaussian target: mean, covariance, and temperature scaling ``T Σ``."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pyrodps.run import sample
from pyrodps.sgmcmc import SGLD, RMSprop
from tests.tolerances import gaussian_tolerances

MU = torch.tensor([1.0, -2.0], dtype=torch.float64)
SIGMA = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
A = torch.linalg.inv(SIGMA)


def energy(x: torch.Tensor, batch=None) -> torch.Tensor:
    d = x - MU
    return 0.5 * d @ A @ d


class NoBatches:
    def next(self):
        return None


def run_chain(kernel, steps: int, burn_in: int) -> np.ndarray:
    res = sample(kernel, lambda g: NoBatches(), num_steps=steps, burn_in=burn_in, seed=3, track=("position",), progress=False)
    return res.draws["position"][0].numpy()


@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_sgld_reaches_gaussian_moments(temperature):
    step, n, burn = 0.05, 60_000, 2_000
    x0 = MU + torch.tensor([15.0, 15.0], dtype=torch.float64)  # far-away start
    draws = run_chain(SGLD(energy, x0, step, temperature=temperature), n + burn, burn)
    mean_tol, cov_tol = gaussian_tolerances(A.numpy(), step, temperature, n)
    assert np.abs(draws.mean(0) - MU.numpy()).max() < mean_tol
    assert np.abs(np.cov(draws.T) - temperature * SIGMA.numpy()).max() < cov_tol


def test_psgld_reaches_gaussian_moments():
    """Diagonal target with scales 1 and 0.1: the preconditioner makes both directions mix alike.

    With ``G`` settled at ``g_k`` per coordinate, coordinate k is an AR(1) chain with step ``η g_k``,
    so the tolerance uses the effective steps read from the final preconditioner state.
    """
    var = torch.tensor([1.0, 0.01], dtype=torch.float64)
    mu = torch.tensor([0.5, 2.0], dtype=torch.float64)

    def en(x, batch=None):
        return 0.5 * ((x - mu).square() / var).sum()

    n, burn, step = 60_000, 5_000, 0.02
    kernel = SGLD(en, mu + 5.0, step, preconditioner=RMSprop(alpha=0.999))
    res = sample(kernel, lambda g: NoBatches(), num_steps=n + burn, burn_in=burn, seed=1, track=("position",), progress=False)
    draws = res.draws["position"][0].numpy()
    v = res.states[0].aux
    g = (1 / (v.sqrt() + kernel.sampler.preconditioner.eps)).numpy()
    for k in range(2):
        ak = np.array([[1 / var[k].item()]])
        mean_tol, var_tol = gaussian_tolerances(ak, step * g[k], 1.0, n)
        assert abs(draws[:, k].mean() - mu[k].item()) < mean_tol
        assert abs(draws[:, k].var() - var[k].item()) < var_tol
    assert abs(np.corrcoef(draws.T)[0, 1]) < 0.1


def test_a_sampler_plugin_from_its_own_file_reaches_gaussian_moments():
    """The SGHMC θ-block sampler of ``tests/plugins/sghmc.py`` (one file, loaded by path) drives the
    generic kernel to a Gaussian's moments."""
    from pyrodps.bads.config import make_sampler

    sampler = make_sampler(str(Path(__file__).parent / "plugins" / "sghmc.py") + ":SGHMC", friction=0.2)
    var = torch.tensor([1.0, 0.25], dtype=torch.float64)
    mu = torch.tensor([0.5, -1.0], dtype=torch.float64)

    def en(x, batch=None):
        return 0.5 * ((x - mu).square() / var).sum()

    n, burn = 20_000, 2_000
    kernel = SGLD(en, mu + 3.0, 0.02, sampler=sampler)
    res = sample(kernel, lambda g: NoBatches(), num_steps=n + burn, burn_in=burn, seed=2, track=("position",),
                 progress=False)
    draws = res.draws["position"][0].numpy()
    for k in range(2):
        x = draws[:, k]
        # Monte Carlo standard errors by batch means (40 batches of 500 correlated draws), z = 4
        mean_tol = 4 * batch_means_se(x)
        var_tol = 4 * batch_means_se((x - x.mean()) ** 2) + 0.02 * var[k].item()  # + O(η) discretisation bias
        assert abs(x.mean() - mu[k].item()) < mean_tol
        assert abs(x.var() - var[k].item()) < var_tol
        # power: a target moved by half a standard deviation is told apart
        assert abs(x.mean() - (mu[k].item() + 0.5 * var[k].sqrt().item())) > mean_tol


def batch_means_se(x: np.ndarray, batches: int = 40) -> float:
    """Standard error of the mean of a correlated series by the method of batch means."""
    means = x[: len(x) // batches * batches].reshape(batches, -1).mean(1)
    return float(means.std(ddof=1) / np.sqrt(batches))
