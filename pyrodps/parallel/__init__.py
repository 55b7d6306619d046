"""Data-parallel BADS sampling on ``torch.distributed``: several processes (``torchrun``; CPU with gloo,
GPUs with NCCL) sample one chain on one global minibatch per step, with the result of one process.

* :class:`DataParallelKernel` wraps a :class:`~pyrodps.bads.kernel.BADSKernel`: the network runs on each
  rank's share of the batch, θ gradients are all-reduced, the Langevin noise and the weight-block update
  are identical on every rank, and the weight table is sharded by index (:mod:`pyrodps.parallel.distributed`);
* :class:`DataParallel` and :func:`data_parallel`: the process group from ``torchrun``'s environment, and
  what :func:`~pyrodps.bads.fit.fit_bads` takes as ``parallel=`` (rank 0 writes, the others read through it);
* :class:`RankZeroCheckpointer`: checkpoints that are one-process checkpoints, resumable with any number
  of processes.
"""

from pyrodps.parallel.checkpoint import RankZeroCheckpointer
from pyrodps.parallel.distributed import DataParallelKernel
from pyrodps.parallel.group import (
    DataParallel,
    check_config,
    current_data_parallel,
    data_parallel,
    environment_world_size,
)
from pyrodps.parallel.sharded import Comm, ShardedTable

__all__ = ["Comm", "DataParallel", "DataParallelKernel", "RankZeroCheckpointer", "ShardedTable", "check_config",
           "current_data_parallel", "data_parallel", "environment_world_size"]
