"""The collectives of a data-parallel run, and the per-point tables sharded across its ranks.

**Ownership.** Point ``i`` of the training set belongs to rank ``i mod W`` (``W`` ranks), which stores
its entry at local position ``i div W``: rank ``r`` holds ``⌈(N - r) / W⌉`` entries, a strided shard,
so that every rank owns about ``N / W`` points whatever the order of the data set.

**Gathering a batch.** A step needs the batch's entries on every rank. Each rank writes the entries it
owns into a zero vector of length ``B`` and the vectors are summed over the ranks (one all-reduce):
every position has exactly one owner and ``x + 0 = x`` in floating point, so the gathered values are
exact. Several tables (and a few control numbers) travel in one float64 buffer, which holds float32
values and integer counts exactly.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from pyrodps.errors import ValidationError


class Comm:
    """The collectives of one data-parallel run: ``rank`` of ``world_size`` on the process ``group``
    (``None``: the default group). Tensors go to ``device`` for a collective and come back (NCCL
    reduces CUDA tensors only). A world of one process needs no process group: every collective is then
    the identity."""

    def __init__(self, rank: int, world_size: int, device: torch.device | str = "cpu", group: object = None) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValidationError("rank", f"must lie in [0, world_size) with world_size >= 1, got {rank} of {world_size}")
        self.rank, self.world_size, self.device, self.group = int(rank), int(world_size), torch.device(device), group

    def all_reduce_(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` summed over the ranks, in place."""
        if self.world_size == 1:
            return x
        y = x.to(self.device)
        dist.all_reduce(y, op=dist.ReduceOp.SUM, group=self.group)
        if y is not x:
            x.copy_(y)
        return x

    def all_gather(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``x`` (the same shape on every rank), in rank order."""
        if self.world_size == 1:
            return [x]
        y = x.to(self.device)
        parts = [torch.empty_like(y) for _ in range(self.world_size)]
        dist.all_gather(parts, y, group=self.group)
        return [p.to(x.device) for p in parts]

    def broadcast_object(self, obj: object) -> object:
        """Rank 0's ``obj`` on every rank (pickled; only what rank 0 produced travels)."""
        if self.world_size == 1:
            return obj
        box = [obj if self.rank == 0 else None]
        device = self.device if self.device.type == "cuda" else None
        dist.broadcast_object_list(box, src=0, group=self.group, device=device)
        return box[0]


def shard_size(num_points: int, rank: int, world_size: int) -> int:
    """How many of ``range(num_points)`` rank ``rank`` owns (``i mod W == rank``)."""
    return max(0, (num_points - rank + world_size - 1) // world_size)


class ShardedTable:
    """A per-point table of length ``num_points`` (the weight logits ``u``, the companion's running
    means and visit counts) of which this rank stores the entries it owns (module docstring).

    Reading entries of other ranks is a collective (:meth:`index_select`, :meth:`full`): every rank
    must call it at the same point of the run, as the driver and the observers do. A checkpoint saves
    :attr:`local` with its shape (:func:`~pyrodps.run.checkpoint.snapshot` walks the attributes; the
    communicator is left out); :mod:`pyrodps.parallel.checkpoint` turns the shards into the whole table
    on disk."""

    snapshot_exclude = ("comm",)
    FIELDS = ("local", "num_points", "rank", "world_size")

    def __init__(self, local: torch.Tensor, num_points: int, comm: Comm) -> None:
        if local.shape != (shard_size(num_points, comm.rank, comm.world_size),):
            raise ValidationError("local", f"rank {comm.rank} of {comm.world_size} owns "
                                  f"{shard_size(num_points, comm.rank, comm.world_size)} of {num_points} "
                                  f"entries, got a shard of shape {tuple(local.shape)}")
        self.local, self.num_points, self.comm = local, int(num_points), comm
        self.rank, self.world_size = comm.rank, comm.world_size

    @classmethod
    def from_full(cls, full: torch.Tensor, comm: Comm) -> ShardedTable:
        """This rank's shard of the whole table ``full`` (copied)."""
        return cls(full[comm.rank :: comm.world_size].clone(), full.shape[0], comm)

    @staticmethod
    def shard_snapshot(full: torch.Tensor, rank: int, world_size: int) -> dict:
        """What :func:`~pyrodps.run.checkpoint.snapshot` gives for rank ``rank``'s shard of ``full``."""
        return {"__object__": {"local": full[rank::world_size].clone(), "num_points": int(full.shape[0]),
                               "rank": rank, "world_size": world_size}}

    @classmethod
    def is_snapshot(cls, obj: object) -> bool:
        """Whether ``obj`` is a :func:`~pyrodps.run.checkpoint.snapshot` of a sharded table."""
        return isinstance(obj, dict) and isinstance(obj.get("__object__"), dict) and \
            set(obj["__object__"]) == set(cls.FIELDS)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.num_points,))

    @property
    def dtype(self) -> torch.dtype:
        return self.local.dtype

    @property
    def device(self) -> torch.device:
        return self.local.device

    def owned(self, idx: torch.Tensor) -> torch.Tensor:
        """Which entries of ``idx`` this rank owns (a bool mask)."""
        return idx.remainder(self.world_size) == self.rank

    def read_owned(self, idx: torch.Tensor, out: torch.Tensor) -> None:
        """Write the owned entries of ``idx`` into ``out`` (same length as ``idx``); leave the rest."""
        mine = self.owned(idx)
        out[mine] = self.local.index_select(0, idx[mine].div(self.world_size, rounding_mode="floor")).to(out.dtype)

    def write_(self, idx: torch.Tensor, values: torch.Tensor) -> None:
        """Store ``values[k]`` at point ``idx[k]`` for the points this rank owns (the others are theirs)."""
        mine = self.owned(idx)
        self.local.index_copy_(0, idx[mine].div(self.world_size, rounding_mode="floor"),
                               values[mine].to(self.local.dtype))

    def index_select(self, dim: int, idx: torch.Tensor) -> torch.Tensor:
        """The entries ``idx`` from their owners, on every rank (a collective), like
        ``Tensor.index_select(0, idx)``."""
        if dim != 0:
            raise ValidationError("dim", f"a sharded table has one dimension, got dim={dim}")
        return gather_rows([self], idx, self.comm)[0][0]

    def full(self) -> torch.Tensor:
        """The whole table on every rank (a collective; O(N) memory)."""
        width = shard_size(self.num_points, 0, self.world_size)
        padded = self.local.new_zeros(width)
        padded[: self.local.shape[0]] = self.local
        out = self.local.new_empty(self.num_points)
        for r, part in enumerate(self.comm.all_gather(padded)):
            out[r :: self.world_size] = part[: shard_size(self.num_points, r, self.world_size)]
        return out


def gather_rows(tables: list[ShardedTable], idx: torch.Tensor, comm: Comm,
                control: float = 0.0) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The entries ``idx`` of every table, from their owners, in one all-reduce (module docstring),
    and every rank's ``control`` number (a vector of ``world_size``: rank ``r``'s at position ``r``).
    Every rank gets the same values."""
    b = idx.shape[0]
    buf = torch.zeros(len(tables) * b + comm.world_size, dtype=torch.float64, device=idx.device)
    for k, table in enumerate(tables):
        table.read_owned(idx, buf[k * b : (k + 1) * b])
    buf[len(tables) * b + comm.rank] = control
    comm.all_reduce_(buf)
    rows = [buf[k * b : (k + 1) * b].to(table.dtype) for k, table in enumerate(tables)]
    return rows, buf[len(tables) * b :]


def same_on_every_rank(values: torch.Tensor, comm: Comm) -> torch.Tensor:
    """Which entries of the float64 vector ``values`` are equal on every rank (a bool vector, the same
    on every rank)."""
    parts = comm.all_gather(values.to(torch.float64))
    return torch.stack([p == parts[0] for p in parts]).all(0)
