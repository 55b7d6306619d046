"""The cleanlab baseline (pyrodps.baselines.label_issues): it finds the flipped labels of digits label
noise, its checks fire before any training, and a seed fixes its result."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from pyrodps.baselines import label_issues
from pyrodps.baselines.label_issues import CleanlabConfig, fit_cleanlab
from pyrodps.data import make_scenario
from pyrodps.diagnostics.metrics import selection_auroc
from pyrodps.errors import ValidationError
from pyrodps.models.likelihoods import Categorical, Gaussian
from pyrodps.models.problem import SelectionProblem

FAST = {"steps": 300, "folds": 3}
# Label-quality AUROC against the flipped labels, digits-label-noise (40 % uniform noise) with FAST,
# measured for seeds 0, 1, 2: network 0.961, 0.937, 0.920; logistic 0.989, 0.992, 0.989. The
# thresholds leave a margin of >= 0.07 (network) and >= 0.039 (logistic) below the lowest of them.
MIN_AUROC = {"network": 0.85, "logistic": 0.95}
# Of the points flagged, the fraction truly flipped was 0.84-0.92 (network) and 0.93-0.96 (logistic);
# 40 % are flipped, so a flagger that ignores the labels would be near 0.4.
MIN_PRECISION = 0.75
# Test accuracy of the retrained network at 300 steps was 0.66-0.85; chance is 0.1.
MIN_ACCURACY = 0.5


@pytest.fixture(scope="module")
def problem() -> SelectionProblem:
    return make_scenario("digits-label-noise", seed=0)


@pytest.fixture(scope="module")
def fits(problem):
    pytest.importorskip("cleanlab")  # only the fits need it; the input checks are tested without
    return {m: fit_cleanlab(problem, CleanlabConfig(oof_model=m, **FAST), seed=0, progress=False)
            for m in ("network", "logistic")}


@pytest.mark.parametrize("oof_model", ["network", "logistic"])
def test_finds_flipped_labels(problem, fits, oof_model):
    fit = fits[oof_model]
    n, c = problem.num_train, problem.num_classes
    assert fit.weight_mean.shape == (n,) and fit.issues.shape == (n,) and fit.issues.dtype == bool
    assert fit.test_probs.shape == (problem.x_test.shape[0], c)
    np.testing.assert_allclose(fit.test_probs.sum(1), 1.0, atol=1e-5)
    assert fit.kept == int((~fit.issues).sum()) and 0 < fit.kept < n
    assert fit.config["oof_model"] == oof_model and fit.oof_seconds > 0
    assert fit.accuracy_trace and fit.accuracy_trace[-1][0] == FAST["steps"]

    assert selection_auroc(fit.weight_mean, problem.corrupted) > MIN_AUROC[oof_model]
    assert problem.corrupted[fit.issues].mean() > MIN_PRECISION
    accuracy = float((fit.test_probs.argmax(1) == problem.y_test).mean())
    assert accuracy == pytest.approx(fit.test_accuracy)
    assert accuracy > MIN_ACCURACY


@pytest.mark.parametrize("oof_model", ["network", "logistic"])
def test_auroc_assertion_has_power(problem, fits, oof_model):
    """The same scores with their link to the labels broken (shuffled) give an AUROC near 0.5 and
    would fail the threshold above."""
    shuffled = np.random.default_rng(0).permutation(fits[oof_model].weight_mean)
    auroc = selection_auroc(shuffled, problem.corrupted)
    assert abs(auroc - 0.5) < 0.07  # sd of a random ranking here is about 0.017
    assert auroc < MIN_AUROC[oof_model]


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("fit_sgd was called before the input was checked")

    monkeypatch.setattr(label_issues, "fit_sgd", refuse)


@pytest.mark.parametrize(
    ("field", "value"),
    [("oof_model", "svm"), ("oof_model", None), ("folds", 1), ("folds", 2.5), ("folds", True),
     ("folds", 10_000), ("steps", 0), ("steps", "300"), ("filter_by", "nope")],
)
def test_bad_config_raises_before_training(problem, no_training, field, value):
    config = CleanlabConfig(**{**FAST, field: value})
    with pytest.raises(ValidationError) as err:
        fit_cleanlab(problem, config, progress=False)
    assert err.value.argument == field


def test_regression_problem_raises_before_training(no_training):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 3)).astype(np.float32), rng.normal(size=30)
    regression = SelectionProblem("reg", x[:20], y[:20], x[20:25], y[20:25], x[25:], y[25:], None)
    with pytest.raises(ValidationError, match="classification only") as err:
        fit_cleanlab(regression, CleanlabConfig(**FAST), progress=False)
    assert err.value.argument == "problem"


@pytest.mark.parametrize("likelihood", [Gaussian(1.0), Categorical(3)])
def test_wrong_likelihood_raises_before_training(problem, no_training, likelihood):
    with pytest.raises(ValidationError) as err:
        fit_cleanlab(problem, CleanlabConfig(**FAST), likelihood=likelihood, progress=False)
    assert err.value.argument == "likelihood"


def test_missing_cleanlab_names_the_extra(problem, no_training, monkeypatch):
    for name in ("cleanlab", "cleanlab.filter", "cleanlab.rank"):
        monkeypatch.setitem(sys.modules, name, None)  # a None entry makes the import fail
    with pytest.raises(ValidationError, match=r"pyrodps\[cleanlab\]") as err:
        fit_cleanlab(problem, CleanlabConfig(**FAST), progress=False)
    assert err.value.argument == "method"


def test_same_seed_same_result(problem, fits):
    again = fit_cleanlab(problem, CleanlabConfig(oof_model="network", **FAST), seed=0, progress=False)
    first = fits["network"]
    np.testing.assert_array_equal(again.test_probs, first.test_probs)
    np.testing.assert_array_equal(again.weight_mean, first.weight_mean)
    np.testing.assert_array_equal(again.issues, first.issues)
    assert again.accuracy_trace == first.accuracy_trace and again.kept == first.kept


def test_cleanlab_runs_on_a_problem_with_weight_groups():
    """The cleaned training set cuts every per-point array alike, the weight groups included."""
    from pyrodps.data import make_scenario

    p = make_scenario("digits-source-noise", seed=0)
    keep = np.arange(p.num_train) % 4 != 0
    sub = p.train_subset(keep)
    assert sub.num_train == keep.sum() and np.array_equal(sub.weight_groups, p.weight_groups[keep])
    assert np.array_equal(sub.corrupted, p.corrupted[keep])
    relabelled = p.train_subset(keep, np.zeros(p.num_train, dtype=np.int64))
    assert (relabelled.y_train == 0).all()
    pytest.importorskip("cleanlab")
    from pyrodps.baselines.label_issues import CleanlabConfig, fit_cleanlab

    fit = fit_cleanlab(p, CleanlabConfig(steps=30, oof_model="logistic"), progress=False)
    assert np.isfinite(fit.test_accuracy)
