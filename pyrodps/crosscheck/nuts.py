"""Cross-check of pyrodps' SGLD sampler against Pyro's NUTS on a posterior small enough for both.

The model: Bayesian logistic regression on two digit classes of scikit-learn's digits, the inputs
reduced to ``d - 1`` standardised principal components plus an intercept:

    β ~ N(0, s² I_d),   y_i | β ~ Bernoulli(sigmoid(x_iᵀ β)),   i = 1..n
    U(β) = Σ_i softplus(x_iᵀβ) - y_i x_iᵀβ + |β|² / (2 s²)          (= -log p(β, y) + const)

**SGLD** (:class:`pyrodps.inference.SGLD`, full batch, constant step ``η``) runs in whitened
coordinates ``β = β̂ + L z`` with ``β̂`` the mode and ``L Lᵀ = H⁻¹`` (``H`` the Hessian of ``U`` at
``β̂``, the Laplace approximation): a fixed linear reparametrisation, so the target in ``z`` is the
same posterior with a Hessian of ``I`` at its mode, and one step size suits every direction.

**Tolerances** (:func:`compare_posteriors`), per coordinate ``k`` of β, from the samplers' own
Monte Carlo standard errors (ArviZ ``mcse``, i.e. ``sd / sqrt(ESS)``) and a family-wise error rate
``α`` over the ``2d`` comparisons (Bonferroni: ``z = Φ⁻¹(1 - α / (4d))``):

    |mean_SGLD - mean_NUTS| <= z sqrt(MCSE_SGLD(mean)² + MCSE_NUTS(mean)²)
    |sd_SGLD - sd_NUTS|     <= z sqrt(MCSE_SGLD(sd)² + MCSE_NUTS(sd)²) + (r - 1) sd_NUTS

**Step-size bias.** The unadjusted Langevin chain ``z ← z - (η/2) ∇U + sqrt(η) ξ`` on a Gaussian with
Hessian ``I`` is an AR(1) process with stationary covariance ``(1 - η/4)⁻¹ I``: its mean is exact
and its sd is inflated by ``r = (1 - η/4)^(-1/2)`` (1.026 at ``η = 0.2``), the allowance above.
The non-Gaussian remainder of the O(η) bias is not in the bound; it is estimated by Richardson
extrapolation, ``bias(η) ≈ mean(2η) - mean(η)`` (linear in η), which :func:`richardson_bias`
returns with its standard error, and which the slow test and the benchmark check against the
Monte Carlo error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
import xarray as xr
from pyro.infer import MCMC, NUTS
from scipy.stats import norm

from pyrodps.diagnostics.arviz_adapter import convergence_statistics
from pyrodps.errors import ValidationError, check_fraction, check_positive, check_positive_int
from pyrodps.run import sample
from pyrodps.sgmcmc import SGLD, SGLDState, make_generator


@dataclass
class LogisticRegression:
    """Inputs ``x`` (``(n, d)`` float64, first column ones), labels ``y`` in {0, 1}, prior sd ``s``."""

    x: torch.Tensor
    y: torch.Tensor
    prior_scale: float = 1.0

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])

    def energy(self, beta: torch.Tensor, batch: object = None) -> torch.Tensor:
        """``U(β)``, the negative log joint without constants (full batch; ``batch`` is ignored)."""
        logits = self.x @ beta
        return F.binary_cross_entropy_with_logits(logits, self.y, reduction="sum") + 0.5 * beta.square().sum() / self.prior_scale**2

    def pyro_model(self) -> None:
        """The same posterior as a Pyro program, for NUTS."""
        beta = pyro.sample("beta", dist.Normal(torch.zeros(self.dim, dtype=self.x.dtype), self.prior_scale).to_event(1))
        with pyro.plate("data", self.x.shape[0]):
            pyro.sample("y", dist.Bernoulli(logits=self.x @ beta), obs=self.y)

    def laplace(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mode ``β̂``, Hessian ``H`` of ``U`` there, and ``L`` with ``L Lᵀ = H⁻¹`` (Newton's method)."""
        beta = torch.zeros(self.dim, dtype=self.x.dtype)
        for _ in range(100):
            p = torch.sigmoid(self.x @ beta)
            grad = self.x.T @ (p - self.y) + beta / self.prior_scale**2
            hess = (self.x.T * (p * (1 - p))) @ self.x + torch.eye(self.dim, dtype=self.x.dtype) / self.prior_scale**2
            step = torch.linalg.solve(hess, grad)
            beta = beta - step
            if step.abs().max() < 1e-12:
                break
        p = torch.sigmoid(self.x @ beta)
        hess = (self.x.T * (p * (1 - p))) @ self.x + torch.eye(self.dim, dtype=self.x.dtype) / self.prior_scale**2
        return beta, hess, torch.linalg.cholesky(torch.linalg.inv(hess))


