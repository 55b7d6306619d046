"""The examples of the README section "SG-MCMC for your own Pyro model" run (a few steps each)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))


def test_logistic_regression_example_runs():
    import sgmcmc_logistic_regression as example

    mcmc = example.main(["--samples", "30", "--warmup", "40", "--chains", "1"])
    assert mcmc.get_samples()["beta"].shape == (30, 31)


def test_hierarchical_example_runs():
    pytest.importorskip("vega_datasets")
    import sgmcmc_hierarchical as example

    mcmc = example.main(["--samples", "30", "--warmup", "40", "--chains", "1"])
    samples = mcmc.get_samples()
    assert samples["level"].shape == (30, 364) and (samples["tau"] > 0).all()


def test_bnn_example_runs():
    import sgmcmc_bnn as example

    mcmc, accuracy = example.main(["--samples", "20", "--warmup", "40", "--thinning", "2"])
    assert mcmc.get_samples()["fc1.weight"].shape == (10, 32, 64)
    assert 0.0 <= accuracy <= 1.0 and torch.isfinite(mcmc.get_samples()["fc2.bias"]).all()
