"""Bayesian logistic regression with a subsampled plate, sampled by pyrodps' SGLD (``pyrodps.infer``).

Pyro's NUTS refuses this model (``subsample_size``); ``pyrodps.infer.SGLD`` draws a fresh tenth of the
data at every step and Pyro's plate scales it by ``N / B``. Data: scikit-learn's bundled breast-cancer
table (569 tumours, 30 standardised features), bundled with scikit-learn (nothing downloaded).

    python examples/sgmcmc_logistic_regression.py [--samples 4000] [--warmup 2000]
"""

from __future__ import annotations

import argparse

import pyro
import pyro.distributions as dist
import torch
from sklearn.datasets import load_breast_cancer

from pyrodps.infer import MCMC, SGLD


def data() -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised features with an intercept column, and the 0/1 labels."""
    x, y = load_breast_cancer(return_X_y=True)
    x = torch.as_tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    return torch.cat([torch.ones(len(x), 1), x], 1), torch.as_tensor(y, dtype=torch.float32)


def model(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
    """``β ~ N(0, I)``, ``y_i ~ Bernoulli(sigmoid(x_iᵀβ))`` over a plate subsampled to ``batch_size``."""
    beta = pyro.sample("beta", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", x.shape[0], subsample_size=batch_size) as idx:
        pyro.sample("y", dist.Bernoulli(logits=x[idx] @ beta), obs=y[idx])


def main(argv: list[str] | None = None) -> MCMC:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=4000)
    ap.add_argument("--warmup", type=int, default=2000)
    ap.add_argument("--chains", type=int, default=2)
    args = ap.parse_args(argv)
    x, y = data()
    mcmc = MCMC(SGLD(model), num_samples=args.samples, warmup_steps=args.warmup, num_chains=args.chains)
    mcmc.run(x, y, x.shape[0] // 10)
    mcmc.summary()
    return mcmc


if __name__ == "__main__":
    main()
