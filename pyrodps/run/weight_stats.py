"""Online per-point statistics of the instance weights, in O(N) memory and O(B) work per update.

Statistics over the visits of each point: a table weight ``w_i`` only moves when
point ``i`` is in the train batch, and it keeps that value until its next visit, so with
epoch-wise reshuffling every value is held for about one epoch and the mean over visits is the
time average the sampler targets.
"""

from __future__ import annotations

import torch


class OnlineWeightStats:
    """Per-point visit count, sum and sum of squares of the weights (float64 accumulators).

    ``w ∈ (0, 1)``, so the textbook ``(Σw² - (Σw)²/n) / (n - 1)`` loses nothing that matters in
    float64, and an update is three ``index_add_`` calls.
    """

    def __init__(self, num_points: int, device: torch.device | str = "cpu") -> None:
        self.count = torch.zeros(num_points, dtype=torch.float64, device=device)
        self.total = torch.zeros(num_points, dtype=torch.float64, device=device)
        self.total_sq = torch.zeros(num_points, dtype=torch.float64, device=device)
        self._ones = torch.ones(0, dtype=torch.float64, device=device)

    def update(self, idx: torch.Tensor, w: torch.Tensor) -> None:
        """Add one observation ``w[k]`` for point ``idx[k]``."""
        if self._ones.shape[0] != idx.shape[0]:
            self._ones = torch.ones(idx.shape[0], dtype=torch.float64, device=self.count.device)
        w = w.to(torch.float64)
        self.count.index_add_(0, idx, self._ones)
        self.total.index_add_(0, idx, w)
        self.total_sq.index_add_(0, idx, w * w)

    @property
    def mean(self) -> torch.Tensor:
        """Mean over visits (0 for points never visited)."""
        return self.total / self.count.clamp(min=1)

    @property
    def variance(self) -> torch.Tensor:
        """Sample variance over visits (0 where a point was seen fewer than twice)."""
        return self._variance(self.count, self.total, self.total_sq)

    @staticmethod
    def _variance(count: torch.Tensor, total: torch.Tensor, total_sq: torch.Tensor) -> torch.Tensor:
        m2 = (total_sq - total.square() / count.clamp(min=1)).clamp(min=0)
        return torch.where(count > 1, m2 / (count - 1).clamp(min=1), torch.zeros_like(m2))

    @staticmethod
    def pool(stats: list[OnlineWeightStats]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance over the visits of all chains together."""
        count = sum(s.count for s in stats)
        total = sum(s.total for s in stats)
        total_sq = sum(s.total_sq for s in stats)
        return total / count.clamp(min=1), OnlineWeightStats._variance(count, total, total_sq)
