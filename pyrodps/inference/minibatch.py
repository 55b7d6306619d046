"""Minibatch index streams: epoch-wise reshuffling without replacement.

Every batch is marginally a uniform random subset of its set, so the ``N/|B|``-scaled sums of the
model are unbiased. A fresh permutation is drawn once per epoch (amortised O(B) per step).
"""

from __future__ import annotations

import torch

from pyrodps.errors import ValidationError, check_positive_int
from pyrodps.models.bads import Batch, SelectionData


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


class MinibatchStream:
    """Joint train/meta minibatches for the BADS kernel."""

    def __init__(
        self,
        data: SelectionData,
        batch_size: int,
        meta_batch_size: int | None,
        generator: torch.Generator,
    ) -> None:
        check_batch_sizes(data, batch_size, meta_batch_size)
        meta_bs = data.num_meta if meta_batch_size is None else min(meta_batch_size, data.num_meta)
        device = data.x_train.device
        self.data = data
        self.train = IndexStream(data.num_train, batch_size, generator, device)
        self.meta = IndexStream(data.num_meta, meta_bs, generator, device)

    def next(self) -> Batch:
        it = self.train.next()
        if self.meta.batch_size == self.data.num_meta:  # the whole meta set every step: no copy
            d = self.data
            return Batch(it, d.x_train.index_select(0, it), d.y_train.index_select(0, it), self.meta.next(), d.x_meta, d.y_meta)
        return Batch.gather(self.data, it, self.meta.next())


def check_batch_sizes(data: SelectionData, batch_size: int, meta_batch_size: int | None) -> None:
    """Batch sizes must be positive and no larger than their set."""
    check_positive_int("batch_size", batch_size)
    if batch_size > data.num_train:
        raise ValidationError(
            "batch_size", f"{batch_size} is larger than the training set ({data.num_train} points)"
        )
    if meta_batch_size is not None:
        check_positive_int("meta_batch_size", meta_batch_size)
        if meta_batch_size > data.num_meta:
            raise ValidationError(
                "meta_batch_size", f"{meta_batch_size} is larger than the meta set ({data.num_meta} points)"
            )
