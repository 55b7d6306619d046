"""Vector inputs are standardised with the train+meta moments; raw ones left unscaled get a warning."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import pytest

from pyrodps.app.cli import main
from pyrodps.app.methods import run_method
from pyrodps.data import make_scenario
from pyrodps.data.scaling import RawFeaturesWarning, far_from_standardised, standardise_inputs
from pyrodps.errors import ValidationError


@pytest.fixture(scope="module")
def raw():
    """Digits with every pixel given its own scale and offset, as raw tabular features have."""
    p = make_scenario("digits-label-noise", seed=0)
    rng = np.random.default_rng(1)
    a = rng.uniform(10, 1000, size=p.x_train.shape[1]).astype(np.float32)
    b = rng.uniform(-500, 500, size=p.x_train.shape[1]).astype(np.float32)
    return replace(p, x_train=p.x_train * a + b, x_meta=p.x_meta * a + b, x_test=p.x_test * a + b)


def test_standardising_uses_train_and_meta_moments_only(raw):
    scaled, record = standardise_inputs(raw, "on")
    both = np.concatenate([scaled.x_train, scaled.x_meta])
    varying = both.std(0) > 0
    np.testing.assert_allclose(both.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(both.std(0)[varying], 1.0, rtol=1e-4)
    mean, sd = np.array(record["mean"]), np.array(record["sd"])
    expected = (raw.x_test.astype(np.float64) - mean) / np.where(sd > 0, sd, 1.0)
    np.testing.assert_allclose(scaled.x_test, expected, rtol=1e-5, atol=1e-5)  # the test set is not refitted
    assert record["applied"] and not far_from_standardised(scaled) and far_from_standardised(raw)


def test_raw_inputs_left_unscaled_warn_and_scenarios_are_not_rescaled(raw):
    with pytest.warns(RawFeaturesWarning, match="far from standardised"):
        same, record = standardise_inputs(raw, "off")
    assert same is raw and not record["applied"]
    digits = make_scenario("digits-label-noise", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auto, record = standardise_inputs(digits, "auto", user_data=False)  # scaled by construction: no warning
    assert auto is digits and not record["applied"]
    with pytest.raises(ValidationError, match="standardise"):
        standardise_inputs(digits, "sometimes")


def test_standardising_raw_features_is_what_makes_bads_work(raw):
    """The measured case for the default: BADS on the raw features vs on standardised ones."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RawFeaturesWarning)
        scores = {mode: run_method(standardise_inputs(raw, mode)[0], "bads", seed=0, steps=600, progress=False)
                  .metrics(raw)["test_accuracy"] for mode in ("on", "off")}
    assert scores["on"] >= scores["off"] + 0.03, scores


def test_user_files_are_standardised_by_default_and_recorded(raw, tmp_path, capsys):
    for name, x, y in (("train", raw.x_train, raw.y_train), ("meta", raw.x_meta, raw.y_meta), ("test", raw.x_test, raw.y_test)):
        np.savez(tmp_path / f"{name}.npz", X=x, y=y)
    files = [f"--{k}" if i % 2 == 0 else str(tmp_path / f"{k}.npz") for k in ("train", "meta", "test") for i in (0, 1)]
    assert main(["run", *files, "--method", "mixing", "--steps", "20", "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["standardise"]["mode"] == "auto" and config["standardise"]["applied"]
    assert len(config["standardise"]["mean"]) == raw.x_train.shape[1]
    assert main(["run", *files, "--method", "mixing", "--steps", "20", "--out", str(tmp_path / "b"), "--no-progress",
                 "--standardise", "off"]) == 0
    assert "far from standardised" in capsys.readouterr().err
    assert not json.loads((tmp_path / "b" / "config.json").read_text())["standardise"]["applied"]


def test_hidden_sizes_reach_every_method(tmp_path):
    p = make_scenario("digits-label-noise", seed=0)
    for method in ("bads", "mixing", "l2rw"):
        res = run_method(p, method, seed=0, steps=5, progress=False, hidden=())
        assert tuple(res.config["hidden"]) == ()
    assert main(["run", "--scenario", "digits-label-noise", "--method", "mixing", "--hidden", "32", "--steps", "5",
                 "--out", str(tmp_path / "h"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "h" / "config.json").read_text())["config"]["hidden"] == [32]


def test_small_tables_get_the_small_network_and_every_method_the_same_one():
    from pyrodps.models.networks import DEFAULT_HIDDEN, SMALL_TABLE_HIDDEN, default_hidden

    assert default_hidden("vector", 279, 7, 3) == SMALL_TABLE_HIDDEN  # the cars table
    assert default_hidden("vector", 1207, 64, 10) == DEFAULT_HIDDEN  # digits: too many rows and features
    assert default_hidden("vector", 288, 64, 10) == DEFAULT_HIDDEN  # the digits long tail: pixels, not a table
    assert default_hidden("vector", 1070, 4, 5) == DEFAULT_HIDDEN
    assert default_hidden("vector", 279, None, 3) == DEFAULT_HIDDEN  # features unknown
    assert default_hidden("vector", 259, 10, None) == DEFAULT_HIDDEN  # regression (diabetes)
    assert default_hidden("sequence", 100, 40, 10) == DEFAULT_HIDDEN
    p = make_scenario("iris-label-noise", seed=0)
    widths = {}
    for method in ("bads", "mixing", "oracle", "l2rw", "cleanlab-logreg"):
        res = run_method(p, method, seed=0, steps=5, progress=False)
        widths[method] = tuple(res.config["hidden"])
    assert set(widths.values()) == {SMALL_TABLE_HIDDEN}, widths
    assert tuple(run_method(p, "mixing", seed=0, steps=5, progress=False, hidden=(8,)).config["hidden"]) == (8,)
