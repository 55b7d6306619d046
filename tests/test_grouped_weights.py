"""Grouped weights (one latent per class or per user-given group), the companion estimator with a weight
network, and the companion's running mean over visits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyrodps.bads import BADSConfig
from pyrodps.bads.build import build
from pyrodps.bads.fit import fit_bads
from pyrodps.data import make_scenario, problem_from_arrays
from pyrodps.errors import ValidationError
from pyrodps.models.weight_net import WeightNet

GROUPED = {"weights": "network", "weight_net_features": ("group",), "weight_net_hidden": 0}


def _problem_with_groups(seed: int = 0):
    p = make_scenario("digits-label-noise", seed=seed)
    groups = np.arange(p.num_train) % 3
    return problem_from_arrays(p.x_train, p.y_train, p.x_meta, p.y_meta, p.x_test, p.y_test, corrupted=p.corrupted,
                               weight_groups=groups)


def _implied_weights(problem, config):
    """Every training point's weight at the end of 60 kernel steps."""
    from pyrodps.bads.observers import tracked_weights

    setup = build(problem, config, seed=0)
    stream = setup.batches(torch.Generator().manual_seed(0))
    state = setup.kernel.init(0, 0)
    for _ in range(60):
        state, _ = setup.kernel.step(state, stream.next(), diagnostics=False)
    return tracked_weights(setup.model, setup.data, state, torch.arange(problem.num_train)).numpy()


def test_a_group_shares_one_weight_and_groups_default_to_classes():
    problem = _problem_with_groups()
    w = _implied_weights(problem, BADSConfig(steps=60, **GROUPED))
    groups = problem.weight_groups
    for g in range(3):
        np.testing.assert_array_equal(w[groups == g], w[groups == g][0])  # one latent per group
    assert len({float(w[groups == g][0]) for g in range(3)}) == 3  # the latents moved apart
    plain = make_scenario("digits-imbalance", seed=0)  # no weight_groups: one latent per class
    w = _implied_weights(plain, BADSConfig(steps=60, **GROUPED))
    for c in range(plain.num_classes):
        np.testing.assert_array_equal(w[plain.y_train == c], w[plain.y_train == c][0])


def test_product_weights_are_a_points_own_weight_times_its_groups():
    """``weights="product"``: within a group the weights differ (the table), each is its table entry
    times one group factor ``sigmoid(φ_g)``, and the group factors moved apart."""
    from pyrodps.bads.observers import tracked_weights

    problem = _problem_with_groups()
    setup = build(problem, BADSConfig(steps=60, weights="product", weight_net_features=("group",),
                                      weight_net_hidden=0, log_z="companion", companion_window=3), seed=0)
    stream = setup.batches(torch.Generator().manual_seed(0))
    state = setup.kernel.init(0, 0)
    for _ in range(60):
        state, info = setup.kernel.step(state, stream.next(), diagnostics=True)
        assert torch.isfinite(info["energy"]) and ((info["w"] >= 0) & (info["w"] <= 1)).all()
    w = tracked_weights(setup.model, setup.data, state, torch.arange(problem.num_train)).numpy()
    factor = w / torch.sigmoid(state.u).numpy()
    groups = problem.weight_groups
    for g in range(3):
        np.testing.assert_allclose(factor[groups == g], factor[groups == g][0], rtol=1e-5)
        assert np.std(w[groups == g]) > 0.05  # per-point weights within the group
    np.testing.assert_allclose(np.sort(factor[[0, 1, 2]]), np.sort(torch.sigmoid(state.phi).numpy()), rtol=1e-5)
    assert len({round(float(factor[groups == g][0]), 6) for g in range(3)}) == 3  # the group factors moved
    with pytest.raises(ValidationError, match="weights"):
        from pyrodps.models import BADSModel

        BADSModel(setup.model.net, setup.model.likelihood, 10, 5, product=True)  # no weight network


