"""Every method through one interface; the naive baselines' training sets; balanced accuracy."""

import numpy as np
import pytest

from pyrodps.app.methods import BLO_METHODS, METHODS, run_method
from pyrodps.baselines import kept_fraction, naive_training_set
from pyrodps.data import make_scenario
from pyrodps.diagnostics import balanced_accuracy
from pyrodps.errors import ValidationError


@pytest.fixture(scope="module")
def problem():
    return make_scenario("digits-label-noise", seed=0)


def test_naive_training_sets(problem):
    rng = np.random.default_rng(0)
    n, m = problem.num_train, problem.x_meta.shape[0]
    assert naive_training_set(problem, "mixing", rng)[0].shape[0] == n + m
    x, y = naive_training_set(problem, "meta-only", rng)
    assert np.array_equal(x, problem.x_meta) and np.array_equal(y, problem.y_meta)
    x, _ = naive_training_set(problem, "dup-meta", rng)
    assert x.shape[0] == n + m * int(np.ceil(n / m))
    x, y = naive_training_set(problem, "oracle", rng)
    clean = ~problem.corrupted
    assert x.shape[0] == clean.sum() + m and np.array_equal(y[: clean.sum()], problem.y_train[clean])
    x, _ = naive_training_set(problem, "random-select", rng, keep_fraction=0.25)
    assert x.shape[0] == round(0.25 * n) + m
    with pytest.raises(ValidationError, match="keep_fraction"):
        naive_training_set(problem, "random-select", rng, keep_fraction=0.0)


def test_kept_fraction():
    assert kept_fraction(np.ones(10)) == pytest.approx(1.0)
    assert kept_fraction(np.r_[np.ones(3), np.zeros(7)]) == pytest.approx(0.3)


def test_balanced_accuracy():
    y = np.array([0, 0, 0, 1])
    probs = np.eye(2)[[0, 0, 0, 0]]
    assert balanced_accuracy(probs, y) == pytest.approx(0.5)
    assert balanced_accuracy(np.eye(2)[y], y) == 1.0


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs_and_reports(problem, method):
    res = run_method(problem, method, seed=0, steps=60, progress=False)
    m = res.metrics(problem)
    assert 0.0 <= m["test_accuracy"] <= 1.0 and 0.0 <= m["balanced_accuracy"] <= 1.0
    assert res.test_probs.shape == (problem.x_test.shape[0], problem.num_classes)
    if method.startswith("bads") or method in (*BLO_METHODS, "class-balanced", "cleanlab", "cleanlab-logreg"):
        assert m["selection_auroc"] is not None and "mean_weight_corrupted" in m and "kept_fraction" in m
        assert res.weight_mean.shape == (problem.num_train,)
    else:
        assert m["selection_auroc"] is None and res.weight_mean is None


def test_unknown_method(problem):
    with pytest.raises(ValidationError, match="method"):
        run_method(problem, "no-such-method", progress=False)


def test_weight_network_finds_mislabelled_points(problem):
    """The amortised weights (features: loss, label) single out the flipped labels too."""
    res = run_method(problem, "bads-weightnet", seed=0, steps=1500, progress=False)
    m = res.metrics(problem)
    assert m["selection_auroc"] >= 0.95
    assert m["mean_weight_corrupted"] < m["mean_weight_clean"]


def test_class_balanced_weights_are_inverse_class_frequencies_with_mean_one():
    from pyrodps.baselines.naive import class_balanced_weights

    y = np.array([0, 0, 0, 1, 2, 2])
    w = class_balanced_weights(y, 4)  # class 3 absent: C counts the classes present
    np.testing.assert_allclose(w, [6 / 9, 6 / 9, 6 / 9, 2.0, 1.0, 1.0])
    assert w.mean() == pytest.approx(1.0)
    with pytest.raises(ValidationError, match="method"):
        class_balanced_weights(y, None)


def test_class_balanced_changes_the_fit_and_reports_its_weights():
    problem = make_scenario("digits-imbalance", seed=0)
    cb = run_method(problem, "class-balanced", seed=0, steps=60, progress=False)
    mixing = run_method(problem, "mixing", seed=0, steps=60, progress=False)
    assert cb.weight_mean.shape == (problem.num_train,)
    assert cb.weight_mean[problem.minority].min() > cb.weight_mean[~problem.minority].max()
    assert not np.array_equal(cb.test_probs, mixing.test_probs)
    with pytest.raises(ValidationError, match="method"):
        run_method(make_scenario("friedman-outliers", seed=0), "class-balanced", steps=5, progress=False)
