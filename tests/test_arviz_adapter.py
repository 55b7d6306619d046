"""ArviZ groups of a BADS fit, NetCDF round trips, and the ArviZ 1.x branch against a fake of its API."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
import xarray as xr

import pyrodps.diagnostics.arviz_adapter as adapter
from pyrodps import BADSConfig, fit_bads, make_scenario
from pyrodps.diagnostics.convergence import diagnose
from pyrodps.diagnostics.posterior import PosteriorTracker, tracked_point_indices
from pyrodps.errors import ValidationError


@pytest.fixture(scope="module")
def problem():
    return make_scenario("digits-label-noise", seed=0)


@pytest.fixture(scope="module")
def fit(problem):
    # steps 0..90 with burn_in 0 and thin 10: the last kept draw is the last step of each chain
    return fit_bads(problem, BADSConfig(steps=91, burn_in=0, chains=2, track_weights=50), seed=0, progress=False)


def test_groups_dims_and_coordinates(fit, problem):
    data = fit.to_arviz()
    assert set(adapter.group_names(data)) == {"posterior", "sample_stats"}
    post, stats = adapter.group(data, "posterior"), adapter.group(data, "sample_stats")
    assert dict(post.sizes) == {"chain": 2, "draw": 10, "point": 50, "projection": 4}
    for name in ("w", "train_nll", "meta_nll", "param_norm", "theta_projection", "test_accuracy"):
        assert post[name].dims[:2] == ("chain", "draw")
    for name in ("energy", "grad_norm", "step_size", "temperature", "step"):
        assert stats[name].dims == ("chain", "draw")
    points = post["w"].coords["point"].values
    np.testing.assert_array_equal(points, tracked_point_indices(problem.num_train, 50))
    np.testing.assert_array_equal(stats["step"].values[0], np.arange(0, 91, 10))
    assert np.all(stats["step_size"].values == fit.config.step_size)
    assert np.all(stats["temperature"].values == fit.config.temperature)


def test_last_draw_matches_the_chain_state(fit):
    """The tracked weights, norm and projections of the last draw are those of each chain's final state."""
    post = adapter.group(fit.to_arviz(), "posterior")
    points = np.array(post["w"].coords["point"].values)
    directions = PosteriorTracker(fit.samples.states[0].theta.numel(), points).directions
    for chain, state in enumerate(fit.samples.states):
        theta = state.theta.double()
        np.testing.assert_allclose(post["w"].values[chain, -1], torch.sigmoid(state.u[points]).double().numpy())
        # norm and projections are computed in θ's float32: relative error ~ sqrt(P) * 2^-24
        np.testing.assert_allclose(post["param_norm"].values[chain, -1], torch.linalg.vector_norm(theta).item(), rtol=1e-5)
        np.testing.assert_allclose(post["theta_projection"].values[chain, -1], (directions @ theta).numpy(),
                                   rtol=1e-4, atol=1e-4 * torch.linalg.vector_norm(theta).item())


def test_tracking_does_not_change_the_fit(problem, fit):
    bare = fit_bads(problem, BADSConfig(steps=91, burn_in=0, chains=2, track_weights=0, theta_projections=0),
                    seed=0, progress=False)
    np.testing.assert_array_equal(bare.weight_mean, fit.weight_mean)
    np.testing.assert_array_equal(bare.test_probs, fit.test_probs)
    assert "w" not in adapter.group(bare.to_arviz(), "posterior")


def test_weight_network_weights_are_tracked(problem):
    net_fit = fit_bads(problem, BADSConfig(steps=40, burn_in=0, weights="network", track_weights=20), seed=0,
                       progress=False)
    w = adapter.group(net_fit.to_arviz(), "posterior")["w"].values
    assert w.shape == (1, 4, 20) and np.all((w > 0) & (w < 1))


