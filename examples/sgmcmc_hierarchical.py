"""A hierarchical model with a global and a subsampled local latent, sampled by ``pyrodps.infer.SGLD``.

Hourly temperatures of Seattle in 2010 (vega_datasets' bundled ``seattle-temps``, the ``tabular``
extra): 364 days of 24 hours. Each day has its own level around the year's mean:

    μ ~ N(50, 20²),  τ ~ HalfCauchy(10),  σ ~ HalfCauchy(10)
    λ_d ~ N(μ, τ²)                         (one per day: local, the plate of days subsampled)
    t_{d,h} ~ N(λ_d, σ²)                   (24 hours of day d)

Each step sees ``--days`` random days (the plate's ``subsample_size``) and moves their ``λ_d`` on
their exact conditionals; ``μ``, ``τ``, ``σ`` (``τ`` and ``σ`` through ``log``, with the Jacobian) take
the global step.

**Write the locals centred** (``λ_d ~ N(μ, τ²)``, not ``λ_d = μ + α_d`` with ``α_d ~ N(0, τ²)``) when
each group's data pin its local down, as 24 hours pin a day's level: then ``μ`` given the locals is
as wide as its posterior, and it moves freely. In the offset form the data fix ``μ + mean(α)``
and ``μ`` can only move as fast as all the offsets move together, which with a subsampled plate is
slowly (``benchmarks/infer_generic.py --parts hierarchical`` measures both forms against NUTS).

    python examples/sgmcmc_hierarchical.py [--days 36] [--samples 4000] [--warmup 2000]
"""

from __future__ import annotations

import argparse

import pyro
import pyro.distributions as dist
import torch

from pyrodps.infer import MCMC, SGLD


def data() -> torch.Tensor:
    """``(364, 24)`` hourly temperatures (°F)."""
    from vega_datasets import local_data

    temps = local_data.seattle_temps()["temp"].to_numpy(copy=True)[: 364 * 24]
    return torch.as_tensor(temps, dtype=torch.float32).reshape(364, 24)


def model(temps: torch.Tensor, days_per_step: int) -> None:
    mu = pyro.sample("mu", dist.Normal(50.0, 20.0))
    tau = pyro.sample("tau", dist.HalfCauchy(10.0))
    sigma = pyro.sample("sigma", dist.HalfCauchy(10.0))
    with pyro.plate("days", temps.shape[0], subsample_size=days_per_step, dim=-1) as day:
        level = pyro.sample("level", dist.Normal(mu, tau))
        with pyro.plate("hours", temps.shape[1], dim=-2):
            pyro.sample("temp", dist.Normal(level, sigma), obs=temps[day].T)


def offset_model(temps: torch.Tensor, days_per_step: int) -> None:
    """The same model with each day's level written as an offset ``α_d = λ_d - μ`` from the mean (the
    module docstring says why the centred :func:`model` samples better)."""
    mu = pyro.sample("mu", dist.Normal(50.0, 20.0))
    tau = pyro.sample("tau", dist.HalfCauchy(10.0))
    sigma = pyro.sample("sigma", dist.HalfCauchy(10.0))
    with pyro.plate("days", temps.shape[0], subsample_size=days_per_step, dim=-1) as day:
        alpha = pyro.sample("alpha", dist.Normal(0.0, tau))
        with pyro.plate("hours", temps.shape[1], dim=-2):
            pyro.sample("temp", dist.Normal(mu + alpha, sigma), obs=temps[day].T)


def main(argv: list[str] | None = None) -> MCMC:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=36)
    ap.add_argument("--samples", type=int, default=4000)
    ap.add_argument("--warmup", type=int, default=2000)
    ap.add_argument("--chains", type=int, default=2)
    args = ap.parse_args(argv)
    mcmc = MCMC(SGLD(model), num_samples=args.samples, warmup_steps=args.warmup, num_chains=args.chains)
    mcmc.run(data(), args.days)
    summary = mcmc.summary(print_table=False)
    for name in ("mu", "tau", "sigma"):
        s = summary[name]
        print(f"{name:>6}: mean {float(s['mean']):.3f}  sd {float(s['std']):.3f}  n_eff {float(s['n_eff']):.0f}  "
              f"r_hat {float(s['r_hat']):.3f}")
    return mcmc


if __name__ == "__main__":
    main()
