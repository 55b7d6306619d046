"""Data-parallel BADS sampling: a :class:`~pyrodps.bads.kernel.BADSKernel` run by several processes
on one global minibatch per step, with the result of the one-process kernel.

:class:`DataParallelKernel` wraps a kernel and is used by the driver (:func:`pyrodps.run.sample`) like
any kernel (``init``, ``step``, ``site``, the hyper-state). Every rank runs the same driver on the same
batch stream (same seed: the batches are index batches, cheap), and in each step

1. **gathers** the batch's weight logits ``u_B`` (and, with ``log_z="companion"`` and
   ``companion_window > 1``, its running means and visit counts) from their owners: the table is
   **sharded** by index, point ``i`` stored by rank ``i mod W`` only (:class:`~pyrodps.parallel.sharded.ShardedTable`);
2. runs the wrapped kernel's own step on the whole batch, with its gradient replaced by
   :class:`~pyrodps.parallel.gradient.ShardGradient`: the network runs on this rank's share of the batch,
   the θ (and companion θ') gradients are all-reduced, the losses all-gathered, so every rank holds the
   global minibatch gradient and every per-point quantity of the batch;
3. so every rank takes **the same θ step with the same Langevin noise** (one generator per chain,
   seeded by the shared seed and consumed identically on every rank) and **the same weight-block
   update** of the whole batch (slice sampling or Langevin, same random numbers), and stores back only
   the entries it owns.

θ, the pSGLD moments, the companion chain and the generator are therefore replicated and stay equal on
every rank; the result equals the one-process kernel's on the same batches up to the order of the
floating-point sums in the gradient. Per step: one all-reduce of ``O(B)`` numbers (the gather) and one
of ``P + B + B_m`` (gradient and losses), plus one of ``P + B`` for the companion.

Graceful stop: a SIGINT/SIGTERM reaching any rank is exchanged with the gather of the next step, and
every rank then stops after that same step (the driver writes the checkpoint and raises
:class:`~pyrodps.run.stop.RunInterrupted` everywhere), so no rank waits for a peer that stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import signal
import sys
import threading

import torch

from pyrodps.bads.kernel import BADSKernel, BADSState
from pyrodps.errors import ValidationError
from pyrodps.models.data import Batch
from pyrodps.parallel.gradient import ShardGradient
from pyrodps.parallel.sharded import Comm, ShardedTable, gather_rows, same_on_every_rank
from pyrodps.run.stop import SIGNALS, StopNow, active_flag

SHARDED_FIELDS = ("u", "companion_mean", "companion_visits")  # the per-point parts of a BADSState
# what the first step compares across the ranks: (argument, entries of the probe, message)
CONSISTENCY = (
    ("theta", (0, 3), "θ differs between the ranks: every rank must build the same network (same seed and net)"),
    ("seed", (3, 5), "the chain's generator differs between the ranks: give every rank the same seed"),
    ("batches", (5, 10), "the minibatches differ between the ranks: every rank must read the same data and seed"),
    ("data", (10, 12), "the data set sizes differ between the ranks"),
)


class DataParallelKernel:
    """``kernel`` run data-parallel by the ranks of ``comm`` (module docstring).

    The state is the wrapped kernel's :class:`~pyrodps.bads.kernel.BADSState` with its per-point tables
    (:data:`SHARDED_FIELDS`) as :class:`~pyrodps.parallel.sharded.ShardedTable` s: reading an entry of
    another rank (``state.u.index_select(0, idx)``, as the tracked-weights observer does) is a
    collective. ``site(state, info, "w")`` gathers the whole table. The kernel given is not changed (a
    copy runs the steps)."""

    def __init__(self, kernel: BADSKernel, comm: Comm) -> None:
        if not isinstance(kernel, BADSKernel):
            raise ValidationError("kernel", f"must be a BADSKernel, got {type(kernel).__name__}")
        self.inner = copy.copy(kernel)
        self.inner.gradient = ShardGradient(kernel.model, comm)  # refuses a weight network
        self.model, self.comm = kernel.model, comm
        # the guard checks the replicated fields; the table's moving entries are checked as info["w"]
        self.guarded_state = tuple(n for n in kernel.guarded_state if n not in SHARDED_FIELDS)
        self._checked = False
        self._pending_signal: int | None = None
        self._deferring_for: object = None

    # ------------------------------------------------------------------ the kernel's hyper-state
    @property
    def step_size(self):
        return self.inner.step_size

    @property
    def weight_step_size(self):
        return self.inner.weight_step_size

    @property
    def temperature(self) -> float:
        return self.inner.temperature

    def scale_step_size(self, factor: float) -> None:
        self.inner.scale_step_size(factor)

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)

    # ------------------------------------------------------------------ the kernel
    def init(self, seed: int, chain: int = 0, *, u: torch.Tensor | None = None,
             companion: torch.Tensor | None = None) -> BADSState:
        """The wrapped kernel's initial state with its tables sharded. Every rank draws the whole initial
        table (consuming the generator as one process does) and keeps its shard."""
        state = self.inner.init(seed, chain, u=u, companion=companion)
        for name in SHARDED_FIELDS:
            value = getattr(state, name)
            if value is not None:
                setattr(state, name, ShardedTable.from_full(value, self.comm))
        return state

    def step(self, state: BADSState, batch: Batch, diagnostics: bool = True) -> tuple[BADSState, dict[str, torch.Tensor]]:
        """One joint step on the global ``batch`` (module docstring); updates ``state`` in place."""
        idx = batch.idx_train
        if not self._checked:
            self._check_consistent(state, batch)
        self._defer_signals()
        names = [n for n in SHARDED_FIELDS if getattr(state, n) is not None]
        for name in names:  # a whole table (a one-process state) becomes this rank's shard
            if not isinstance(getattr(state, name), ShardedTable):
                setattr(state, name, ShardedTable.from_full(getattr(state, name), self.comm))
        tables = [getattr(state, n) for n in names]
        rows, signals = gather_rows(tables, idx, self.comm, float(self._pending_signal or 0))
        self._propagate_stop(signals)
        local = dataclasses.replace(state, **dict(zip(names, rows)))  # the batch's entries at positions 0..B-1
        positions = torch.arange(idx.shape[0], device=idx.device)
        local, info = self.inner.step(local, dataclasses.replace(batch, idx_train=positions), diagnostics)
        for field in dataclasses.fields(state):
            if field.name in names:
                getattr(state, field.name).write_(idx, getattr(local, field.name))
            else:
                setattr(state, field.name, getattr(local, field.name))
        info["idx"] = idx
        return state, info

    def site(self, state: BADSState, info: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        """As the wrapped kernel's; ``"w"`` (the whole table) is gathered from every rank (a collective)."""
        if name == "w" and isinstance(state.u, ShardedTable):
            return torch.sigmoid(state.u.full())
        return self.inner.site(state, info, name)

    # ------------------------------------------------------------------ safety
    def _check_consistent(self, state: BADSState, batch: Batch) -> None:
        """Before the first step: every rank must hold the same θ, generator and batch (the same network,
        seed and data); else every rank raises :class:`ValidationError` (no rank is left waiting)."""
        def total(x: torch.Tensor) -> float:
            return float(x.double().sum()) if x.numel() else 0.0

        x = batch.x_train if batch.x_train.is_floating_point() else batch.x_train.double()
        probe = torch.tensor([
            total(state.theta), total(state.theta.abs()), float(state.step),
            total(state.generator.get_state()), float(state.generator.initial_seed() % 2**52),
            total(batch.idx_train), total(batch.idx_train * torch.arange(batch.idx_train.shape[0],
                                                                           device=batch.idx_train.device)),
            total(x), total(batch.y_train.double()), total(batch.idx_meta),
            float(self.model.num_train), float(self.model.num_meta),
        ], dtype=torch.float64)
        same = same_on_every_rank(probe.to(self.comm.device), self.comm).cpu()
        self._checked = True
        for argument, (lo, hi), message in CONSISTENCY:
            if not bool(same[lo:hi].all()):
                raise ValidationError(argument, f"{message} (rank {self.comm.rank} of {self.comm.world_size})")

    def _defer_signals(self) -> None:
        """While a graceful stop is in force (:func:`~pyrodps.run.stop.graceful_stop`), a first SIGINT /
        SIGTERM is only recorded and exchanged at the next step's gather (a second stops at once)."""
        flag = active_flag()
        if flag is None or flag is self._deferring_for or self.comm.world_size == 1 \
                or threading.current_thread() is not threading.main_thread():
            return
        for s in SIGNALS:
            signal.signal(s, self._on_signal)
        self._deferring_for, self._pending_signal = flag, None

    def _on_signal(self, signum: int, frame: object) -> None:
        if self._pending_signal is not None:
            raise StopNow(signum)
        self._pending_signal = signum
        print(f"\npyrodps: {signal.Signals(signum).name} received by rank {self.comm.rank}: every rank finishes "
              "the next step and the run writes a checkpoint (send it again to stop at once)",
              file=sys.stderr, flush=True)

    def _propagate_stop(self, signals: torch.Tensor) -> None:
        """Set the driver's stop flag on every rank when a signal reached any rank (``signals``: each
        rank's pending signal number, 0 for none)."""
        asked = [int(s) for s in signals.tolist() if s > 0]
        flag = active_flag()
        if asked and flag is not None and flag.signum is None:
            flag.signum = asked[0]
            if self._pending_signal is None:  # a peer's signal: a signal here now stops at once
                self._pending_signal = asked[0]
