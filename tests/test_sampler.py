"""Driver and kernel mechanics: reproducibility, chains, schedules, online statistics, O(B) updates."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from pyrodps.bads import BADSKernel
from pyrodps.bads.observers import WeightStatistics
from pyrodps.errors import ValidationError
from pyrodps.models import BADSModel, Categorical, MinibatchStream, SelectionData
from pyrodps.run import OnlineWeightStats, sample
from pyrodps.run.weight_stats import WindowMean
from pyrodps.sgmcmc import Constant, PolynomialDecay, RMSprop, ScaledSchedule


def small_problem(n=60, m=9):
    g = torch.Generator().manual_seed(0)
    data = SelectionData(torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g),
                         torch.randn(m, 4, generator=g), torch.randint(0, 3, (m,), generator=g))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    return data, BADSModel(net, Categorical(3), n, m, rho_theta=2.0)


def run(model, data, seed=0, chains=1, psgld=False, clip=None, steps=200, path="fused"):
    kernel = BADSKernel(model, step_size=PolynomialDecay(1e-3, 10.0, 0.6), weight_step_size=0.3,
                        preconditioner=RMSprop() if psgld else None, clip_norm=clip, path=path)
    return sample(kernel, lambda g: MinibatchStream(data, 16, 4, g), num_steps=steps, burn_in=50, thin=5,
                  num_chains=chains, seed=seed, track=("energy", "theta"),
                  observers={"weights": WeightStatistics(data.num_train, 50)}, progress=False)


@pytest.mark.parametrize("psgld,clip", [(False, None), (True, 10.0)])
def test_cpu_run_is_reproducible_bit_for_bit(psgld, clip):
    data, model = small_problem()
    a = run(model, data, seed=3, chains=2, psgld=psgld, clip=clip)
    b = run(model, data, seed=3, chains=2, psgld=psgld, clip=clip)
    assert torch.equal(a.draws["theta"], b.draws["theta"])
    assert torch.equal(a.states[1].u, b.states[1].u)
    assert torch.equal(a.observers["weights"].mean_std()[0], b.observers["weights"].mean_std()[0])
    c = run(model, data, seed=4, chains=2, psgld=psgld, clip=clip)
    assert not torch.equal(a.states[0].u, c.states[0].u)


def test_chains_differ_and_stack_on_a_chain_dimension():
    data, model = small_problem()
    res = run(model, data, chains=3)
    assert res.draws["theta"].shape == (3, (200 - 50) // 5, model.layout.size)
    assert res.draws["energy"].shape == (3, 30)
    assert not torch.equal(res.states[0].u, res.states[1].u)
    assert len(res.observers["weights"].chains) == 3


@pytest.mark.parametrize("path", ["functional", "reference"])
def test_every_gradient_path_runs_the_same_chain(path):
    """The Pyro-trace and functional paths drive the sampler to the fused path's state."""
    data, model = small_problem()
    fused = run(model, data, steps=60)
    other = run(model, data, steps=60, path=path)
    torch.testing.assert_close(other.states[0].theta, fused.states[0].theta, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(other.states[0].u, fused.states[0].u, rtol=1e-4, atol=1e-4)


def test_step_touches_only_the_batch_entries_of_the_table():
    data, model = small_problem()
    kernel = BADSKernel(model, step_size=1e-3)
    state = kernel.init(0)
    before = state.u.clone()
    batches = MinibatchStream(data, 16, None, torch.Generator().manual_seed(0))
    batch = batches.next()
    state, info = kernel.step(state, batch)
    changed = torch.nonzero(state.u != before).flatten()
    assert set(changed.tolist()) <= set(batch.idx_train.tolist())
    assert len(changed) == 16
    torch.testing.assert_close(info["w"], torch.sigmoid(state.u[batch.idx_train]))


def test_online_weight_stats_match_batch_computation():
    """Float32 Welford moments: each update rounds the stored mean and M2 once (<= 2^-24 relative), so
    after n <= 40 visits the error is at most 40 * 2^-24 ~ 2.4e-6 relative (3e-6 below); the variance
    of a point with two visits can lose a little more through the rounding of its mean (1e-5)."""
    g = torch.Generator().manual_seed(0)
    n = 30
    stats = [OnlineWeightStats(n), OnlineWeightStats(n)]
    seen = [[[] for _ in range(n)] for _ in range(2)]
    for c in range(2):
        for step in range(40):
            idx = torch.randperm(n, generator=g)[:7]
            if step % 5 == 0:  # a batch may hold a point twice
                idx[1] = idx[0]
            w = torch.rand(7, generator=g, dtype=torch.float64)
            stats[c].update(idx, w)
            for i, wi in zip(idx.tolist(), w.tolist()):
                seen[c][i].append(wi)
    for i in range(n):
        assert stats[0].count[i].item() == len(seen[0][i])
        np.testing.assert_allclose(stats[0].mean[i].item(), np.mean(seen[0][i]), rtol=3e-6)
        np.testing.assert_allclose(stats[0].variance[i].item(), np.var(seen[0][i], ddof=1), rtol=1e-5, atol=1e-9)
    mean, var = OnlineWeightStats.pool(stats)
    for i in range(n):
        both = seen[0][i] + seen[1][i]
        np.testing.assert_allclose(mean[i].item(), np.mean(both), rtol=3e-6)
        np.testing.assert_allclose(var[i].item(), np.var(both, ddof=1), rtol=1e-5, atol=1e-9)
    assert stats[0].nbytes() == 12 * n


def test_window_mean_is_exact_sparse_and_dense_and_survives_a_checkpoint():
    """The window's sparse log turns dense once it holds N visits; both forms give the mean over the
    window's visits, and a state saved in either form restores to the same means."""
    g = torch.Generator().manual_seed(1)
    n = 50
    window, seen = WindowMean(n), [[] for _ in range(n)]
    saved = {}
    for step in range(12):
        idx = torch.randint(0, n, (9,), generator=g)
        w = torch.rand(9, generator=g)
        window.update(idx, w)
        for i, wi in zip(idx.tolist(), w.tolist()):
            seen[i].append(wi)
        saved[window.dense] = (window.state_dict(), [list(s) for s in seen])
    assert set(saved) == {False, True}  # both forms were reached
    for state, values in saved.values():
        restored = WindowMean(n)
        restored.load_state_dict(state)
        count, total = restored.sums()
        assert count.tolist() == [len(v) for v in values]
        expected = [np.mean(v) if v else 0.0 for v in values]
        np.testing.assert_allclose((total / count.clamp(min=1)).numpy(), expected, rtol=3e-6, atol=1e-7)
    assert window.nbytes() == 8 * n


def test_weight_statistics_read_checkpoints_of_the_float64_format():
    g = torch.Generator().manual_seed(2)
    w = torch.rand(4, 6, generator=g, dtype=torch.float64)
    count = torch.full((6,), 4.0, dtype=torch.float64)
    old = {"count": count, "total": w.sum(0), "total_sq": w.square().sum(0)}
    stats = WeightStatistics(6, burn_in=0, window_start=0)
    stats.load_state_dict({"chains": [old], "windows": [old]})
    mean, std = stats.mean_std()
    torch.testing.assert_close(mean, w.mean(0), rtol=1e-6, atol=0)
    torch.testing.assert_close(std, w.std(0), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(stats.window_mean(), w.mean(0), rtol=1e-6, atol=0)


def test_schedules():
    assert Constant(0.1)(1000) == 0.1
    p = PolynomialDecay(2.0, 10.0, 0.75)
    assert math.isclose(p(0), 2.0 * 10**-0.75) and math.isclose(p(90), 2.0 * 100**-0.75)
    s = ScaledSchedule(p, 0.25)
    assert math.isclose(s(90), 0.25 * p(90))
    with pytest.raises(ValidationError, match="decay_gamma"):
        PolynomialDecay(1.0, 1.0, 0.4)
    with pytest.raises(ValidationError, match="step_size"):
        Constant(0.0)


def test_temperature_scales_the_noise_only():
    """At a fixed point of the gradient only noise moves θ: its spread scales with sqrt(η T)."""
    from pyrodps.sgmcmc.integrators import langevin_step_

    g = torch.Generator().manual_seed(0)
    noise = torch.randn(100_000, generator=g)
    x = langevin_step_(torch.zeros(100_000), torch.zeros(100_000), 0.04, 0.25, noise)
    assert abs(x.std().item() - math.sqrt(0.04 * 0.25)) < 1e-3


def test_gradient_clipping_bounds_the_norm():
    from pyrodps.sgmcmc.integrators import clip_norm_

    g = torch.full((100,), 3.0)
    clip_norm_(g, 6.0)
    assert math.isclose(torch.linalg.vector_norm(g).item(), 6.0, rel_tol=1e-5)
    small = torch.full((4,), 0.1)
    clip_norm_(small, 6.0)
    assert torch.equal(small, torch.full((4,), 0.1))
