"""The baselines on a regression problem (``friedman-outliers``): they train on the problem's
Gaussian likelihood, report RMSE and MAE, and the oracle (clean points only) beats mixing."""

import numpy as np
import pytest

from pyrodps import ValidationError
from pyrodps.app.methods import run_method
from pyrodps.baselines.l2rw import L2RWConfig
from pyrodps.baselines.mwn import MWNConfig
from pyrodps.baselines.sgd import SGDConfig, fit_sgd
from pyrodps.data import make_scenario
from pyrodps.models.likelihoods import Categorical, Gaussian

SMALL = {"steps": 20, "hidden": (16,), "batch_size": 32}
CONFIGS = {"sgd_config": SGDConfig(**SMALL), "l2rw_config": L2RWConfig(**SMALL),
           "mwn_config": MWNConfig(**SMALL, weight_net_hidden=8)}


@pytest.fixture(scope="module")
def problem():
    return make_scenario("friedman-outliers", seed=0)


@pytest.mark.parametrize("method", ["mixing", "oracle", "l2rw", "mwn"])
def test_few_steps_give_finite_regression_metrics(problem, method):
    res = run_method(problem, method, seed=0, progress=False, **CONFIGS)
    m = res.metrics(problem)
    assert "test_accuracy" not in m and "balanced_accuracy" not in m
    assert np.isfinite(m["test_rmse"]) and np.isfinite(m["test_mae"]) and 0 < m["test_mae"] <= m["test_rmse"]
    assert res.test_probs.shape == problem.y_test.shape  # predictive means
    if method in ("l2rw", "mwn"):
        assert m["selection_auroc"] is not None and 0 <= m["selection_auroc"] <= 1
        assert res.weight_mean.shape == (problem.num_train,) and np.isfinite(res.weight_mean).all()
        assert "mean_weight_corrupted" in m and "mean_weight_clean" in m
    again = run_method(problem, method, seed=0, progress=False, **CONFIGS)
    assert np.array_equal(res.test_probs, again.test_probs)


def test_trace_records_the_rmse(problem):
    fit = fit_sgd(problem, SGDConfig(**SMALL), progress=False, eval_every=10)
    assert [t for t, _ in fit.accuracy_trace] == [10, 20]
    assert fit.accuracy_trace[-1][1] == pytest.approx(fit.test_scores["test_rmse"])
    assert np.isnan(fit.test_accuracy)


def test_likelihood_is_a_choice_and_must_fit_the_targets(problem):
    default = fit_sgd(problem, SGDConfig(**SMALL), progress=False)
    wide = fit_sgd(problem, SGDConfig(**SMALL), likelihood=Gaussian(10.0), progress=False)
    assert not np.array_equal(default.test_probs, wide.test_probs)  # the scale weighs the loss
    with pytest.raises(ValidationError) as e:
        fit_sgd(problem, SGDConfig(**SMALL), likelihood=Categorical(3), progress=False)
    assert e.value.argument == "y_train"


def test_oracle_beats_mixing_in_rmse(problem):
    """Training on the clean points only is far better than training on all of them: at 600 steps
    of the (64, 64) MLP the oracle's test RMSE is about 0.4, mixing's about 1.2 (seeds 0, 1)."""
    config = SGDConfig(steps=600, hidden=(64, 64))
    rmse = {m: run_method(problem, m, seed=0, progress=False, sgd_config=config).metrics(problem)["test_rmse"]
            for m in ("mixing", "oracle")}
    assert rmse["oracle"] < 0.6 and rmse["oracle"] < 0.6 * rmse["mixing"]