def test_product_weights_find_mislabelled_points_and_resume_exactly(tmp_path):
    """A ``bads-point-group`` fit ranks flipped labels low (digits pooled from three sources, 600 steps), and
    a product-weight run with the companion interrupted at a
    checkpoint and resumed ends where the uninterrupted run ends (table, φ and θ' all restored)."""
    from pyrodps.app.methods import BADS_METHODS

    problem = make_scenario("digits-source-noise", seed=0)
    fit = fit_bads(problem, BADSConfig(steps=600, **BADS_METHODS["bads-point-group"]), seed=0, progress=False)
    assert fit.selection_auroc > 0.9, fit.selection_auroc
    from pyrodps.run import sample
    from pyrodps.run.checkpoint import Checkpointer
    from tests.test_checkpoint import Interrupted, _Killer

    setup = build(problem, BADSConfig(steps=60, weights="product", weight_net_features=("group",),
                                      weight_net_hidden=0, log_z="companion", companion_window=3), seed=1)

    def run(kernel, checkpoint=None):
        return sample(kernel, setup.batches, num_steps=60, burn_in=10, thin=5, num_chains=1, seed=3,
                      track=("energy", "theta", "phi"), progress=False, checkpoint=checkpoint)

    whole = run(setup.kernel)
    with pytest.raises(Interrupted):
        run(_Killer(setup.kernel, 37), Checkpointer(tmp_path / "c.pt", every=10, config={"run": "p"}))
    resumed = run(setup.kernel, Checkpointer(tmp_path / "c.pt", every=10, config={"run": "p"}))
    assert resumed.extras["resumed_at"]
    for name in ("energy", "theta", "phi"):
        assert torch.equal(whole.draws[name], resumed.draws[name]), name
    a, b = whole.states[0], resumed.states[0]
    for name in ("u", "phi", "companion", "companion_mean"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("log_z", ["companion-groups", "companion"])
def test_companion_groups_keeps_log_z_for_phi_only(log_z, monkeypatch):
    """With ``log_z="companion-groups"`` the table's conditional sees ``δ_i = v_i d_i`` (its own loss, as
    with ``"ignore"``) while φ's gradient gains the companion's term; with ``"companion"`` the table sees
    ``v_i (d_i - d̄_i)`` too."""
    import pyrodps.bads.kernel as kernel_module

    problem = _problem_with_groups()
    setup = build(problem, BADSConfig(steps=10, weights="product", weight_net_features=("group",),
                                      weight_net_hidden=0, log_z=log_z), seed=0)
    kernel, stream = setup.kernel, setup.batches(torch.Generator().manual_seed(0))
    seen = {}
    gradient, companion, phi_term = kernel.gradient.__call__, kernel._companion, kernel.gradient.potential.companion_phi_grad
    slice_step = kernel_module.weight_block_slice_

    def record(name, fn):
        def wrapped(*args, **kwargs):
            seen[name] = out = fn(*args, **kwargs)
            if name == "slice":
                seen["delta"] = kwargs["delta"]
            return out
        return wrapped

    monkeypatch.setattr(kernel, "gradient", type("G", (), {"__call__": staticmethod(record("est", gradient)),
                                                          "potential": kernel.gradient.potential,
                                                          "companion": kernel.gradient.companion})())
    monkeypatch.setattr(kernel, "_companion", record("d_bar", companion))
    monkeypatch.setattr(kernel.gradient.potential, "companion_phi_grad", record("phi_term", phi_term))
    monkeypatch.setattr(kernel_module, "weight_block_slice_", record("slice", slice_step))
    state = kernel.init(0, 0)
    for _ in range(3):
        state, _ = kernel.step(state, stream.next(), diagnostics=False)
    est = seen["est"]
    assert torch.linalg.vector_norm(seen["phi_term"]) > 0  # log Z reaches φ in both
    expected = est.deviance_train * est.weight_scale
    if log_z == "companion":
        expected = (est.deviance_train - seen["d_bar"]) * est.weight_scale
    torch.testing.assert_close(seen["delta"], expected)


def test_bad_groups_are_refused_by_name():
    p = make_scenario("digits-label-noise", seed=0)
    with pytest.raises(ValidationError, match="weight_groups"):
        problem_from_arrays(p.x_train, p.y_train, p.x_meta, p.y_meta, p.x_test, p.y_test,
                            weight_groups=-np.ones(p.num_train, dtype=np.int64))
    with pytest.raises(ValidationError, match="weight_net_features"):
        WeightNet((4,), 3, features=("group",), hidden=0)  # no groups given
    with pytest.raises(ValidationError, match="weight_net_hidden"):
        BADSConfig(weights="network", weight_net_hidden=-1)
    with pytest.raises(ValidationError, match="log_z"):
        BADSConfig(log_z="companion-groups")  # a table has no φ to keep log Z for


def test_the_companion_mean_is_the_mean_of_a_points_visits_then_a_moving_average():
    problem = make_scenario("digits-label-noise", seed=0)
    setup = build(problem, BADSConfig(steps=50, log_z="companion", companion_window=3, batch_size=64), seed=0)
    kernel, stream = setup.kernel, setup.batches(torch.Generator().manual_seed(0))
    seen: dict[int, list[float]] = {}
    companion = kernel.gradient.companion

    def recording(theta, w, batch):
        est = companion(theta, w, batch)
        d = est.nll_train - kernel.model.reference_nll(batch.y_train)
        for i, v in zip(batch.idx_train.tolist(), d.tolist()):
            seen.setdefault(i, []).append(v)
        return est

    kernel.gradient.companion = recording
    state = kernel.init(0, 0)
    for _ in range(60):  # about 3 epochs of 1,207 points in batches of 64
        state, _ = kernel.step(state, stream.next(), diagnostics=False)
    for i, values in list(seen.items())[:200]:
        expected = float(np.mean(values[:3]))
        for v in values[3:]:
            expected += (v - expected) / 3
        assert state.companion_visits[i] == min(len(values), 3)
        assert float(state.companion_mean[i]) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_the_companion_runs_with_a_weight_network_and_its_own_step():
    problem = make_scenario("digits-imbalance", seed=0)
    config = BADSConfig(steps=80, log_z="companion", companion_step_size=1e-3, companion_temperature=0.05,
                        companion_window=4, weights="network", weight_net_features=("label",), weight_net_hidden=0)
    fit = fit_bads(problem, config, progress=False)
    assert np.isfinite(fit.weight_mean).all() and fit.samples.draws["energy"].isfinite().all()


def test_the_weight_network_can_read_the_main_networks_penultimate_features():
    from pyrodps.models.networks import penultimate

    problem = make_scenario("digits-label-noise", seed=0)
    config = BADSConfig(steps=40, weights="network", weight_net_features=("embedding", "loss"))
    setup = build(problem, config, seed=0)
    assert setup.model.weight_net.feature_dim == 256 + 1  # the default MLP's last hidden layer, and the loss
    x = setup.data.x_train[:5]
    emb = penultimate(setup.model.net, x)
    torch.testing.assert_close(emb, setup.model.net[:-1](x))  # the input of the last Linear
    fit = fit_bads(problem, config, progress=False)
    assert np.isfinite(fit.weight_mean).all()


def test_every_weight_variant_is_reachable_from_the_command_line(tmp_path, capsys):
    import json

    from pyrodps.app.cli import main

    common = ["--scenario", "digits-label-noise", "--steps", "20", "--no-progress"]
    assert main(["run", *common, "--method", "bads-weightnet", "--weight-net-features", "embedding,loss",
                 "--weight-net-hidden", "8", "--out", str(tmp_path / "a")]) == 0
    config = json.loads((tmp_path / "a" / "config.json").read_text())["config"]
    assert config["weight_net_features"] == ["embedding", "loss"] and config["weight_net_hidden"] == 8
    assert main(["run", *common, "--method", "bads-companion", "--companion-window", "5", "--companion-step-size",
                 "0.001", "--companion-temperature", "0.05", "--out", str(tmp_path / "b")]) == 0
    config = json.loads((tmp_path / "b" / "config.json").read_text())["config"]
    assert (config["companion_window"], config["companion_step_size"], config["companion_temperature"]) == (5, 0.001, 0.05)
    assert main(["run", *common, "--method", "bads-grouped", "--out", str(tmp_path / "c")]) == 0
    assert main(["run", *common, "--method", "bads-point-group", "--out", str(tmp_path / "e")]) == 0
    assert json.loads((tmp_path / "e" / "config.json").read_text())["config"]["weights"] == "product"
    assert main(["run", *common, "--method", "bads-grouped", "--weight-net-hidden", "8", "--out", str(tmp_path / "d")]) == 2
    assert "fixes weight_net_hidden" in capsys.readouterr().err


def test_metrics_report_the_mean_weight_of_every_weight_group():
    from pyrodps.app.methods import run_method

    problem = make_scenario("digits-source-noise", seed=0)
    res = run_method(problem, "bads", seed=0, steps=30, progress=False)
    m = res.metrics(problem)
    for g in range(3):
        assert m[f"mean_weight_group{g}"] == pytest.approx(float(res.weight_mean[problem.weight_groups == g].mean()))
