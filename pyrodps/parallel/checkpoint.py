"""Checkpoints of a data-parallel run: rank 0 writes them, every rank resumes from them.

The driver builds the same payload on every rank (:func:`pyrodps.run.driver.sample`), except for the
sharded tables, where each rank's snapshot holds its own shard. :class:`RankZeroCheckpointer` gathers
every table into the whole table (a collective on every rank), and rank 0 writes the payload with the
ordinary :class:`~pyrodps.run.checkpoint.Checkpointer` (two generations, checksums, atomic writes). The
file is therefore **exactly a one-process checkpoint**: a run can be resumed with any number of
processes, one included. Resuming, rank 0 reads the file (and falls back to the previous generation as
usual) and broadcasts the payload; each rank keeps its shard of the tables. So only rank 0 needs the
run folder; the other ranks get everything over the process group.
"""

from __future__ import annotations

from pathlib import Path

from pyrodps.errors import PyrodpsError
from pyrodps.parallel.distributed import SHARDED_FIELDS
from pyrodps.parallel.sharded import Comm, ShardedTable
from pyrodps.run.checkpoint import Checkpointer


class PeerError(PyrodpsError):
    """Rank 0 failed where every rank waits for it (reading or writing a checkpoint)."""


class RankZeroCheckpointer:
    """A :class:`~pyrodps.run.checkpoint.Checkpointer` for the ranks of ``comm`` (module docstring);
    ``checkpointer`` is rank 0's (on the other ranks it is never written or read). :attr:`path` is
    rank 0's on every rank, for the driver's messages."""

    def __init__(self, checkpointer: Checkpointer, comm: Comm) -> None:
        self.inner, self.comm, self.every = checkpointer, comm, checkpointer.every
        self.path = Path(comm.broadcast_object(str(checkpointer.path)))

    def save(self, payload: dict) -> None:
        """Gather the tables (every rank), write on rank 0; a failed write raises on every rank."""
        whole = self._map_states(payload, self._gather)
        failure = None
        if self.comm.rank == 0:
            try:
                self.inner.save(whole)
            except PyrodpsError as e:
                failure = e
        message = self.comm.broadcast_object(None if failure is None else str(failure))
        if failure is not None:
            raise failure
        if message is not None:
            raise PeerError(f"rank 0 could not write the checkpoint: {message}")

    def load(self) -> dict | None:
        """Rank 0's :meth:`Checkpointer.load`, on every rank, each with its shard of the tables."""
        payload = failure = None
        if self.comm.rank == 0:
            try:
                payload = self.inner.load()
            except PyrodpsError as e:
                failure = e
        payload, message = self.comm.broadcast_object((payload, None if failure is None else str(failure)))
        if failure is not None:
            raise failure
        if message is not None:
            raise PeerError(f"rank 0 could not resume the run: {message}")
        return None if payload is None else self._map_states(payload, self._shard)

    # ------------------------------------------------------------------ payload surgery
    @staticmethod
    def _map_states(payload: dict, convert) -> dict:
        """A copy of ``payload`` with ``convert`` applied to the table fields of every state snapshot in it
        (the live chain's and the finished chains'), in a fixed order (``convert`` may be a collective)."""
        out = dict(payload)
        if payload.get("state") is not None:
            out["state"] = _map_tables(payload["state"], convert)
        out["completed"] = [{**done, "state": _map_tables(done["state"], convert)}
                            for done in payload.get("completed", [])]
        return out

    def _gather(self, snap: object) -> object:
        """A table's snapshot (this rank's shard) -> the whole table (every rank calls this)."""
        if not ShardedTable.is_snapshot(snap):
            return snap
        fields = snap["__object__"]
        return ShardedTable(fields["local"], fields["num_points"], self.comm).full()

    def _shard(self, snap: object) -> object:
        """The whole table -> this rank's shard, as a snapshot that restores into a ShardedTable."""
        if ShardedTable.is_snapshot(snap):
            raise PeerError("the checkpoint holds a shard of a table, not the whole table: it was not written "
                            "by RankZeroCheckpointer")
        return ShardedTable.shard_snapshot(snap, self.comm.rank, self.comm.world_size) if snap is not None else None


def _map_tables(state_snapshot: object, convert) -> object:
    """``state_snapshot`` (a BADSState's) with ``convert`` applied to its fields in :data:`SHARDED_FIELDS`."""
    if not (isinstance(state_snapshot, dict) and isinstance(state_snapshot.get("__object__"), dict)):
        return state_snapshot
    fields = dict(state_snapshot["__object__"])
    for name in SHARDED_FIELDS:
        if name in fields:
            fields[name] = convert(fields[name])
    return {"__object__": fields}
