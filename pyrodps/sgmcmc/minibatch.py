"""Minibatch index streams: epoch-wise reshuffling without replacement.

Every batch is marginally a uniform random subset of its set, so the ``N/|B|``-scaled sums of the
model are unbiased. A fresh permutation is drawn once per epoch (amortised O(B) per step).
"""

from __future__ import annotations

import torch


class IndexStream:
    """Batches of ``batch_size`` distinct indices from ``range(n)``; the last partial batch of an
    epoch is dropped. With ``batch_size == n`` every batch is ``arange(n)`` and no randomness is used."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu") -> None:
        self.n, self.batch_size, self.generator, self.device = n, batch_size, generator, device
        self._perm = torch.arange(n, device=device)
        self._pos = n if batch_size < n else 0

    def next(self) -> torch.Tensor:
        if self.batch_size == self.n:
            return self._perm
        if self._pos + self.batch_size > self.n:
            self._perm = torch.randperm(self.n, generator=self.generator).to(self.device)
            self._pos = 0
        out = self._perm[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return out
