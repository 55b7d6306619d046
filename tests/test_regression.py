"""Regression end to end: BADS down-weights gross outliers, from the sampler up to the command line."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from pyrodps import BADSConfig, make_scenario
from pyrodps.app.cli import main
from pyrodps.app.methods import run_method
from pyrodps.bads import BADSKernel
from pyrodps.bads.observers import WeightStatistics
from pyrodps.diagnostics import selection_auroc
from pyrodps.models import BADSModel, Gaussian, MinibatchStream, SelectionData
from pyrodps.run import sample


def test_bads_downweights_regression_outliers():
    g = torch.Generator().manual_seed(0)
    n, m, d = 400, 20, 3
    beta = torch.tensor([1.0, -2.0, 0.5])
    x, xm = torch.randn(n, d, generator=g), torch.randn(m, d, generator=g)
    y = x @ beta + 0.1 * torch.randn(n, generator=g)
    outlier = torch.zeros(n, dtype=torch.bool)
    outlier[torch.randperm(n, generator=g)[:80]] = True
    y[outlier] += 6.0 * torch.sign(torch.randn(80, generator=g))
    ym = xm @ beta + 0.1 * torch.randn(m, generator=g)
    data = SelectionData(x, y, xm, ym)
    torch.manual_seed(0)
    model = BADSModel(nn.Linear(d, 1), Gaussian(0.5), n, m, rho_theta=1.0)
    kernel = BADSKernel(model, step_size=2e-4, weight_step_size=1.0)
    res = sample(kernel, lambda gen: MinibatchStream(data, 50, None, gen), num_steps=1500, burn_in=500,
                 seed=0, observers={"weights": WeightStatistics(n, 500)}, track=("theta",), progress=False)
    mean, _ = res.observers["weights"].mean_std()
    assert selection_auroc(mean.numpy(), outlier.numpy()) > 0.95
    coef = res.draws["theta"][0, :, :d].mean(0)
    # posterior sd of each coefficient is about 0.5 / sqrt(320 · 0.5) ≈ 0.04: allow ~4 sd
    assert torch.allclose(coef, beta, atol=0.15)


def test_regression_npz_files_through_run_and_compare(tmp_path):
    """Your own regression data with gross outliers, as .npz files with float targets: ``pyrodps run``
    down-weights the outliers, and ``pyrodps compare`` puts BADS beside mixing with RMSE columns."""
    problem = make_scenario("friedman-outliers", seed=0, num_samples=400)
    files = {}
    for part in ("train", "meta", "test"):
        arrays = {"X": getattr(problem, f"x_{part}"), "y": getattr(problem, f"y_{part}").astype(np.float64)}
        if part == "train":
            arrays["corrupted"] = problem.corrupted
        files[part] = tmp_path / f"{part}.npz"
        np.savez(files[part], **arrays)
    data = ["--train", str(files["train"]), "--meta", str(files["meta"]), "--test", str(files["test"])]
    assert main(["run", *data, "--method", "bads", "--steps", "400", "--out", str(tmp_path / "run"),
                 "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["selection_auroc"] > 0.95 and "test_accuracy" not in metrics
    assert main(["compare", *data, "--methods", "bads,mixing", "--seeds", "0", "--steps", "400",
                 "--out", str(tmp_path / "cmp"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "cmp" / "comparison.json").read_text())["summary"]
    assert summary["bads"]["test_rmse"]["mean"] < summary["mixing"]["test_rmse"]["mean"]


@pytest.mark.parametrize("method", ["bads-companion", "bads-weightnet", "bads-v0.1"])
def test_every_bads_variant_runs_on_a_regression_problem(method):
    """The companion chain, the weight network (the label feature is the target itself) and the old
    defaults all take float targets."""
    problem = make_scenario("friedman-outliers", seed=0, num_samples=400)
    res = run_method(problem, method, steps=300, progress=False, bads_config=BADSConfig(hidden=(32,)))
    metrics = res.metrics(problem)
    assert np.isfinite(metrics["test_rmse"]) and np.isfinite(res.weight_mean).all()
    assert 0.0 <= metrics["selection_auroc"] <= 1.0
