"""Online per-point statistics of the instance weights, in O(N) memory and O(B) work per update.

Welford's algorithm, run on the visits of each point: a table weight ``w_i`` only moves when
point ``i`` is in the train batch, and it keeps that value until its next visit, so with
epoch-wise reshuffling every value is held for about one epoch and the mean over visits is the
time average the sampler targets.
"""

from __future__ import annotations

import torch


class OnlineWeightStats:
    """Per-point count, mean and sum of squared deviations of the weights."""

    def __init__(self, num_points: int, device: "torch.device | str" = "cpu") -> None:
        self.count = torch.zeros(num_points, dtype=torch.float64, device=device)
        self.mean = torch.zeros(num_points, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(num_points, dtype=torch.float64, device=device)

    def update(self, idx: torch.Tensor, w: torch.Tensor) -> None:
        """Add one observation ``w[k]`` for point ``idx[k]`` (indices unique within a call)."""
        w = w.to(torch.float64)
        n = self.count[idx] + 1.0
        mean = self.mean[idx]
        delta = w - mean
        mean = mean + delta / n
        self.count[idx] = n
        self.mean[idx] = mean
        self.m2[idx] = self.m2[idx] + delta * (w - mean)

    @property
    def variance(self) -> torch.Tensor:
        """Sample variance over visits (0 where a point was seen fewer than twice)."""
        return torch.where(self.count > 1, self.m2 / (self.count - 1).clamp(min=1), torch.zeros_like(self.m2))

    @staticmethod
    def pool(stats: "list[OnlineWeightStats]") -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance pooled over chains (Chan et al.'s parallel combination)."""
        count = torch.stack([s.count for s in stats]).sum(0)
        safe = count.clamp(min=1)
        mean = torch.stack([s.count * s.mean for s in stats]).sum(0) / safe
        m2 = torch.stack([s.m2 + s.count * (s.mean - mean).square() for s in stats]).sum(0)
        var = torch.where(count > 1, m2 / (count - 1).clamp(min=1), torch.zeros_like(m2))
        return mean, var