def digits_logistic_regression(num_points: int = 100, num_components: int = 4, classes: tuple[int, int] = (3, 8),
                               seed: int = 0, prior_scale: float = 1.0) -> LogisticRegression:
    """``num_points`` digits of ``classes`` (label 1: the second), ``num_components`` standardised
    principal components plus an intercept."""
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    check_positive_int("num_points", num_points, minimum=10)
    check_positive_int("num_components", num_components)
    check_positive("prior_scale", prior_scale)
    x, y = load_digits(return_X_y=True)
    mask = (y == classes[0]) | (y == classes[1])
    x, y = x[mask], (y[mask] == classes[1]).astype(np.float64)
    if num_points > y.size:
        raise ValidationError("num_points", f"at most {y.size} digits of classes {classes}, got {num_points}")
    idx = np.random.default_rng(seed).choice(y.size, num_points, replace=False)
    z = PCA(num_components, random_state=0).fit_transform(x[idx])
    z = (z - z.mean(0)) / z.std(0)
    feats = np.concatenate([np.ones((num_points, 1)), z], axis=1)
    return LogisticRegression(torch.tensor(feats), torch.tensor(y[idx]), prior_scale)


class _DispersedSGLD(SGLD):
    """SGLD whose chain ``k`` starts at ``initial_position + spread · ξ_k`` (a seeded ξ_k ~ N(0, I))."""

    def __init__(self, *args, spread: float = 2.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.spread = spread

    def init(self, seed: int, chain: int = 0) -> SGLDState:
        state = super().init(seed, chain)
        g = make_generator(seed, 50_000 + chain)
        state.position += self.spread * torch.randn(state.position.shape, generator=g, dtype=state.position.dtype)
        return state


class _NoBatches:
    def next(self) -> None:
        return None


def run_sgld(problem: LogisticRegression, *, step_size: float, num_steps: int, burn_in: int, thin: int = 5,
             chains: int = 4, seed: int = 0) -> np.ndarray:
    """Draws of β, ``(chains, draws, d)``: full-batch SGLD with constant ``step_size`` in the whitened
    coordinates ``z`` (``β = β̂ + L z``), chains started at dispersed points."""
    check_positive("step_size", step_size)
    mode, _, chol = problem.laplace()
    kernel = _DispersedSGLD(lambda z, batch=None: problem.energy(mode + chol @ z, batch),
                            torch.zeros(problem.dim, dtype=torch.float64), step_size)
    res = sample(kernel, lambda g: _NoBatches(), num_steps=num_steps, burn_in=burn_in, thin=thin, num_chains=chains,
                 seed=seed, track=("position",), progress=False)
    z = res.draws["position"].to(torch.float64)
    return (mode + z @ chol.T).numpy()


def run_nuts(problem: LogisticRegression, *, num_samples: int, warmup: int, chains: int = 4, seed: int = 0) -> np.ndarray:
    """Draws of β, ``(chains, draws, d)``: ``pyro.infer.MCMC(NUTS(model))``, chains one after another
    (chain k seeded with ``seed + k``, started uniformly in (-2, 2)^d, Pyro's default)."""
    check_positive_int("num_samples", num_samples)
    check_positive_int("warmup", warmup)
    out = []
    for chain in range(chains):
        pyro.set_rng_seed(seed + chain)
        mcmc = MCMC(NUTS(problem.pyro_model), num_samples=num_samples, warmup_steps=warmup, disable_progbar=True)
        mcmc.run()
        out.append(mcmc.get_samples()["beta"].to(torch.float64).numpy())
    return np.stack(out)


def summarise(draws: np.ndarray) -> dict[str, np.ndarray]:
    """Per coordinate: ``mean``, ``sd``, ``mcse_mean``, ``mcse_sd``, ``ess_bulk``, ``rhat`` (ArviZ)."""
    ds = xr.Dataset({"beta": (("chain", "draw", "coef"), draws)})
    stats = convergence_statistics(ds)
    return {
        "mean": draws.mean(axis=(0, 1)),
        "sd": draws.reshape(-1, draws.shape[-1]).std(axis=0, ddof=1),
        **{k: stats[k]["beta"].values for k in ("mcse_mean", "mcse_sd", "ess_bulk", "rhat")},
    }


def family_z(num_comparisons: int, alpha: float = 0.01) -> float:
    """Two-sided Bonferroni critical value ``Φ⁻¹(1 - α / (2m))`` for ``m`` comparisons."""
    check_fraction("alpha", alpha, open_low=True)
    return float(norm.ppf(1.0 - alpha / (2 * num_comparisons)))


def compare_posteriors(sgld: dict[str, np.ndarray], nuts: dict[str, np.ndarray], step_size: float,
                       alpha: float = 0.01) -> dict[str, np.ndarray | float]:
    """The module docstring's tolerances, per coordinate and in units of the NUTS posterior sd:
    ``mean_error`` (``|Δmean| / sd``), ``mean_tolerance``, ``sd_ratio`` (``sd_SGLD / sd_NUTS``),
    ``sd_tolerance`` (on ``|sd ratio - 1|``), and ``z``, ``sd_inflation`` (``r``)."""
    d = nuts["mean"].size
    z = family_z(2 * d, alpha)
    r = (1.0 - step_size / 4.0) ** -0.5
    sd = nuts["sd"]
    return {
        "z": z,
        "sd_inflation": r,
        "mean_error": np.abs(sgld["mean"] - nuts["mean"]) / sd,
        "mean_tolerance": z * np.hypot(sgld["mcse_mean"], nuts["mcse_mean"]) / sd,
        "sd_ratio": sgld["sd"] / sd,
        "sd_tolerance": z * np.hypot(sgld["mcse_sd"], nuts["mcse_sd"]) / sd + (r - 1.0),
    }


def richardson_bias(at_step: dict[str, np.ndarray], at_double: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``bias(η) ≈ mean(2η) - mean(η)`` (bias linear in η) and its standard error, per coordinate."""
    return at_double["mean"] - at_step["mean"], np.hypot(at_double["mcse_mean"], at_step["mcse_mean"])


def timed(fn, *args, **kwargs) -> tuple[object, float]:
    """``(fn(*args, **kwargs), seconds)``."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def crosscheck(problem: LogisticRegression, *, step_size: float = 0.2, sgld_steps: int = 15_000, burn_in: int = 500,
               nuts_samples: int = 800, nuts_warmup: int = 300, chains: int = 4, seed: int = 0,
               richardson: bool = True, alpha: float = 0.01) -> dict:
    """Run both samplers (and SGLD at ``2η`` with half the steps when ``richardson``) and compare.

    Returns ``{"sgld", "nuts", ("sgld_double_step",) "comparison", ("richardson_bias", "richardson_se"),
    "seconds"}`` with per-coordinate arrays (β's coordinates: intercept, then the components).
    """
    sgld_draws, t_sgld = timed(run_sgld, problem, step_size=step_size, num_steps=sgld_steps, burn_in=burn_in,
                               chains=chains, seed=seed)
    nuts_draws, t_nuts = timed(run_nuts, problem, num_samples=nuts_samples, warmup=nuts_warmup, chains=chains, seed=seed)
    out = {"sgld": summarise(sgld_draws), "nuts": summarise(nuts_draws), "seconds": {"sgld": t_sgld, "nuts": t_nuts}}
    out["comparison"] = compare_posteriors(out["sgld"], out["nuts"], step_size, alpha)
    if richardson:
        double, t_double = timed(run_sgld, problem, step_size=2 * step_size, num_steps=sgld_steps // 2,
                                 burn_in=burn_in, chains=chains, seed=seed + 1)
        out["sgld_double_step"] = summarise(double)
        out["seconds"]["sgld_double_step"] = t_double
        out["richardson_bias"], out["richardson_se"] = richardson_bias(out["sgld"], out["sgld_double_step"])
    return out
