"""Fuzzed bad input: every generated case ends in a typed pyrodps error that names the argument,
raised before any work starts, with no output written.

Each test draws one valid input and applies one generated corruption; hypothesis runs with a fixed
seed (``derandomize``), so CI sees the same cases every time. The number of cases that ran is
printed at the end of the session (see ``conftest.py``).
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrodps import BADSConfig, ValidationError, fit_bads
from pyrodps.app.cli import main
from pyrodps.baselines.sgd import SGDConfig, fit_sgd
from pyrodps.data.byo import problem_from_arrays
from pyrodps.errors import PyrodpsError

FUZZ_CASES = {"count": 0}
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

N, M, T, D, C = 24, 6, 6, 5, 3


def _valid_arrays(seed: int = 0) -> dict:
    r = np.random.default_rng(seed)
    return {
        "x_train": r.normal(size=(N, D)).astype(np.float32), "y_train": r.integers(0, C, N),
        "x_meta": r.normal(size=(M, D)).astype(np.float32), "y_meta": np.arange(M) % C,
        "x_test": r.normal(size=(T, D)).astype(np.float32), "y_test": np.arange(T) % C,
        "num_classes": C,
    }


NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
SETS = st.sampled_from(["train", "meta", "test"])


@st.composite
def corrupted_arrays(draw) -> tuple[dict, str]:
    """Valid arrays with one generated defect; returns the arrays and the argument to blame."""
    a = _valid_arrays(draw(st.integers(0, 3)))
    role = draw(SETS)
    x, y = f"x_{role}", f"y_{role}"
    n = a[x].shape[0]
    kind = draw(st.sampled_from([
        "nonfinite", "label_high", "label_negative", "float_labels", "label_length", "empty", "x_1d",
        "feature_shape", "bool_inputs", "complex_inputs", "string_inputs", "labels_2d", "num_classes",
        "mask_shape", "mask_dtype", "meta_device", "object_inputs",
    ]))
    if kind == "nonfinite":
        xs = a[x].copy()
        xs[draw(st.integers(0, n - 1)), draw(st.integers(0, D - 1))] = draw(NON_FINITE)
        a[x] = xs
        return a, x
    if kind == "label_high":
        ys = a[y].copy()
        ys[draw(st.integers(0, n - 1))] = draw(st.integers(C, 10**6))
        a[y] = ys
        return a, y
    if kind == "label_negative":
        ys = a[y].copy()
        ys[draw(st.integers(0, n - 1))] = draw(st.integers(-(10**6), -1))
        a[y] = ys
        return a, y
    if kind == "float_labels":
        a[y] = a[y].astype(draw(st.sampled_from([np.float32, np.float64]))) + draw(st.sampled_from([0.0, 0.5]))
        return a, y
    if kind == "label_length":
        k = draw(st.integers(0, n - 1)) if draw(st.booleans()) else n + draw(st.integers(1, 5))
        a[y] = np.resize(a[y], k)
        return a, y
    if kind == "empty":
        a[x], a[y] = a[x][:0], a[y][:0]
        return a, x
    if kind == "x_1d":
        a[x] = a[x][:, 0].copy()
        return a, x
    if kind == "feature_shape":
        role = draw(st.sampled_from(["meta", "test"]))
        x = f"x_{role}"
        a[x] = np.zeros((a[x].shape[0], D + draw(st.integers(1, 3))), np.float32)
        return a, x
    if kind == "bool_inputs":
        a[x] = a[x] > 0
        return a, x
    if kind == "complex_inputs":
        a[x] = a[x].astype(np.complex64)
        return a, x
    if kind == "string_inputs":
        a[x] = a[x].astype(str)
        return a, x
    if kind == "object_inputs":
        a[x] = [[object()] * D] * n
        return a, x
    if kind == "labels_2d":
        a[y] = a[y][:, None]
        return a, y
    if kind == "num_classes":
        a["num_classes"] = draw(st.sampled_from([-3, 0, 1, 2.5, "ten", True]))
        return a, "num_classes"
    if kind == "mask_shape":
        a["corrupted"] = np.zeros(draw(st.integers(0, 2 * N).filter(lambda k: k != N)), bool)
        return a, "corrupted"
    if kind == "mask_dtype":
        a["corrupted"] = np.zeros(N, draw(st.sampled_from([np.int64, np.float32])))
        return a, "corrupted"
    # meta_device: a tensor that lives on no real device (torch's "meta" device)
    a[x] = torch.empty(a[x].shape, device="meta")
    return a, x


def _count() -> None:
    FUZZ_CASES["count"] += 1


@FUZZ
@given(case=corrupted_arrays())
def test_fuzzed_arrays_raise_validation_error_naming_the_argument(case):
    kwargs, argument = case
    _count()
    with pytest.raises(ValidationError) as e:
        problem_from_arrays(**kwargs)
    assert e.value.argument == argument, str(e.value)


# --------------------------------------------------------------------------- hyperparameters
BAD_NUMBERS = st.sampled_from([0.0, -1.0, -1e-9, math.nan, math.inf, -math.inf])
BAD_INTS = st.one_of(st.integers(-10**6, 0), st.sampled_from([1.5, "3", math.nan]))


@st.composite
def bad_bads_config(draw) -> tuple[partial, str]:
    """A BADS configuration with one out-of-range field, not yet made; returns it and the argument to blame."""
    field = draw(st.sampled_from([
        "steps", "thin", "chains", "batch_size", "meta_batch_size", "step_size", "weight_step_size",
        "temperature", "rho_theta", "rho_meta", "meta_share", "rho_phi", "step_decay_gamma", "burn_in",
        "average_window", "weight_prior", "log_z", "weights", "beta", "sigma", "beta_a", "prior_kwarg",
        "theta_prior", "theta_prior_scale", "theta_prior_gain", "weight_decay", "theta_prior_kwargs",
        "loss_reference", "burn_in_fraction",
        "hidden", "weight_net_hidden", "weight_net_features",
    ]))
    base = {"batch_size": 8}
    if field in ("steps", "thin", "chains"):
        return partial(BADSConfig, **{**base, field: draw(BAD_INTS)}), field
    if field == "weight_net_hidden":  # 0 is the linear map of grouped weights
        return partial(BADSConfig, **base, weight_net_hidden=draw(BAD_INTS.filter(lambda v: v != 0))), field
    if field == "batch_size":
        return partial(BADSConfig, batch_size=draw(st.one_of(BAD_INTS, st.integers(N + 1, 10**6)))), field
    if field == "meta_batch_size":
        return partial(BADSConfig, **base, meta_batch_size=draw(st.one_of(BAD_INTS, st.integers(M + 1, 10**6)))), field
    if field in ("step_size", "weight_step_size", "temperature", "rho_theta", "meta_share", "rho_phi"):
        return partial(BADSConfig, **{**base, field: draw(BAD_NUMBERS)}), field
    if field == "rho_meta":
        return partial(BADSConfig, **base, meta_share=None, rho_meta=draw(BAD_NUMBERS)), field
    if field in ("theta_prior_scale", "theta_prior_gain", "weight_decay"):
        name, key = {"theta_prior_scale": ("isotropic", "scale"), "theta_prior_gain": ("fan-in", "gain"),
                     "weight_decay": ("calibrated", "weight_decay")}[field]
        return partial(BADSConfig, **base, theta_prior=name, theta_prior_kwargs={key: draw(BAD_NUMBERS)}), field
    if field == "theta_prior_kwargs":
        name = draw(st.sampled_from(["isotropic", "fan-in", "calibrated"]))
        return partial(BADSConfig, **base, theta_prior=name, theta_prior_kwargs={draw(st.sampled_from(["sd", "c", "x"])): 1.0}), field
    if field == "burn_in_fraction":
        f = draw(st.one_of(st.floats(-5, -1e-9), st.floats(1, 5), NON_FINITE))
        return partial(BADSConfig, **base, burn_in_fraction=f), field
    if field in ("theta_prior", "loss_reference"):
        return partial(BADSConfig, **{**base, field: draw(st.text(max_size=8).filter(
            lambda s: s not in ("isotropic", "fan-in", "calibrated", "saturated", "none")))}), field
    if field == "step_decay_gamma":
        g = draw(st.one_of(st.floats(-10, 0.5), st.floats(1.0, 10, exclude_min=True), NON_FINITE))
        return partial(BADSConfig, **base, step_decay_gamma=g), field
    if field == "burn_in":
        return partial(BADSConfig, **base, steps=50, burn_in=draw(st.one_of(st.integers(50, 10**5), st.integers(-100, -1)))), field
    if field == "average_window":
        return partial(BADSConfig, **base, steps=50, average_window=draw(st.one_of(st.integers(51, 10**5), BAD_INTS))), field
    if field in ("weight_prior", "log_z", "weights"):
        return partial(BADSConfig, **{**base, field: draw(st.text(max_size=8).filter(
            lambda s: s not in ("uniform", "beta", "truncated-gaussian", "ignore", "companion", "table", "network")))}), field
    if field == "beta":
        b = draw(st.one_of(st.floats(-5, 0), st.floats(1, 5), NON_FINITE))
        return partial(BADSConfig, **base, weight_prior="truncated-gaussian", weight_prior_kwargs={"beta": b}), "beta"
    if field == "sigma":
        return partial(BADSConfig, **base, weight_prior="truncated-gaussian", weight_prior_kwargs={"sigma": draw(BAD_NUMBERS)}), "sigma"
    if field == "beta_a":
        which = draw(st.sampled_from(["a", "b"]))
        return partial(BADSConfig, **base, weight_prior="beta", weight_prior_kwargs={which: draw(BAD_NUMBERS)}), f"beta_{which}"
    if field == "prior_kwarg":
        name = draw(st.sampled_from(["alpha", "scale", "mu", "x"]))
        return partial(BADSConfig, **base, weight_prior=draw(st.sampled_from(["uniform", "beta", "truncated-gaussian"])),
                          weight_prior_kwargs={name: 1.0}), "weight_prior_kwargs"
    if field == "hidden":
        h = draw(st.sampled_from([(0,), (-4, 8), (8, 0), ("a",), (2.5,)]))
        return partial(BADSConfig, **base, hidden=h), "hidden"
    return partial(BADSConfig, **base, weights="network", weight_net_features=draw(st.sampled_from(
        [(), ("pixels",), ("loss", "colour"), ("label", "label")]))), "weight_net_features"


@pytest.fixture(scope="module")
def toy_problem():
    return problem_from_arrays(**_valid_arrays())


@FUZZ
@given(case=bad_bads_config())
def test_fuzzed_bads_config_fails_before_sampling(case, toy_problem, monkeypatch):
    import pyrodps.bads.fit as sel

    def no_sampling(*a, **k):
        raise AssertionError("sampling started before validation")

    monkeypatch.setattr(sel, "sample", no_sampling)
    make_config, argument = case  # a bad config cannot be made: it is built inside the check
    _count()
    with pytest.raises(ValidationError) as e:
        fit_bads(toy_problem, make_config(), progress=False)
    assert e.value.argument == argument, str(e.value)


@st.composite
def bad_sgd_config(draw) -> tuple[SGDConfig, str]:
    field = draw(st.sampled_from(["steps", "batch_size", "lr", "momentum", "weight_decay", "hidden"]))
    if field in ("steps", "batch_size"):
        return SGDConfig(**{field: draw(BAD_INTS)}), field
    if field == "lr":
        return SGDConfig(lr=draw(BAD_NUMBERS)), field
    if field == "momentum":
        return SGDConfig(momentum=draw(st.one_of(st.floats(-5, 0, exclude_max=True), st.floats(1, 5), NON_FINITE))), field
    if field == "weight_decay":
        return SGDConfig(weight_decay=draw(st.one_of(st.floats(-5, 0, exclude_max=True), NON_FINITE))), field
    return SGDConfig(hidden=draw(st.sampled_from([(0,), (-1,), (4, "b")]))), "hidden"


@FUZZ
@given(case=bad_sgd_config())
def test_fuzzed_sgd_config_fails_before_training(case, toy_problem):
    config, argument = case
    _count()
    with pytest.raises(ValidationError) as e:
        fit_sgd(toy_problem, config, progress=False)
    assert e.value.argument == argument, str(e.value)


# --------------------------------------------------------------------------- command line
@st.composite
def bad_cli_args(draw) -> tuple[list[str], str]:
    """``pyrodps run`` arguments with one bad value; returns them and a word the message must hold."""
    args = {"--scenario": "digits-label-noise", "--method": "bads", "--steps": "5"}
    flag, value, needle = draw(st.sampled_from([
        ("--steps", st.integers(-10**6, 0).map(str), "steps"),
        ("--noise-rate", st.one_of(st.floats(1.0, 100), st.floats(-100, 0, exclude_max=True)).map(repr), "noise_rate"),
        ("--noise-rate", st.sampled_from(["nan", "inf", "-inf"]), "noise_rate"),
        ("--meta-per-class", st.one_of(st.integers(-100, 0), st.integers(10**4, 10**6)).map(str), "meta_per_class"),
        ("--noise-kind", st.text("abcxyz-", min_size=1, max_size=8), "noise_kind"),
        ("--method", st.text("abcxyz-", min_size=1, max_size=8), "method"),
        ("--scenario", st.text("abcxyz-", min_size=1, max_size=8), "scenario"),
        ("--seed", st.integers(-10**6, -1).map(str), "seed"),
        ("--imbalance-ratio", st.one_of(st.floats(-10, 1, exclude_max=True), st.sampled_from([math.nan])).map(repr),
         "imbalance_ratio"),
        ("--positive-ratio", st.one_of(st.floats(1.0, 10), st.floats(-10, 0)).map(repr), "positive_ratio"),
        ("--num-samples", st.integers(-100, 0).map(str), "num_samples"),
    ]))
    if flag in ("--imbalance-ratio",):
        args["--scenario"] = "digits-imbalance"
    if flag == "--positive-ratio":
        args["--scenario"] = "digits-binary-imbalance"
    if flag == "--num-samples":
        args["--scenario"] = "mnist1d-label-noise"
    args[flag] = draw(value)
    return [f"{k}={v}" for k, v in args.items()], needle  # "--x=-inf": a value may start with "-"


@FUZZ
@given(case=bad_cli_args())
def test_fuzzed_cli_arguments_exit_2_and_write_nothing(case, tmp_path_factory, capsys):
    argv, needle = case
    out = tmp_path_factory.mktemp("fuzz") / "out"
    _count()
    try:
        rc = main(["run", "--out", str(out), "--no-progress", *argv])
    except SystemExit as e:  # argparse's own usage errors exit 2 with a message, too
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert needle in err
    assert "Traceback" not in err
    assert not out.exists()


def test_fuzzed_npz_files(tmp_path):
    """Files that are missing, not archives, or lack arrays: ValidationError naming the role."""
    from pyrodps.data.byo import load_npz_problem

    a = _valid_arrays()
    good = {}
    for role in ("train", "meta", "test"):
        good[role] = tmp_path / f"{role}.npz"
        np.savez(good[role], X=a[f"x_{role}"], y=a[f"y_{role}"])
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    np.save(tmp_path / "single.npy", np.zeros(3))
    np.savez(tmp_path / "nox.npz", y=np.zeros(3, np.int64))
    np.savez(tmp_path / "short.npz", X=np.zeros((4, D), np.float32), y=np.zeros(3, np.int64))
    bad_files = [tmp_path / "missing.npz", tmp_path / "junk.npz", tmp_path / "single.npy", tmp_path / "nox.npz",
                 tmp_path / "short.npz", tmp_path]
    for role in ("train", "meta", "test"):
        for bad in bad_files:
            _count()
            paths = {**good, role: bad}
            with pytest.raises(ValidationError) as e:
                load_npz_problem(paths["train"], paths["meta"], paths["test"])
            assert e.value.argument == role


def test_errors_are_pyrodps_errors():
    assert issubclass(ValidationError, PyrodpsError) and issubclass(ValidationError, ValueError)
