"""Regression problems: validation, the task and default likelihood, the bundled outlier scenarios,
bring-your-own float targets, the task-specific metrics and the shared networks."""

import numpy as np
import pytest
import torch

from pyrodps import ValidationError
from pyrodps.data import (
    SCENARIOS,
    load_npz_problem,
    make_scenario,
    problem_from_arrays,
    scenario_options,
)
from pyrodps.data.regression import outlier_targets
from pyrodps.diagnostics.metrics import predictive_scores
from pyrodps.models.likelihoods import Categorical, Gaussian
from pyrodps.models.networks import default_network, input_family
from pyrodps.models.problem import SelectionProblem, default_likelihood

REGRESSION = ("friedman-outliers", "diabetes-outliers")


def arrays(n=20, m=5, t=7, d=3, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.normal(size=(n, d)).astype(np.float32), "y_train": rng.normal(size=n).astype(dtype),
        "x_meta": rng.normal(size=(m, d)).astype(np.float32), "y_meta": rng.normal(size=m).astype(dtype),
        "x_test": rng.normal(size=(t, d)).astype(np.float32), "y_test": rng.normal(size=t).astype(dtype),
    }


# ---------------------------------------------------------------------------------------------
# SelectionProblem


def test_regression_problem_has_its_task_and_a_gaussian_scaled_by_the_meta_targets():
    a = arrays()
    p = SelectionProblem("r", **a, num_classes=None)
    assert p.task == "regression"
    lik = default_likelihood(p)
    assert isinstance(lik, Gaussian) and lik.task == "regression"
    assert lik.scale == pytest.approx(np.std(a["y_meta"], ddof=1))
    # the rule follows the units of y
    scaled = SelectionProblem("r", **{**a, "y_meta": 10 * a["y_meta"]}, num_classes=None)
    assert default_likelihood(scaled).scale == pytest.approx(10 * lik.scale)
    # one meta point, or constant meta targets: scale 1
    const = SelectionProblem("r", **{**a, "y_meta": np.zeros(5, np.float32)}, num_classes=None)
    assert default_likelihood(const).scale == 1.0


def test_classification_problem_keeps_its_categorical():
    a = arrays()
    labels = {k: (np.abs(v) * 2).astype(np.int64) % 3 for k, v in a.items() if k.startswith("y")}
    p = SelectionProblem("c", **{**a, **labels}, num_classes=3)
    assert p.task == "classification"
    lik = default_likelihood(p)
    assert isinstance(lik, Categorical) and lik.num_classes == 3


@pytest.mark.parametrize(
    "change,argument",
    [
        ({"y_train": np.arange(20)}, "y_train"),  # integer targets for regression
        ({"y_meta": np.array([0.0, 1.0, np.nan, 0.0, 0.0], np.float32)}, "y_meta"),
        ({"y_test": np.full(7, np.inf)}, "y_test"),
        ({"y_train": np.zeros((20, 1), np.float32)}, "y_train"),
        ({"y_train": np.zeros(20, bool)}, "y_train"),
        ({"num_classes": 1}, "num_classes"),
        ({"num_classes": 2.5}, "num_classes"),
    ],
)
def test_bad_regression_problem_names_the_argument(change, argument):
    fields = {**arrays(), "num_classes": None, **change}
    with pytest.raises(ValidationError) as e:
        SelectionProblem("r", **fields)
    assert e.value.argument == argument


def test_float_labels_with_num_classes_are_still_rejected():
    with pytest.raises(ValidationError) as e:
        SelectionProblem("c", **arrays(), num_classes=3)
    assert e.value.argument == "y_train" and "integers" in str(e.value)


# ---------------------------------------------------------------------------------------------
# scenarios


@pytest.mark.parametrize("name", REGRESSION)
def test_outlier_scenario_shapes_and_ground_truth(name):
    opts = scenario_options(name)
    assert name in SCENARIOS and opts["seed"] == 0 and opts["outlier_rate"] == 0.3
    p = make_scenario(name, seed=1)
    assert p.name == name and p.task == "regression" and p.num_classes is None
    assert p.x_meta.shape == (50, 10) and p.x_train.shape[1:] == (10,)
    for x, y in ((p.x_train, p.y_train), (p.x_meta, p.y_meta), (p.x_test, p.y_test)):
        assert x.dtype == np.float32 and y.dtype == np.float32 and y.ndim == 1
    assert p.corrupted.sum() == round(0.3 * p.num_train) and set(p.groups()) == {"corrupted", "clean"}
    # standardised with the clean non-test part: clean targets about N(0, 1), outliers 5 sds away
    clean = np.concatenate([p.y_train[~p.corrupted], p.y_meta])
    assert abs(clean.mean()) < 0.15 and 0.85 < clean.std() < 1.15
    assert np.abs(np.concatenate([p.x_train, p.x_meta]).mean(0)).max() < 0.2
    assert np.median(np.abs(p.y_train[p.corrupted])) > 3.5 > np.median(np.abs(clean))