def test_tracked_points_are_deterministic_and_checked():
    a = tracked_point_indices(1000, 200)
    np.testing.assert_array_equal(a, tracked_point_indices(1000, 200))
    assert a.size == 200 and np.all(np.diff(a) > 0) and a.max() < 1000
    np.testing.assert_array_equal(tracked_point_indices(50, None), np.arange(50))
    np.testing.assert_array_equal(tracked_point_indices(50, 80), np.arange(50))
    with pytest.raises(ValidationError, match="track_weights"):
        tracked_point_indices(50, -1)
    with pytest.raises(ValidationError, match="track_weights"):
        BADSConfig(track_weights=-3).validate()


def test_netcdf_round_trip_is_atomic(fit, tmp_path):
    data = fit.to_arviz()
    path = adapter.write_netcdf(data, tmp_path / "posterior.nc")
    back = adapter.read_netcdf(path)
    for name in ("posterior", "sample_stats"):
        xr.testing.assert_identical(adapter.group(back, name), adapter.group(data, name))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["posterior.nc"]

    class Broken:
        def to_netcdf(self, path, engine):
            with open(path, "wb") as f:
                f.write(b"half")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        adapter.write_netcdf(Broken(), tmp_path / "posterior.nc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["posterior.nc"]  # old file kept, no temp left
    xr.testing.assert_identical(adapter.group(adapter.read_netcdf(path), "posterior"), adapter.group(data, "posterior"))


def test_version_parsing():
    assert adapter.arviz_major("0.23.4") == 0 and adapter.arviz_major("1.2.0") == 1
    with pytest.raises(ValidationError, match="arviz"):
        adapter.arviz_major("dev")


def _fake_arviz_1x(real) -> types.SimpleNamespace:
    """The part of the ArviZ 1.x API the adapter uses: diagnostics take a Dataset and ``sample_dims``
    (arviz-stats); there is no InferenceData and no from_netcdf."""
    calls = []

    def wrap(name):
        def fn(data, *, sample_dims, method, **kwargs):
            assert isinstance(data, xr.Dataset) and list(sample_dims) == ["chain", "draw"]
            calls.append((name, method))
            return getattr(real, name)(data, method=method, **kwargs)
        return fn

    return types.SimpleNamespace(__version__="1.0.0", rhat=wrap("rhat"), ess=wrap("ess"), mcse=wrap("mcse"), calls=calls)


def test_arviz_1x_branch_against_a_fake(fit, tmp_path, monkeypatch):
    fake = _fake_arviz_1x(adapter.az)
    monkeypatch.setattr(adapter, "az", fake)
    data = fit.to_arviz()
    assert isinstance(data, xr.DataTree)
    assert set(adapter.group_names(data)) == {"posterior", "sample_stats"}
    post = adapter.group(data, "posterior")
    assert isinstance(post, xr.Dataset) and post["w"].dims == ("chain", "draw", "point")
    back = adapter.read_netcdf(adapter.write_netcdf(data, tmp_path / "posterior.nc"))
    assert isinstance(back, xr.DataTree)
    xr.testing.assert_identical(adapter.group(back, "posterior"), post)
    report = diagnose(back)
    assert {c[0] for c in fake.calls} == {"rhat", "ess", "mcse"}
    monkeypatch.undo()
    reference = diagnose(fit.to_arviz())
    assert [q.rhat for q in report.quantities] == [q.rhat for q in reference.quantities]
    assert report.passed == reference.passed


def test_the_same_file_opens_under_both_branches(fit, tmp_path, monkeypatch):
    path = adapter.write_netcdf(fit.to_arviz(), tmp_path / "posterior.nc")  # written by ArviZ 0.x
    monkeypatch.setattr(adapter, "az", _fake_arviz_1x(adapter.az))
    tree = adapter.read_netcdf(path)
    assert isinstance(tree, xr.DataTree) and "sample_stats" in adapter.group_names(tree)


def test_bad_inputs_are_refused(fit, tmp_path):
    with pytest.raises(ValidationError, match="group"):
        adapter.group(fit.to_arviz(), "prior")
    with pytest.raises(ValidationError, match="groups"):
        adapter.make_inference_data({"posterior": np.zeros(3)})
    with pytest.raises(ValidationError, match="posterior"):
        adapter.read_netcdf(tmp_path / "missing.nc")
