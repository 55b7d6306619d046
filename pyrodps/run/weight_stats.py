"""Online per-point statistics of the instance weights, in O(N) memory and O(B) work per update.

Statistics over the visits of each point: a table weight ``w_i`` only moves when
point ``i`` is in the train batch, and it keeps that value until its next visit, so with
epoch-wise reshuffling every value is held for about one epoch and the mean over visits is the
time average the sampler targets.

Memory per point (issue #14: the weight state of N = 10^7 points within 200 MB):

* :class:`OnlineWeightStats`, mean and variance over all visits: 12 bytes (an int32 visit count and the
  float32 running mean and sum of squared deviations ``M2`` of Welford's algorithm);
* :class:`WindowMean`, the mean over the visits in the running-average window: a sparse log of the
  window's visits (8 bytes per visit) while that is smaller than a dense per-point count and mean (8 bytes
  per point), which it becomes otherwise.
"""

from __future__ import annotations

import torch

from pyrodps.errors import ValidationError


def _batch_moments(idx: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The distinct points of a batch and, per point, the count, mean and ``M2`` of its values there
    (float64; a point may occur more than once in ``idx``)."""
    points, inverse = torch.unique(idx, return_inverse=True)
    w = w.to(torch.float64)
    count = torch.zeros(points.shape[0], dtype=torch.float64, device=w.device).index_add_(
        0, inverse, torch.ones_like(w))
    mean = torch.zeros_like(count).index_add_(0, inverse, w) / count
    m2 = torch.zeros_like(count).index_add_(0, inverse, (w - mean[inverse]).square())
    return points, count, mean, m2


def _merge(n_a: torch.Tensor, mean_a: torch.Tensor, m2_a: torch.Tensor, n_b: torch.Tensor, mean_b: torch.Tensor,
           m2_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chan et al.'s pairwise merge of two sets' (count, mean, ``M2``):
    ``n = n_a + n_b``, ``mean = mean_a + δ n_b / n``, ``M2 = M2_a + M2_b + δ² n_a n_b / n`` with
    ``δ = mean_b - mean_a`` (0 where ``n = 0``)."""
    n = n_a + n_b
    delta = mean_b - mean_a
    share = torch.where(n > 0, n_b / n.clamp(min=1), torch.zeros_like(n))
    return n, mean_a + delta * share, m2_a + m2_b + delta.square() * n_a * share


class OnlineWeightStats:
    """Per-point visit count, mean and ``M2 = Σ (w - mean)²`` of the weights (Welford's algorithm).

    Stored as int32 counts and float32 mean and ``M2`` (12 bytes per point); an update gathers the
    batch's points, merges the batch's own moments in float64 (:func:`_merge`, exact for repeated
    points) and scatters back, O(B log B). Each update rounds the stored mean to float32, so after
    ``n`` visits the mean carries an error of about ``sqrt(n)`` float32 ulps (``~1e-5`` at ``n = 10^4``,
    far below the posterior sd of any weight); the variance has the same relative error.
    """

    def __init__(self, num_points: int, device: torch.device | str = "cpu") -> None:
        self.count = torch.zeros(num_points, dtype=torch.int32, device=device)
        self._mean = torch.zeros(num_points, dtype=torch.float32, device=device)
        self._m2 = torch.zeros(num_points, dtype=torch.float32, device=device)

    def update(self, idx: torch.Tensor, w: torch.Tensor) -> None:
        """Add one observation ``w[k]`` for point ``idx[k]``."""
        idx = idx.to(self.count.device)
        points, n_b, mean_b, m2_b = _batch_moments(idx, w.to(self.count.device))
        n, mean, m2 = _merge(self.count.index_select(0, points).to(torch.float64),
                             self._mean.index_select(0, points).to(torch.float64),
                             self._m2.index_select(0, points).to(torch.float64), n_b, mean_b, m2_b)
        self.count.index_copy_(0, points, n.to(torch.int32))
        self._mean.index_copy_(0, points, mean.to(torch.float32))
        self._m2.index_copy_(0, points, m2.to(torch.float32))

    @property
    def mean(self) -> torch.Tensor:
        """Mean over visits (0 for points never visited), float64."""
        return self._mean.to(torch.float64)

    @property
    def variance(self) -> torch.Tensor:
        """Sample variance ``M2 / (n - 1)`` over visits (0 where a point was seen fewer than twice), float64."""
        return self._variance(self.count.to(torch.float64), self._m2.to(torch.float64))

    def nbytes(self) -> int:
        """Bytes held: ``12 N``."""
        return sum(t.numel() * t.element_size() for t in (self.count, self._mean, self._m2))

    @staticmethod
    def _variance(count: torch.Tensor, m2: torch.Tensor) -> torch.Tensor:
        return torch.where(count > 1, m2.clamp(min=0) / (count - 1).clamp(min=1), torch.zeros_like(m2))

    @staticmethod
    def pool(stats: list[OnlineWeightStats]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance over the visits of all chains together (float64):
        ``mean = Σ_c n_c mean_c / n``, ``M2 = Σ_c M2_c + Σ_c n_c (mean_c - mean)²``."""
        count = sum(s.count.to(torch.float64) for s in stats)
        mean = sum(s.count.to(torch.float64) * s.mean for s in stats) / count.clamp(min=1)
        m2 = sum(s._m2.to(torch.float64) + s.count.to(torch.float64) * (s.mean - mean).square() for s in stats)
        return mean, OnlineWeightStats._variance(count, m2)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"count": self.count.clone(), "mean": self._mean.clone(), "m2": self._m2.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore; also reads the float64 ``count``/``total``/``total_sq`` sums of checkpoints written
        before the statistics were stored as Welford moments."""
        if "total" in state:  # the earlier format: sums over visits
            count = state["count"].to(torch.float64)
            mean = state["total"].to(torch.float64) / count.clamp(min=1)
            state = {"count": count, "mean": mean,
                     "m2": (state["total_sq"].to(torch.float64) - mean * state["total"].to(torch.float64)).clamp(min=0)}
        for name, target in (("count", self.count), ("mean", self._mean), ("m2", self._m2)):
            value = state[name]
            if value.shape != target.shape:
                raise ValidationError("checkpoint", f"weight statistics {name!r} have shape {tuple(value.shape)}, "
                                                    f"expected {tuple(target.shape)}")
            target.copy_(value.to(target.dtype))


class WindowMean:
    """Mean of every weight over its visits from some step on (the running-average window ``S_avg``).

    The window usually covers few visits per point (the last tenth of the steps), so its visits are
    kept as a **sparse log** of (point, weight) pairs, int32 and float32, 8 bytes per visit, until the
    log would outgrow a **dense** per-point int32 count and float32 running mean (8 bytes per point, merged
    as in :class:`OnlineWeightStats`), which the log is then folded into. Memory is ``8 min(visits, N)``
    bytes, plus one batch in flight.
    """

    def __init__(self, num_points: int, device: torch.device | str = "cpu") -> None:
        self.num_points, self.device = num_points, torch.device(device)
        self._idx: list[torch.Tensor] = []
        self._w: list[torch.Tensor] = []
        self._logged = 0
        self.count: torch.Tensor | None = None  # dense form
        self.mean: torch.Tensor | None = None

    @property
    def dense(self) -> bool:
        return self.count is not None

    def update(self, idx: torch.Tensor, w: torch.Tensor) -> None:
        """Add one visit ``w[k]`` of point ``idx[k]``."""
        idx, w = idx.to(self.device, torch.int32), w.detach().to(self.device, torch.float32)
        if self.dense:
            self._fold(idx, w)
            return
        self._idx.append(idx)
        self._w.append(w)
        self._logged += idx.shape[0]
        if self._logged >= self.num_points:  # the log is now as large as the dense form
            self.count = torch.zeros(self.num_points, dtype=torch.int32, device=self.device)
            self.mean = torch.zeros(self.num_points, dtype=torch.float32, device=self.device)
            self._fold(*self._log())
            self._idx, self._w, self._logged = [], [], 0

    def _log(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._idx:
            return (torch.zeros(0, dtype=torch.int32, device=self.device),
                    torch.zeros(0, dtype=torch.float32, device=self.device))
        return torch.cat(self._idx), torch.cat(self._w)

    def _fold(self, idx: torch.Tensor, w: torch.Tensor) -> None:
        points, n_b, mean_b, m2_b = _batch_moments(idx.long(), w)
        n, mean, _ = _merge(self.count.index_select(0, points).to(torch.float64),
                            self.mean.index_select(0, points).to(torch.float64), torch.zeros_like(m2_b), n_b, mean_b,
                            m2_b)
        self.count.index_copy_(0, points, n.to(torch.int32))
        self.mean.index_copy_(0, points, mean.to(torch.float32))

    def sums(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-point visit count and sum of the weights in the window, float64 ``(N,)`` each."""
        if self.dense:
            count = self.count.to(torch.float64)
            return count, count * self.mean.to(torch.float64)
        idx, w = self._log()
        idx = idx.long()
        count = torch.zeros(self.num_points, dtype=torch.float64, device=self.device)
        count.index_add_(0, idx, torch.ones_like(w, dtype=torch.float64))
        total = torch.zeros_like(count).index_add_(0, idx, w.to(torch.float64))
        return count, total

    def nbytes(self) -> int:
        """Bytes held now."""
        if self.dense:
            return self.count.numel() * 4 + self.mean.numel() * 4
        return self._logged * 8

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.dense:
            return {"count": self.count.clone(), "mean": self.mean.clone()}
        idx, w = self._log()
        return {"idx": idx, "w": w}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore; a dense state of the earlier float64 format (``count``/``total``/``total_sq``) too."""
        self._idx, self._w, self._logged, self.count, self.mean = [], [], 0, None, None
        if "idx" in state:
            if state["idx"].shape != state["w"].shape:
                raise ValidationError("checkpoint", "the weight window's log has idx and w of different lengths")
            if state["idx"].numel():
                self.update(state["idx"], state["w"])
            return
        if "total" in state:  # the earlier format: float64 sums
            state = {"count": state["count"], "mean": state["total"] / state["count"].clamp(min=1)}
        for name in ("count", "mean"):
            if state[name].shape != (self.num_points,):
                raise ValidationError("checkpoint", f"weight window {name!r} has shape {tuple(state[name].shape)}, "
                                                    f"expected ({self.num_points},)")
        self.count = state["count"].to(self.device, torch.int32).clone()
        self.mean = state["mean"].to(self.device, torch.float32).clone()
