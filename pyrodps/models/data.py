"""The data the BADS model sees: train and meta sets as tensors, one minibatch, and the stream of
minibatches (epoch-wise reshuffling without replacement for each set, so the ``N/|B|``-scaled sums
of the model are unbiased)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pyrodps.errors import ValidationError, check_positive_int
from pyrodps.sgmcmc.minibatch import IndexStream


@dataclass
class SelectionData:
    """Train and meta sets as tensors (features first dimension = examples)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_meta: torch.Tensor
    y_meta: torch.Tensor

    @property
    def num_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def num_meta(self) -> int:
        return int(self.x_meta.shape[0])


@dataclass
class Batch:
    """One minibatch: indices into the train and meta sets and the gathered examples."""

    idx_train: torch.Tensor
    x_train: torch.Tensor
    y_train: torch.Tensor
    idx_meta: torch.Tensor
    x_meta: torch.Tensor
    y_meta: torch.Tensor

    @classmethod
    def gather(cls, data: SelectionData, idx_train: torch.Tensor, idx_meta: torch.Tensor) -> Batch:
        return cls(
            idx_train,
            data.x_train.index_select(0, idx_train),
            data.y_train.index_select(0, idx_train),
            idx_meta,
            data.x_meta.index_select(0, idx_meta),
            data.y_meta.index_select(0, idx_meta),
        )



class MinibatchStream:
    """Joint train/meta minibatches for the BADS kernel."""

    snapshot_exclude = ("data",)  # a checkpoint saves the streams' positions, not the data set

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
