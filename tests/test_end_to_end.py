"""End to end on digits with 40 % uniform label noise, through the command line."""

import json

import numpy as np
import pytest

from pyrodps.cli import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for method in ("bads", "sgd"):
        rc = main(["run", "--scenario", "digits-label-noise", "--method", method, "--out", str(root / method),
                   "--seed", "0", "--no-progress"])
        assert rc == 0
    return root


def test_outputs_are_complete(runs):
    m = json.loads((runs / "bads" / "metrics.json").read_text())
    for key in ("scenario", "method", "seed", "steps", "wall_seconds", "test_accuracy", "selection_auroc"):
        assert key in m
    w = np.load(runs / "bads" / "weights.npz")
    n = m["num_train"]
    assert w["mean"].shape == w["std"].shape == w["corrupted"].shape == (n,)
    assert np.all((w["mean"] > 0) & (w["mean"] < 1)) and np.all(w["std"] > 0)
    assert abs(w["corrupted"].mean() - 0.4) < 0.01


def test_bads_finds_the_mislabelled_points_and_beats_sgd(runs):
    bads = json.loads((runs / "bads" / "metrics.json").read_text())
    sgd = json.loads((runs / "sgd" / "metrics.json").read_text())
    assert bads["selection_auroc"] >= 0.95
    assert bads["mean_weight_corrupted"] < 0.5 * bads["mean_weight_clean"]
    assert bads["test_accuracy"] >= 0.90
    assert bads["test_accuracy"] >= sgd["test_accuracy"] + 0.01
    assert sgd["selection_auroc"] is None
