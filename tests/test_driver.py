"""The driver's bookkeeping with observers: the weight statistics and the running-average window S_avg."""

from __future__ import annotations

import pytest
import torch

from pyrodps.bads.observers import WeightStatistics
from pyrodps.errors import ValidationError
from pyrodps.run import sample


class _CountingKernel:
    """Sets every weight to ``t / 100`` at step ``t`` (all points in every batch), so window means
    are known in closed form."""

    def __init__(self, num_points: int) -> None:
        self.n = num_points

    def init(self, seed: int, chain: int = 0) -> dict:
        return {"t": 0}

    def step(self, state: dict, batch: object, diagnostics: bool = True):
        t = state["t"]
        state["t"] = t + 1
        w = torch.full((self.n,), t / 100.0)
        return state, {"idx": torch.arange(self.n), "w": w, "energy": torch.tensor(0.0)}

    def site(self, state, info, name):
        return info[name]


class _NoBatches:
    def next(self) -> None:
        return None


def _run(num_steps, burn_in=0, average_window=None, **kwargs):
    window_start = None if average_window is None else num_steps - average_window
    stats = WeightStatistics(5, burn_in, window_start)
    sample(_CountingKernel(5), lambda gen: _NoBatches(), num_steps=num_steps, burn_in=burn_in,
           observers={"weights": stats}, progress=False, **kwargs)
    return stats


def test_window_mean_is_the_mean_of_the_last_steps():
    stats = _run(num_steps=100, burn_in=10, num_chains=2, average_window=20)
    # steps 80..99 -> w = 0.80..0.99, mean 0.895; overall mean over steps 10..99 is 0.545
    torch.testing.assert_close(stats.window_mean(), torch.full((5,), 0.895, dtype=torch.float64))
    # float32 running means: 90 visits round the stored mean at most 90 times by 2^-24 (5.4e-6 relative)
    torch.testing.assert_close(stats.mean_std()[0], torch.full((5,), 0.545, dtype=torch.float64), rtol=5.4e-6, atol=0)
    assert stats.chain_means().shape == (2, 5)


def test_window_may_reach_into_burn_in_and_is_optional():
    stats = _run(num_steps=10, burn_in=8, average_window=10)
    torch.testing.assert_close(stats.window_mean(), torch.full((5,), 0.045, dtype=torch.float64))
    assert _run(num_steps=10).window_mean() is None


def test_a_bad_observer_is_refused_before_any_step():
    with pytest.raises(ValidationError, match="observers"):
        sample(_CountingKernel(5), lambda gen: _NoBatches(), num_steps=10, observers={"x": object()}, progress=False)
