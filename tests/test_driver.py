"""The driver's bookkeeping: the running-average window S_avg of the reported weights."""

from __future__ import annotations

import pytest
import torch

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


def _run(**kwargs):
    return sample(_CountingKernel(5), lambda gen: _NoBatches(), num_points=5, progress=False, **kwargs)


def test_window_mean_is_the_mean_of_the_last_steps():
    res = _run(num_steps=100, burn_in=10, num_chains=2, average_window=20)
    # steps 80..99 -> w = 0.80..0.99, mean 0.895; overall mean over steps 10..99 is 0.545
    torch.testing.assert_close(res.weight_window_mean(), torch.full((5,), 0.895, dtype=torch.float64))
    torch.testing.assert_close(res.weight_mean_std()[0], torch.full((5,), 0.545, dtype=torch.float64))


def test_window_may_reach_into_burn_in_and_is_optional():
    res = _run(num_steps=10, burn_in=8, average_window=10)
    torch.testing.assert_close(res.weight_window_mean(), torch.full((5,), 0.045, dtype=torch.float64))
    assert _run(num_steps=10).weight_window_mean() is None


@pytest.mark.parametrize("window", [0, 11, -1])
def test_bad_window_is_refused(window):
    with pytest.raises(ValidationError, match="average_window"):
        _run(num_steps=10, average_window=window)
