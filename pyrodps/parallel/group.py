"""The process group of a data-parallel run: started from ``torchrun``'s environment, and what a fit
needs from it (the wrapped kernel, rank 0 as the only writer, the checkpointer).

``torchrun --nproc_per_node K ...`` starts K processes with ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT`` set. :func:`data_parallel` reads them: with ``WORLD_SIZE > 1`` it
starts the default process group (``gloo`` for CPU tensors; ``nccl`` for CUDA, one device per local rank,
``cuda:LOCAL_RANK``), yields a :class:`DataParallel` and shuts the group down afterwards; otherwise it
yields ``None`` and nothing changes.

Rank 0 owns the run folder: it writes the checkpoints and every result. The other ranks work in a
private scratch folder (:meth:`DataParallel.scratch_folder`) that is removed when the group ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from pyrodps.bads.build import BADSSetup
from pyrodps.bads.config import BADSConfig
from pyrodps.bads.kernel import BADSKernel
from pyrodps.errors import ValidationError
from pyrodps.parallel.checkpoint import RankZeroCheckpointer
from pyrodps.parallel.distributed import DataParallelKernel
from pyrodps.parallel.sharded import Comm
from pyrodps.run.checkpoint import Checkpointer

ENV_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


def environment_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset), checked."""
    text = os.environ.get("WORLD_SIZE", "1")
    try:
        size = int(text)
    except ValueError:
        raise ValidationError("WORLD_SIZE", f"must be a positive integer, got {text!r}") from None
    if size < 1:
        raise ValidationError("WORLD_SIZE", f"must be a positive integer, got {size}")
    return size


def check_config(config: BADSConfig) -> None:
    """What data-parallel sampling supports, checked before any process starts: the weight table
    (``weights="table"``; ``log_z`` ``"ignore"`` or ``"companion"``, any ``weight_update``)."""
    if config.weights != "table":
        raise ValidationError("weights", f"data-parallel sampling supports the weight table (weights='table'), not "
                              f"weights={config.weights!r} (the methods bads-weightnet, bads-grouped, "
                              "bads-point-group); run it on one process")


@dataclass
class DataParallel:
    """Rank ``rank`` of ``world_size`` processes sampling one chain together (module docstring).

    ``device`` is where this rank's tensors live (and the collectives run); ``group`` the process group
    (``None``: the default one, started by :func:`data_parallel` or by the caller)."""

    rank: int
    world_size: int
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    group: object = None
    _scratch: Path | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.comm = Comm(self.rank, self.world_size, self.device, self.group)

    @property
    def is_writer(self) -> bool:
        """Rank 0 writes the run's outputs and checkpoints; the others write nothing that stays."""
        return self.rank == 0

    def scratch_folder(self, name: str) -> Path:
        """A folder private to this rank (under a temporary folder removed by :meth:`close`)."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix=f"pyrodps-rank{self.rank}-"))
        return self._scratch / name

    def close(self) -> None:
        """Remove the scratch folder."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def wrap(self, kernel: BADSKernel) -> DataParallelKernel:
        """``kernel`` run by the ranks of this group (:class:`~pyrodps.parallel.distributed.DataParallelKernel`)."""
        return DataParallelKernel(kernel, self.comm)

    def wrap_setup(self, setup: BADSSetup) -> BADSSetup:
        """``setup`` with its kernel wrapped, after checking that every batch can be shared by the ranks."""
        check_config(setup.config)
        meta = setup.data.num_meta if setup.config.meta_batch_size is None else \
            min(setup.config.meta_batch_size, setup.data.num_meta)
        for argument, size in (("batch_size", setup.config.batch_size), ("meta_batch_size", meta)):
            if size < self.world_size:
                raise ValidationError(argument, f"a batch of {size} points cannot be shared by {self.world_size} "
                                      "ranks: it needs at least one point per rank")
        return dataclasses.replace(setup, kernel=self.wrap(setup.kernel))

    def prepare_fit(self, setup: BADSSetup, *, progress: bool, checkpoint_dir: str | Path | None,
                    memory_budget: int | None) -> tuple[BADSSetup, bool, str | Path | None]:
        """What :func:`~pyrodps.bads.fit.fit_bads` runs with on this rank: the wrapped setup, the progress
        bar on rank 0 only, and the checkpoint folder (rank 0's own; a scratch folder on the others, which
        read the checkpoint through rank 0)."""
        if memory_budget is not None:
            raise ValidationError("memory_budget", "spilling kept draws to disk is not supported in data-parallel "
                                  "runs (a resumed run could not find the other ranks' chunks); leave it unset")
        wrapped = self.wrap_setup(setup)
        if not self.is_writer and checkpoint_dir is not None:
            checkpoint_dir = self.scratch_folder("fit")
        return wrapped, progress and self.is_writer, checkpoint_dir

    def checkpointer(self, checkpoint: Checkpointer) -> RankZeroCheckpointer:
        """``checkpoint`` written by rank 0 and read by every rank (:mod:`pyrodps.parallel.checkpoint`)."""
        return RankZeroCheckpointer(checkpoint, self.comm)

    def broadcast_object(self, obj: object) -> object:
        """Rank 0's ``obj`` on every rank."""
        return self.comm.broadcast_object(obj)


_current: list[DataParallel] = []


def current_data_parallel() -> DataParallel | None:
    """The :class:`DataParallel` of the :func:`data_parallel` in force, or ``None`` (one process)."""
    return _current[-1] if _current else None


@contextlib.contextmanager
def data_parallel(device: str | torch.device = "cpu", timeout_s: float = 1800.0) -> Iterator[DataParallel | None]:
    """With ``WORLD_SIZE > 1`` in the environment (``torchrun``): start the default process group for
    tensors on ``device`` (``"cpu"``: gloo; ``"cuda"``: nccl on ``cuda:LOCAL_RANK``), yield this rank's
    :class:`DataParallel` and shut the group down afterwards (a group the caller started is kept).
    Otherwise yield ``None``. ``timeout_s``: how long a collective waits for a missing peer."""
    world = environment_world_size()
    if world == 1:
        yield None
        return
    missing = [v for v in ENV_VARS if v not in os.environ]
    if missing:
        raise ValidationError(missing[0], f"WORLD_SIZE={world} but {', '.join(missing)} unset: start the run with "
                              "torchrun (torchrun --nproc_per_node K -m pyrodps run ...)")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    kind = torch.device(device).type
    if kind == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif kind != "cpu":
        raise ValidationError("device", f"data-parallel runs support cpu (gloo) and cuda (nccl), got {device}")
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if kind == "cuda" else "gloo", timeout=timedelta(seconds=timeout_s))
    if dist.get_world_size() != world or dist.get_rank() != rank:
        raise ValidationError("WORLD_SIZE", f"the process group has rank {dist.get_rank()} of {dist.get_world_size()}, "
                              f"the environment says {rank} of {world}")
    group = DataParallel(rank, world, local_rank, torch.device(device))
    _current.append(group)
    try:
        yield group
    finally:
        _current.pop()
        group.close()
        if started:
            dist.destroy_process_group()
