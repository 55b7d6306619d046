"""Per-source weight summaries of a mixture: ``sources.json`` equals a hand computation from the run's own
draws, the trace observer survives a checkpoint and resume exactly, the report shows both, and a run
without ``weight_groups`` writes none of it."""

from __future__ import annotations

import json
import shutil

import arviz as az
import numpy as np
import pytest
import torch
from torch import nn

from pyrodps.app.cli import main
from pyrodps.bads import BADSKernel
from pyrodps.bads.source_trace import SourceTrace
from pyrodps.data import make_scenario
from pyrodps.diagnostics.arviz_adapter import group, read_netcdf
from pyrodps.diagnostics.sources import source_summary
from pyrodps.errors import ValidationError
from pyrodps.models import BADSModel, MinibatchStream, SelectionData
from pyrodps.models.likelihoods import Categorical
from pyrodps.run import sample
from pyrodps.run.checkpoint import Checkpointer
from pyrodps.sgmcmc import RMSprop
from tests.test_checkpoint import Interrupted, _Killer
from tests.test_report import Page

MIXTURE = ["--scenario", "digits-source-noise", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    # every weight tracked: posterior.nc then holds the whole table at every draw, for the hand computation
    assert main(["run", *MIXTURE, "--method", "bads", "--steps", "120", "--chains", "2", "--track-weights", "all",
                 "--out", str(root / "bads")]) == 0
    # the report's sources section needs no posterior: a copy without posterior.nc skips the (slow) convergence
    # diagnostics of 1,207 tracked weights
    shutil.copytree(root / "bads", root / "page", ignore=shutil.ignore_patterns("posterior.nc", "convergence.json"))
    assert main(["report", str(root / "page")]) == 0
    assert main(["run", *MIXTURE, "--method", "l2rw", "--steps", "30", "--out", str(root / "l2rw")]) == 0
    assert main(["run", "--scenario", "digits-label-noise", "--no-progress", "--method", "l2rw", "--steps", "30",
                 "--out", str(root / "plain")]) == 0
    assert main(["report", str(root / "plain")]) == 0
    return root


def test_sources_json_equals_a_hand_computation_from_the_draws(runs):
    d = runs / "bads"
    summary = json.loads((d / "sources.json").read_text())
    metrics = json.loads((d / "metrics.json").read_text())
    problem = make_scenario("digits-source-noise", seed=0)
    groups, corrupted = problem.weight_groups, problem.corrupted
    data = read_netcdf(d / "posterior.nc")
    w = group(data, "posterior")["w"].values.astype(np.float64)  # (chain, draw, point): the whole table
    assert w.shape == (2, 6, problem.num_train)
    weights = np.load(d / "weights.npz")
    trace = np.load(d / "source_trace.npz")
    after = trace["steps"] >= trace["burn_in"]
    # the trace's steps after burn-in are the kept draws; before them it covers the burn-in too
    np.testing.assert_array_equal(trace["steps"][after], group(data, "sample_stats")["step"].values[0])
    assert trace["steps"][0] == 0 and int(trace["burn_in"]) == 60 and trace["means"].shape == (2, 12, 3)
    threshold = 0.5 * weights["mean"].mean()
    assert summary["chains"] == 2 and summary["draws_per_chain"] == 6
    assert summary["flag_threshold"] == pytest.approx(threshold)
    for k, row in enumerate(summary["sources"]):
        mask = groups == row["source"]
        m = w[:, :, mask].mean(-1)  # the source's mean weight at every draw, (chain, draw)
        np.testing.assert_allclose(trace["means"][:, after, k], m, rtol=1e-6)
        assert row["size"] == int(mask.sum()) == int(trace["sizes"][k])
        assert row["mean_weight"] == pytest.approx(m.mean(), rel=1e-6)
        assert row["sd"] == pytest.approx(m.reshape(-1).std(ddof=1), rel=1e-5)
        assert row["chain_mean"] == pytest.approx(m.mean(1).tolist(), rel=1e-6)
        assert row["chain_sd"] == pytest.approx(m.std(1, ddof=1).tolist(), rel=1e-5)
        assert row["between_chain_sd"] == pytest.approx(m.mean(1).std(ddof=1), rel=1e-4)
        assert row["mcse"] == pytest.approx(float(az.mcse(m, method="mean")), rel=1e-4)
        assert np.isfinite(row["rhat"])
        point = weights["mean"][mask]
        assert row["mean_of_point_weights"] == pytest.approx(point.mean())
        assert row["mean_of_point_weights"] == pytest.approx(metrics[f"mean_weight_group{row['source']}"])
        assert row["point_sd"] == pytest.approx(point.std())
        assert row["flagged_fraction"] == pytest.approx((point < threshold).mean())
        assert row["corrupted_fraction"] == pytest.approx(corrupted[mask].mean())
    means = {r["source"]: r["mean_weight"] for r in summary["sources"]}
    assert summary["ranking"] == sorted(means, key=lambda g: -means[g])
    # source s has label noise 2·0.3·s/2: the clean source first, the noisiest last
    assert summary["ranking"] == [0, 1, 2]
    assert [r["corrupted_fraction"] for r in summary["sources"]] == sorted(r["corrupted_fraction"]
                                                                           for r in summary["sources"])


def test_report_shows_the_sources_table_and_plot(runs):
    d = runs / "page"
    summary = json.loads((d / "sources.json").read_text())
    page = Page((d / "report.html").read_text(encoding="utf-8"))
    assert page.rows["sources"] == ["source 0", "source 1", "source 2"]
    cells = {c["key"]: c for c in page.cells if c["table"] == "sources"}
    for row in summary["sources"]:
        for field in ("size", "mean_weight", "sd", "mcse", "chain_mean", "flagged_fraction", "corrupted_fraction"):
            assert cells[f"source.{row['source']}.{field}"]["value"] == row[field]
    imgs = [a for tag, a in page.tags if tag == "img" and "Mean weight of each source" in a.get("alt", "")]
    assert len(imgs) == 1 and imgs[0]["src"].startswith("data:image/png;base64,")
    assert (d / "sources.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_method_without_draws_gets_the_summary_without_posterior_fields(runs):
    d = runs / "l2rw"
    summary = json.loads((d / "sources.json").read_text())
    weights = np.load(d / "weights.npz")
    groups = make_scenario("digits-source-noise", seed=0).weight_groups
    for row in summary["sources"]:
        assert row["mean_weight"] == pytest.approx(weights["mean"][groups == row["source"]].mean())
        assert row["sd"] is None and row["mcse"] is None and row["chain_mean"] is None
    assert not (d / "source_trace.npz").exists() and not (d / "sources.png").exists()


def test_a_run_without_weight_groups_writes_no_sources(runs):
    d = runs / "plain"
    assert (d / "weights.npz").is_file() and not (d / "sources.json").exists()
    assert not (d / "source_trace.npz").exists() and not (d / "sources.png").exists()
    page = Page((d / "report.html").read_text(encoding="utf-8"))
    assert "sources" not in page.rows and "<h2>Sources</h2>" not in (d / "report.html").read_text()


# --- the observer on its own: checkpoint and resume -------------------------------------------------------

N, STEPS, BURN_IN = 60, 120, 20
GROUPS = np.arange(N) % 3 + 2 * (np.arange(N) % 7 == 0)  # sources 0..4, of unequal sizes


def _problem() -> tuple[SelectionData, BADSModel]:
    g = torch.Generator().manual_seed(0)
    data = SelectionData(torch.randn(N, 4, generator=g), torch.randint(0, 3, (N,), generator=g),
                         torch.randn(9, 4, generator=g), torch.randint(0, 3, (9,), generator=g))
    torch.manual_seed(0)
    return data, BADSModel(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), Categorical(3), N, 9,
                           rho_theta=2.0)


def _run(data, model, checkpoint=None, kill_at=None):
    kernel = BADSKernel(model, step_size=1e-3, weight_step_size=0.3, preconditioner=RMSprop())
    trace = SourceTrace(GROUPS, BURN_IN, 5, lambda state: torch.sigmoid(state.u))
    result = sample(kernel if kill_at is None else _Killer(kernel, kill_at),
                    lambda g: MinibatchStream(data, 16, 4, g), num_steps=STEPS, burn_in=BURN_IN, thin=5,
                    num_chains=2, seed=3, track=("w",), observers={"sources": trace}, progress=False,
                    checkpoint=checkpoint)
    return result, trace


@pytest.mark.parametrize("kill_at", [13, 95, 121, 187])  # burn-in, chain 0, chain 1's first step, chain 1
def test_trace_survives_checkpoint_and_resume_exactly(kill_at, tmp_path):
    data, model = _problem()
    reference, ref_trace = _run(data, model)
    ckpt = lambda: Checkpointer(tmp_path / "checkpoint.pt", every=10, config={"run": "sources"})
    with pytest.raises(Interrupted):
        _run(data, model, ckpt(), kill_at)
    resumed, trace = _run(data, model, ckpt())
    assert resumed.extras["resumed_at"]
    a, b = ref_trace.arrays(), trace.arrays()
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    torch.testing.assert_close(trace.sums, trace.recount(), rtol=0, atol=1e-12)  # no drift in the running sums
    # the recorded source means after burn-in are those of the table at the kept draws
    w = reference.draws["w"].double().numpy()  # (chain, draw, point)
    after = a["steps"] >= BURN_IN
    hand = np.stack([w[:, :, GROUPS == g].mean(-1) for g in a["sources"]], axis=-1)
    np.testing.assert_allclose(a["means"][:, after], hand, rtol=1e-6)
    assert a["means"].shape == (2, 24, 5) and list(a["sizes"]) == [int((GROUPS == g).sum()) for g in range(5)]


def test_a_restored_state_is_a_copy():
    """The divergence guard's back-off restores one snapshot more than once: loading may not alias it."""
    trace = SourceTrace(np.array([0, 1, 1, 0]), 0, 1, lambda state: torch.full((4,), 0.5))
    trace.begin_chain(0)
    trace.observe(0, 0, None, {"idx": torch.tensor([0, 1]), "w": torch.tensor([0.9, 0.1])}, True)
    saved = trace.state_dict()
    view = saved["view"].clone()
    trace.load_state_dict(saved)
    trace.observe(0, 1, None, {"idx": torch.tensor([2, 3]), "w": torch.tensor([0.2, 0.3])}, True)
    assert torch.equal(saved["view"], view)
    np.testing.assert_allclose(trace.arrays()["means"][0], [[0.7, 0.3], [0.6, 0.15]])


def test_bad_inputs_are_refused():
    with pytest.raises(ValidationError, match="groups"):
        SourceTrace(np.array([0.5, 1.0]), 0, 1, lambda s: None)
    with pytest.raises(ValidationError, match="record_every"):
        SourceTrace(np.array([0, 1]), 0, 0, lambda s: None)
    with pytest.raises(ValidationError, match="weight_mean"):
        source_summary(np.array([0, 1, 1]), np.array([0.5, 0.5]))


def test_weight_network_kinds_are_traced_too():
    """Product weights (a table times a group factor from φ): the view starts from every point's weight at
    the chain's first state (a pass of the weight network) and follows the visits without drift."""
    from pyrodps.app.methods import run_method

    problem = make_scenario("digits-source-noise", seed=0)
    res = run_method(problem, "bads-point-group", seed=0, steps=60, progress=False)
    trace = res.fit.samples.observers["sources"]
    a = trace.arrays()
    assert a["means"].shape == (1, 6, 3) and np.all((a["means"] > 0) & (a["means"] < 1))
    torch.testing.assert_close(trace.sums, trace.recount(), rtol=0, atol=1e-12)
    assert list(a["steps"]) == [0, 10, 20, 30, 40, 50] and int(a["burn_in"]) == 30
