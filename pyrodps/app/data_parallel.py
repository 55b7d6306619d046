"""``pyrodps run`` under ``torchrun``: one BADS run sampled by several processes.

``torchrun --nproc_per_node K -m pyrodps run --method bads ...`` starts K copies of the command line;
with ``WORLD_SIZE > 1`` in their environment :func:`run_request`

1. checks, before any process group starts, that the run can be data-parallel (a BADS method with the
   weight table, no ``--memory-budget-mib``): every rank refuses a bad request alike, none waits;
2. starts the process group (:func:`pyrodps.parallel.data_parallel`; gloo, since ``pyrodps run`` samples
   on the CPU);
3. lets rank 0 validate the request against the real run folder and hands its verdict and its request
   to every rank, so all ranks run the same settings;
4. runs :func:`pyrodps.app.runner.run` on every rank: rank 0 in the run folder, the others in a private
   scratch folder removed at the end (they write nothing that stays; the run's checkpoints are written by
   rank 0 and read through it, :mod:`pyrodps.parallel.checkpoint`). Only rank 0 reports.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

from pyrodps.errors import PyrodpsError, ValidationError

if TYPE_CHECKING:
    from pyrodps.app.runner import RunRequest
    from pyrodps.parallel import DataParallel


def check_single_process(command: str) -> None:
    """Only ``pyrodps run`` runs data-parallel: refuse any other command started with ``WORLD_SIZE > 1``."""
    if "WORLD_SIZE" not in os.environ:  # the usual case: nothing to import
        return
    from pyrodps.parallel import environment_world_size

    world = environment_world_size()
    if world > 1 and command != "run":
        raise ValidationError("command", f"`pyrodps {command}` runs on one process; only `pyrodps run` samples "
                              f"data-parallel under torchrun (WORLD_SIZE={world}): start it without torchrun")


def check_request(request: RunRequest, world_size: int) -> None:
    """What a data-parallel run needs of the request, checked before any process group starts."""
    from pyrodps.app.methods import BADS_METHODS, method_config
    from pyrodps.parallel import check_config

    if request.method not in BADS_METHODS:
        raise ValidationError("method", f"only the BADS methods run data-parallel (torchrun, WORLD_SIZE={world_size}), "
                              f"not {request.method!r}: run it on one process")
    if request.memory_budget_mib is not None:
        raise ValidationError("memory_budget_mib", "spilling kept draws to disk is not supported in data-parallel "
                              "runs; leave --memory-budget-mib unset")
    check_config(method_config(request.method, request.bads_config()))


def run_request(request: RunRequest, *, progress: bool = True) -> dict | None:
    """Run ``request`` on this process, or data-parallel under torchrun (module docstring). Returns the
    metrics, or ``None`` on a rank other than 0 of a data-parallel run (rank 0 reports)."""
    from pyrodps.app.runner import run
    from pyrodps.parallel import data_parallel, environment_world_size

    world = environment_world_size()
    if world == 1:
        return run(request, progress=progress)
    check_request(request, world)
    with data_parallel() as group:
        local = agreed_request(request, group)
        metrics = run(local, progress=progress and group.is_writer)
    return metrics if group.is_writer else None


def agreed_request(request: RunRequest, group: DataParallel) -> RunRequest:
    """Rank 0's request, validated by rank 0 against the run folder, on every rank (its error raised on
    every rank); on the other ranks with the output in a private scratch folder."""
    error = None
    if group.is_writer:
        try:
            request.validate()
        except PyrodpsError as e:
            error = e
    shared, message = group.broadcast_object((request, None if error is None else str(error)))
    if error is not None:
        raise error
    if message is not None:
        raise PyrodpsError(f"rank 0 refused the run: {message}")
    if group.is_writer:
        return request
    return dataclasses.replace(shared, out=group.scratch_folder("run"), force=True)
