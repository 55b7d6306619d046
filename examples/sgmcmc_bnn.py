"""A small Bayesian neural network written with ``PyroModule``, sampled by ``pyrodps.infer.SGLD``.

scikit-learn's bundled digits (8x8 images, 10 classes), 1,500 training and 297 test images; a
64-32-10 network with ``N(0, 1)`` priors on every weight and bias (``PyroSample``), a plate of the
training images subsampled to 100 per step. The test accuracy of the posterior predictive (class
probabilities averaged over the kept draws) is printed.

    python examples/sgmcmc_bnn.py [--samples 2000] [--warmup 2000]
"""

from __future__ import annotations

import argparse

import pyro
import pyro.distributions as dist
import torch
from pyro.infer.autoguide.initialization import init_to_sample
from pyro.nn import PyroModule, PyroSample
from sklearn.datasets import load_digits
from torch import nn

from pyrodps.infer import MCMC, SGLD


class BNN(PyroModule):
    """``x ↦ W₂ tanh(W₁ x + b₁) + b₂`` with standard normal priors on ``W``, ``b``."""

    def __init__(self, d_in: int = 64, hidden: int = 32, d_out: int = 10) -> None:
        super().__init__()
        self.fc1 = PyroModule[nn.Linear](d_in, hidden)
        self.fc1.weight = PyroSample(dist.Normal(0.0, 1.0).expand([hidden, d_in]).to_event(2))
        self.fc1.bias = PyroSample(dist.Normal(0.0, 1.0).expand([hidden]).to_event(1))
        self.fc2 = PyroModule[nn.Linear](hidden, d_out)
        self.fc2.weight = PyroSample(dist.Normal(0.0, 1.0).expand([d_out, hidden]).to_event(2))
        self.fc2.bias = PyroSample(dist.Normal(0.0, 1.0).expand([d_out]).to_event(1))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 100) -> torch.Tensor:
        # sample the weights outside the plate (PyroModule caches them for this call): a PyroSample first
        # read inside a plate would be drawn once per data point
        _ = (self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias)
        with pyro.plate("data", x.shape[0], subsample_size=batch_size) as idx:
            logits = self.fc2(torch.tanh(self.fc1(x[idx])))
            pyro.sample("y", dist.Categorical(logits=logits), obs=None if y is None else y[idx])
        return logits


def data() -> tuple[torch.Tensor, ...]:
    x, y = load_digits(return_X_y=True)
    x = torch.as_tensor(x / 16.0, dtype=torch.float32)
    y = torch.as_tensor(y)
    return x[:1500], y[:1500], x[1500:], y[1500:]


def predictive_accuracy(mcmc: MCMC, x_test: torch.Tensor, y_test: torch.Tensor) -> float:
    """Accuracy of ``(1/S) Σ_s softmax(f(x; θ_s))`` over the kept draws."""
    samples = mcmc.get_samples()
    draws = samples["fc1.weight"].shape[0]
    probs = torch.zeros(len(x_test), 10)
    for s in range(draws):
        h = torch.tanh(x_test @ samples["fc1.weight"][s].T + samples["fc1.bias"][s])
        probs += torch.softmax(h @ samples["fc2.weight"][s].T + samples["fc2.bias"][s], -1)
    return float((probs.argmax(1) == y_test).float().mean())


def main(argv: list[str] | None = None) -> tuple[MCMC, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=2000)
    ap.add_argument("--thinning", type=int, default=5)
    args = ap.parse_args(argv)
    x, y, x_test, y_test = data()
    mcmc = MCMC(SGLD(BNN(), init_strategy=init_to_sample), num_samples=args.samples // args.thinning,
                warmup_steps=args.warmup, thinning=args.thinning)
    mcmc.run(x, y)
    accuracy = predictive_accuracy(mcmc, x_test, y_test)
    print(f"posterior-predictive test accuracy: {accuracy:.3f}")
    return mcmc, accuracy


if __name__ == "__main__":
    main()
