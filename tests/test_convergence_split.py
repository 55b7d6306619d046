"""The split convergence verdict (:mod:`pyrodps.diagnostics.verdict`): within-chain stationarity and
agreement across chains decide; parameter space is reported and never decides.

Unit tests feed the pure :func:`assess_convergence` synthetic draws (fixed seeds) and show every check
can fail (a drift within a chain, chains in different modes, rank correlation, AUROC and accuracy
spreads) and passes otherwise; an end-to-end test runs ``pyrodps run`` then ``pyrodps report`` on a
deliberately short run and checks they write the same failing verdict."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import xarray as xr

from pyrodps.app.cli import main
from pyrodps.diagnostics.convergence import ConvergenceThresholds
from pyrodps.diagnostics.verdict import ACROSS, WITHIN, assess_convergence
from pyrodps.errors import ValidationError

POINTS, N = 30, 200


def _draws(chains: int = 2, draws: int = 1000, *, seed: int = 0) -> tuple[xr.Dataset, xr.Dataset]:
    """IID draws of every quantity a BADS run keeps; ``param_norm`` and ``theta_projection`` sit in a
    different mode per chain (as a network's chains do), which must not matter to the verdict."""
    rng = np.random.default_rng(seed)
    n = lambda *shape: rng.normal(size=(chains, draws, *shape))
    mode = 5.0 * np.arange(chains)[:, None]
    post = xr.Dataset({
        "train_nll": (("chain", "draw"), 0.5 + 0.05 * n()),
        "meta_nll": (("chain", "draw"), 0.3 + 0.05 * n()),
        "test_accuracy": (("chain", "draw"), 0.9 + 0.01 * n()),
        "param_norm": (("chain", "draw"), 20.0 + mode + 0.1 * n()),
        "theta_projection": (("chain", "draw", "projection"), mode[..., None] + 0.1 * n(2)),
        "w": (("chain", "draw", "point"), rng.uniform(size=(chains, draws, POINTS))),
    }, coords={"chain": np.arange(chains), "draw": np.arange(draws), "point": np.arange(POINTS) * 3})
    stats = xr.Dataset({"energy": (("chain", "draw"), 1e3 + 10 * n())},
                       coords={"chain": np.arange(chains), "draw": np.arange(draws)})
    return post, stats


def _agreeing_chains(chains: int = 2, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-chain posterior-mean weights that agree (tiny noise), and a mask the weights separate."""
    rng = np.random.default_rng(seed)
    corrupted = np.zeros(N, bool)
    corrupted[: N // 5] = True
    base = np.where(corrupted, rng.uniform(0.0, 0.3, N), rng.uniform(0.4, 1.0, N))
    return np.clip(base + 1e-3 * rng.normal(size=(chains, N)), 0, 1), corrupted


def _failed(report) -> list[tuple[str, int | None, str]]:
    return [(c.scope, c.chain, c.quantity) for c in report.function_space.checks if not c.passed]


def test_iid_draws_pass_whatever_the_parameter_space_says():
    post, stats = _draws()
    chain_mean, corrupted = _agreeing_chains()
    r = assess_convergence(post, stats, chain_mean, corrupted, [0.90, 0.905])
    assert r.passed and not _failed(r) and r.verdict().startswith("CONVERGED")
    d = r.to_dict()
    assert d["passed"] is True and d["function_space"]["passed"] is True
    scopes = {c["scope"] for c in d["function_space"]["checks"]}
    assert scopes == {WITHIN, ACROSS}
    for c in d["function_space"]["checks"]:
        assert set(c) >= {"name", "scope", "chain", "value", "threshold", "passed"}
        assert (c["chain"] is None) == (c["scope"] == ACROSS)
    # 2 chains x (4 scalars x (R-hat, ESS) + weight fraction), then pooled R-hat, 1 pair, AUROC, accuracy
    assert len(d["function_space"]["checks"]) == 2 * 9 + 4
    # the chains sit in different modes of θ: reported, with the explanation, and not in the verdict
    ps = d["parameter_space"]
    assert ps["in_verdict"] is False and "modes" in ps["explanation"]
    assert [q["name"] for q in ps["quantities"]] == ["param_norm", "theta_projection[0]", "theta_projection[1]"]
    assert all(q["rhat"] > 1.5 for q in ps["quantities"])
    assert ps["quantities"][0]["chain_means"] == pytest.approx([20.0, 25.0], abs=0.05)
    json.dumps(d, allow_nan=False)  # strict JSON


def test_a_drift_within_one_chain_fails_within_chain():
    """Power: a trend of one standard deviation over chain 1 fails its split R-hat; chain 0 passes."""
    post, stats = _draws()
    trend = xr.DataArray(np.linspace(0.0, 0.05, post.sizes["draw"]), dims="draw")
    post["train_nll"] = post["train_nll"] + trend * (post["chain"] == 1)
    post["w"] = post["w"] + 0.3 * trend / 0.05 * (post["chain"] == 1)
    r = assess_convergence(post, stats)
    assert not r.passed and not r.function_space.within_passed
    assert set(_failed(r)) >= {(WITHIN, 1, "train_nll"), (WITHIN, 1, "w")}
    assert not any(chain == 0 for _, chain, _ in _failed(r))
    drifting = next(c for c in r.function_space.checks if c.chain == 1 and c.name == "train_nll split R-hat")
    assert drifting.value > 1.02
    # the check, not the data, decides: loose thresholds let the same drift through
    loose = ConvergenceThresholds(max_rhat=2.0, min_ess_bulk_per_chain=10, min_weight_pass_fraction=0.0, max_rhat_across=2.0)
    assert assess_convergence(post, stats, thresholds=loose).passed


def test_weights_in_different_modes_fail_across_but_pass_within():
    post, stats = _draws()
    post["w"] = post["w"] + xr.DataArray([0.0, 0.5], dims="chain")  # each chain stationary, apart
    r = assess_convergence(post, stats)
    assert r.function_space.within_passed and r.function_space.across_passed is False and not r.passed
    assert _failed(r) == [(ACROSS, None, "w")]
    check = next(c for c in r.function_space.checks if c.scope == ACROSS)
    assert check.value == 0.0 and check.threshold == 0.9 and check.detail["num_tracked"] == POINTS
    assert r.table.weights.rhat.min() > 1.05  # the pooled table agrees


def test_rank_correlation_of_mean_weights_fails_for_the_pair_that_disagrees():
    post, stats = _draws(3, 600)
    chain_mean, corrupted = _agreeing_chains(3)
    r = assess_convergence(post, stats, chain_mean, corrupted, thresholds=ConvergenceThresholds(max_rhat=1.02))
    assert r.passed, r.failures()
    shuffled = chain_mean.copy()
    shuffled[2] = np.random.default_rng(5).permutation(shuffled[2])
    r = assess_convergence(post, stats, shuffled, None, thresholds=ConvergenceThresholds(max_rhat=1.02))
    pairs = {tuple(c.detail["chains"]): c.passed for c in r.function_space.checks if "chains" in c.detail}
    assert pairs == {(0, 1): True, (0, 2): False, (1, 2): False}
    assert r.function_space.rank_correlation[0, 1] > 0.99 and abs(r.function_space.rank_correlation[0, 2]) < 0.3
    assert not r.passed


def test_auroc_spread_fails_when_one_chain_selects_worse():
    post, stats = _draws()
    chain_mean, corrupted = _agreeing_chains()
    assert assess_convergence(post, stats, chain_mean, corrupted).passed
    worse = chain_mean.copy()
    bad = np.flatnonzero(corrupted)[:5]
    worse[1, bad] = 0.5  # chain 1 ranks 5 corrupted points above the lowest clean ones: ρ stays high
    r = assess_convergence(post, stats, worse, corrupted)
    auroc = next(c for c in r.function_space.checks if c.quantity == "selection_auroc")
    assert r.function_space.chain_selection_auroc[0] == pytest.approx(1.0)
    clean_below = np.sum(worse[1, ~corrupted] < 0.5)
    assert auroc.value == pytest.approx(5 * clean_below / (40 * 160)) and not auroc.passed
    assert r.function_space.rank_correlation[0, 1] > 0.95
    assert _failed(r) == [(ACROSS, None, "selection_auroc")] and not r.passed
    assert assess_convergence(post, stats, worse, corrupted, thresholds=ConvergenceThresholds(max_auroc_spread=0.1)).passed
    one_class = assess_convergence(post, stats, worse, np.zeros(N, bool))
    assert any(n.name == "selection AUROC spread" for n in one_class.function_space.not_assessed)


def test_accuracy_spread_fails_when_the_chains_predict_differently():
    post, stats = _draws()
    r = assess_convergence(post, stats, chain_accuracy=[0.90, 0.92])
    acc = next(c for c in r.function_space.checks if c.quantity == "test_accuracy" and c.scope == ACROSS)
    assert acc.value == pytest.approx(0.02) and not acc.passed and not r.passed
    assert assess_convergence(post, stats, chain_accuracy=[0.90, 0.9099]).passed


def test_one_chain_is_not_assessed_across_and_rests_on_within():
    post, stats = _draws(1)
    chain_mean, corrupted = _agreeing_chains(1)
    r = assess_convergence(post, stats, chain_mean, corrupted, [0.9])
    fs = r.to_dict()["function_space"]
    assert r.passed and fs["across_chains"] == {"assessed": False, "passed": None}
    assert {n["scope"] for n in fs["not_assessed"]} == {ACROSS} and len(fs["not_assessed"]) == 4
    assert "not assessed" in r.verdict() and "within-chain" in r.verdict()
    assert all(c["scope"] == WITHIN and c["chain"] == 0 for c in fs["checks"])
    drift = post.copy()
    drift["meta_nll"] = drift["meta_nll"] + xr.DataArray(np.linspace(0, 0.1, 1000), dims="draw")
    assert not assess_convergence(drift, stats).passed


def test_older_inputs_short_chains_and_bad_inputs():
    post, stats = _draws(2, 6)  # too short for a within-chain split R-hat: fails, does not crash
    r = assess_convergence(post, None)
    d = r.to_dict()
    rhats = [c for c in d["function_space"]["checks"] if c["name"] == "train_nll split R-hat"]
    assert rhats and all(c["value"] is None and c["passed"] is False for c in rhats)
    assert {n["name"] for n in d["function_space"]["not_assessed"]} == {
        "energy", "weight rank correlation", "selection AUROC spread", "test accuracy spread"}
    json.dumps(d, allow_nan=False)
    with pytest.raises(ValidationError, match="chain_mean"):
        assess_convergence(post, stats, np.zeros((3, N)))
    with pytest.raises(ValidationError, match="chain_accuracy"):
        assess_convergence(post, stats, chain_accuracy=[0.5])
    for bad in ({"max_rhat_across": 1.0}, {"min_weight_rank_correlation": 1.5}, {"max_auroc_spread": -0.1},
                {"max_accuracy_spread": float("nan")}):
        with pytest.raises(ValidationError, match=next(iter(bad))):
            ConvergenceThresholds(**bad).validate()


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("split") / "D"
    assert main(["run", "--scenario", "digits-label-noise", "--method", "bads", "--chains", "2", "--steps", "300",
                 "--no-progress", "--out", str(out)]) == 0
    return out


def test_run_writes_the_split_verdict_and_a_short_run_fails(short_run):
    conv = json.loads((short_run / "convergence.json").read_text())
    assert {"function_space", "parameter_space"} <= set(conv)
    assert conv["passed"] is False and conv["function_space"]["passed"] is False
    assert {c["scope"] for c in conv["function_space"]["checks"]} == {WITHIN, ACROSS}
    assert conv["parameter_space"]["in_verdict"] is False and conv["parameter_space"]["quantities"]
    metrics = json.loads((short_run / "metrics.json").read_text())
    assert len(metrics["chain_test_accuracy"]) == 2 and len(metrics["chain_selection_auroc"]) == 2
    assert conv["function_space"]["chain_test_accuracy"] == metrics["chain_test_accuracy"]
    with np.load(short_run / "weights.npz") as w:
        assert w["chain_mean"].shape == (2, metrics["num_train"])
        np.testing.assert_allclose(w["chain_mean"].mean(0), w["mean"], atol=0.05)


def test_report_recomputes_the_same_verdict(short_run, tmp_path, capsys):
    written = json.loads((short_run / "convergence.json").read_text())
    run = tmp_path / "D"
    shutil.copytree(short_run, run)
    (run / "convergence.json").unlink()
    assert main(["report", str(run)]) == 0
    assert "NOT CONVERGED in function space" in capsys.readouterr().out
    assert json.loads((run / "convergence.json").read_text()) == written


def test_an_older_folder_still_reports(short_run, tmp_path):
    run = tmp_path / "old"
    shutil.copytree(short_run, run, ignore=shutil.ignore_patterns("convergence.json"))
    with np.load(run / "weights.npz") as f:
        np.savez(run / "weights.npz", **{k: f[k] for k in f.files if k != "chain_mean"})
    metrics = json.loads((run / "metrics.json").read_text())
    for k in ("chain_test_accuracy", "chain_selection_auroc"):
        del metrics[k]
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert main(["report", str(run)]) == 0
    fs = json.loads((run / "convergence.json").read_text())["function_space"]
    assert {n["name"] for n in fs["not_assessed"]} == {"weight rank correlation", "selection AUROC spread",
                                                     "test accuracy spread"}
    assert fs["passed"] is False and any(c["scope"] == ACROSS for c in fs["checks"])  # pooled weight R-hat