@pytest.mark.parametrize("name", REGRESSION)
def test_outlier_rate_option_and_reproducibility(name):
    a, b = make_scenario(name, seed=2, outlier_rate=0.1), make_scenario(name, seed=2, outlier_rate=0.1)
    assert a.corrupted.sum() == round(0.1 * a.num_train)
    assert np.array_equal(a.y_train, b.y_train) and np.array_equal(a.corrupted, b.corrupted)
    assert not np.array_equal(a.y_test, make_scenario(name, seed=3).y_test)
    assert make_scenario(name, outlier_rate=0.0).corrupted.sum() == 0


def test_outlier_targets_shift_exactly_the_marked_points():
    y = np.linspace(-1, 1, 40).astype(np.float32)
    y_out, mask = outlier_targets(y, 0.25, 6.0, np.random.default_rng(0))
    assert mask.sum() == 10 and np.array_equal(y_out[~mask], y[~mask])
    assert np.allclose(np.abs(y_out[mask] - y[mask]), 6.0)
    assert {-6.0, 6.0} == set(np.round(y_out[mask] - y[mask], 4))  # both signs drawn here
    assert y_out.dtype == np.float32


@pytest.mark.parametrize(
    "name,options,argument",
    [
        ("friedman-outliers", {"outlier_rate": 1.0}, "outlier_rate"),
        ("friedman-outliers", {"outlier_scale": 0.0}, "outlier_scale"),
        ("friedman-outliers", {"noise": -1.0}, "noise"),
        ("friedman-outliers", {"num_samples": 1}, "num_samples"),
        ("diabetes-outliers", {"meta_size": 0}, "meta_size"),
        ("diabetes-outliers", {"meta_size": 400}, "meta_size"),
        ("diabetes-outliers", {"seed": -1}, "seed"),
        ("diabetes-outliers", {"meta_per_class": 5}, "meta_per_class"),
    ],
)
def test_bad_outlier_options_name_the_argument(name, options, argument):
    with pytest.raises(ValidationError) as e:
        make_scenario(name, **options)
    assert e.value.argument == argument


# ---------------------------------------------------------------------------------------------
# bring your own data


def test_float_targets_make_a_regression_problem(tmp_path):
    a = arrays(dtype=np.float64)
    p = problem_from_arrays(*a.values())
    assert p.task == "regression" and p.y_train.dtype == np.float32
    for role, (x, y) in {"train": ("x_train", "y_train"), "meta": ("x_meta", "y_meta"),
                         "test": ("x_test", "y_test")}.items():
        np.savez(tmp_path / f"{role}.npz", X=a[x], y=a[y])
    q = load_npz_problem(tmp_path / "train.npz", tmp_path / "meta.npz", tmp_path / "test.npz")
    assert q.task == "regression" and np.allclose(q.y_test, a["y_test"])


def test_explicit_task_decides_for_integer_targets():
    a = arrays()
    ints = {k: (np.abs(v) * 3).astype(np.int64) for k, v in a.items() if k.startswith("y")}
    assert problem_from_arrays(**{**a, **ints}).task == "classification"
    p = problem_from_arrays(**{**a, **ints}, task="regression")
    assert p.task == "regression" and p.y_meta.dtype == np.float32
    with pytest.raises(ValidationError) as e:
        problem_from_arrays(**a, task="classification")
    assert e.value.argument == "y_train"
    with pytest.raises(ValidationError) as e:
        problem_from_arrays(**a, task="regression", num_classes=3)
    assert e.value.argument == "num_classes"
    with pytest.raises(ValidationError) as e:
        problem_from_arrays(**a, task="ordinal")
    assert e.value.argument == "task"


# ---------------------------------------------------------------------------------------------
# metrics and networks


def test_predictive_scores_by_task():
    y = np.array([0.0, 1.0, 2.0, 3.0])
    assert predictive_scores(np.array([0.0, 1.0, 2.0, 5.0]), y, "regression") == {
        "test_rmse": pytest.approx(1.0), "test_mae": pytest.approx(0.5)
    }
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert predictive_scores(probs, np.array([0, 1, 1]), "classification") == {
        "test_accuracy": pytest.approx(2 / 3), "balanced_accuracy": pytest.approx(0.75)
    }
    with pytest.raises(ValueError):
        predictive_scores(probs, y, "ranking")


def test_default_network_output_width_follows_the_task():
    p = make_scenario("diabetes-outliers")
    assert input_family(p) == "vector"
    net = default_network(p, (8,), seed=0)
    assert net(torch.zeros(2, 10)).shape == (2, 1)
    assert default_network(p, (8,), seed=0, out_features=3)(torch.zeros(2, 10)).shape == (2, 3)
    state = torch.random.get_rng_state()
    again = default_network(p, (8,), seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is left alone
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), again.parameters(), strict=True))
