"""The driver: chains, burn-in, thinning, progress and storage, for any kernel.

Chains run **one after another** (chain ``k`` is seeded from ``(seed, k)``), so a K-chain run
costs K times one chain and a CPU run is reproducible bit for bit.

What else a run accumulates (online statistics, a posterior-predictive sum, per-draw summaries)
comes from observers (:mod:`pyrodps.run.observers`); the driver knows kernels only through
``init`` / ``step`` / ``site`` (:class:`pyrodps.sgmcmc.Kernel`) and, when they have them, the
kernel's hyper-state (``state_dict`` / ``load_state_dict``, e.g. a backed-off step size) and
``scale_step_size`` for the guard's back-off.

Long runs: a :class:`~pyrodps.run.checkpoint.Checkpointer` saves the whole run atomically
every few steps (kernel state and hyper-state, batch stream, observers, kept draws, the guard's
log) and resumes it exactly; a :class:`~pyrodps.run.guard.DivergenceGuard` stops (or backs off)
on non-finite values; a memory budget spills kept draws to disk
(:class:`~pyrodps.run.draw_store.DrawStore`). With a checkpoint, SIGINT / SIGTERM stop the run
gracefully (:mod:`pyrodps.run.stop`): the current step finishes, a checkpoint is written and
:class:`~pyrodps.run.stop.RunInterrupted` is raised.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from pyrodps.errors import PieceError, ValidationError, check_positive_int
from pyrodps.run.checkpoint import Checkpointer, restore_, snapshot
from pyrodps.run.draw_store import DrawStore
from pyrodps.run.guard import (
    DivergenceError,
    DivergenceGuard,
    back_off,
    current_step_size,
    first_nonfinite,
)
from pyrodps.run.observers import Observer
from pyrodps.run.stop import RunInterrupted, StopFlag, graceful_stop
from pyrodps.sgmcmc.kernel import make_generator


@dataclass
class SampleResult:
    """What a run kept.

    ``draws[name]`` has shape ``(chains, draws, ...)``; ``warmup_draws[name]`` (``(chains, draws)``)
    holds the ``warmup_track`` sites at every ``thin``-th step of the burn-in, so a trace can show
    where burn-in ended; ``states[k]`` is the last state of chain ``k``; ``observers`` are the
    run's observers (by name) with what they accumulated; ``extras`` records the guard's back-offs
    and the steps the run was resumed at.
    """

    draws: dict[str, torch.Tensor]
    states: list
    wall_seconds: float
    num_steps: int
    burn_in: int
    thin: int
    extras: dict = field(default_factory=dict)
    warmup_draws: dict[str, torch.Tensor] = field(default_factory=dict)
    observers: dict[str, Observer] = field(default_factory=dict)


@dataclass
class _Chain:
    """One chain's live objects."""

    state: object
    batches: object
    store: DrawStore
    warmup: DrawStore


class _Run:
    """The parts of a run a checkpoint and a back-off snapshot hold."""

    def __init__(self, kernel, observers: dict[str, Observer], log: dict) -> None:
        self.kernel, self.observers, self.log = kernel, observers, log

    def payload(self, chain: int, t: int, live: _Chain | None, completed: list[dict]) -> dict:
        """Everything needed to continue chain ``chain`` at step ``t`` (``live=None``: the chain
        has not started): sampler, stream, draws (buffered, and the names of spilled chunks),
        observers, the kernel's hyper-state, finished chains and the guard's log."""
        hyper = getattr(self.kernel, "state_dict", None)
        return {
            "chain": chain,
            "t": t,
            "state": None if live is None else snapshot(live.state),
            "batches": None if live is None else snapshot(live.batches),
            "store": None if live is None else live.store.state(),
            "warmup": None if live is None else live.warmup.state(),
            "observers": {name: snapshot(o.state_dict()) for name, o in self.observers.items()},
            "kernel": snapshot(hyper()) if hyper is not None else None,
            "completed": completed,
            "log": snapshot(self.log),
        }

    def restore(self, live: _Chain, payload: dict) -> None:
        """Put chain ``live`` and the observers back to ``payload`` (not the kernel's hyper-state:
        a back-off keeps its smaller step)."""
        restore_(live.state, payload["state"])
        restore_(live.batches, payload["batches"])
        live.store.load_state(payload["store"])
        live.warmup.load_state(payload["warmup"])
        self.load_observers(payload)

    def load_observers(self, payload: dict) -> None:
        for name, o in self.observers.items():
            o.load_state_dict(payload["observers"][name])


def sample(
    kernel,
    make_batches: Callable[[torch.Generator], object],
    *,
    num_steps: int,
    burn_in: int = 0,
    thin: int = 1,
    num_chains: int = 1,
    seed: int = 0,
    track: Sequence[str] = ("energy",),
    observers: dict[str, Observer] | None = None,
    progress: bool = True,
    checkpoint: Checkpointer | None = None,
    guard: DivergenceGuard | None = None,
    memory_budget: int | None = None,
    spill_dir: str | Path | None = None,
    warmup_track: Sequence[str] = (),
) -> SampleResult:
    """Run ``num_chains`` chains of ``num_steps`` steps each.

    Args:
        kernel: has ``init(seed, chain)``, ``step(state, batch, diagnostics)`` and
            ``site(state, info, name)``.
        make_batches: builds a batch stream (with ``.next()``) from a generator; called per chain.
        burn_in: steps discarded before draws are kept.
        thin: keep every ``thin``-th step after burn-in.
        track: sites kept at each kept step (``kernel.site`` names them).
        observers: by name; each sees every step (:mod:`pyrodps.run.observers`) and is
            checkpointed with the run.
        checkpoint: write a checkpoint every ``checkpoint.every`` steps and at the end of every
            chain; when the file already exists the run **resumes** from it and reproduces the
            uninterrupted run exactly (same seed, same device).
        guard: the divergence guard (default: check every 10 steps and raise); see
            :mod:`pyrodps.run.guard`.
        memory_budget, spill_dir: keep at most this many bytes of draws in memory per chain and
            spill the rest to ``.npy`` chunks in ``spill_dir`` (:class:`DrawStore`).
        warmup_track: scalar sites also kept at every ``thin``-th step of the burn-in
            (``SampleResult.warmup_draws``; in memory: burn-in / thin numbers per site and chain).

    Raises:
        RunInterrupted: a SIGINT or SIGTERM arrived while a checkpointed run was sampling; the step in
            progress was finished and checkpointed (a second signal raises ``StopNow`` at once).
    """
    check_positive_int("num_steps", num_steps)
    check_positive_int("burn_in", burn_in, minimum=0)
    check_positive_int("thin", thin)
    check_positive_int("num_chains", num_chains)
    if burn_in >= num_steps:
        raise ValidationError("burn_in", f"must be smaller than num_steps ({num_steps}), got {burn_in}")
    observers = dict(observers or {})
    for name, o in observers.items():
        if not isinstance(o, Observer):
            raise ValidationError("observers", f"{name!r} is not an Observer (begin_chain, observe, state_dict, "
                                  "load_state_dict)")
    guard = guard if guard is not None else DivergenceGuard()
    # without a checkpoint there is nothing to resume from: a signal keeps its usual effect
    stops = graceful_stop() if checkpoint is not None else contextlib.nullcontext(StopFlag())
    with stops as stop:
        return _sample(kernel, make_batches, num_steps, burn_in, thin, num_chains, seed, track, observers, progress,
                       checkpoint, guard, memory_budget, spill_dir, warmup_track, stop)


def _sample(kernel, make_batches, num_steps: int, burn_in: int, thin: int, num_chains: int, seed: int,
            track: Sequence[str], observers: dict[str, Observer], progress: bool, checkpoint: Checkpointer | None,
            guard: DivergenceGuard, memory_budget: int | None, spill_dir, warmup_track: Sequence[str],
            stop: StopFlag) -> SampleResult:
    resume = checkpoint.load() if checkpoint is not None else None
    completed: list[dict] = resume["completed"] if resume else []
    log: dict = dict(resume["log"]) if resume else {"backoffs": [], "resumed_at": []}
    if resume:
        log["resumed_at"] = [*log["resumed_at"], (resume["chain"], resume["t"])]
        if resume.get("kernel") is not None:
            kernel.load_state_dict(resume["kernel"])  # e.g. the step size a back-off left
    run = _Run(kernel, observers, log)
    start = time.perf_counter()
    bar = tqdm(total=num_steps * num_chains, disable=not progress, desc="sampling", unit="step", mininterval=0.5)

    def new_chain(chain: int) -> _Chain:
        chain_dir = None if spill_dir is None else Path(spill_dir) / f"chain{chain}"
        return _Chain(kernel.init(seed, chain), make_batches(make_generator(seed, 10_000 + chain)),
                      DrawStore(tuple(track), memory_budget, chain_dir), DrawStore(tuple(warmup_track)))

    guarded = getattr(kernel, "guarded_state", None)  # the state fields the guard checks (None: all)
    if resume is not None:
        run.load_observers(resume)
    finished = []
    for done in completed:  # chains a checkpoint holds as finished
        fresh = new_chain(len(finished))
        fresh.state = restore_(fresh.state, done["state"])
        fresh.store.load_state(done["store"])
        fresh.warmup.load_state(done["warmup"])
        finished.append(fresh)
    for chain in range(len(completed), num_chains):
        live = new_chain(chain)
        t = 0
        if resume is not None and resume["chain"] == chain and resume["state"] is not None:
            run.restore(live, resume)
            t = resume["t"]
        else:
            for o in observers.values():
                o.begin_chain(chain)
        good = run.payload(chain, t, live, completed) if guard.action == "backoff" else None
        while t < num_steps:
            keep = t >= burn_in and (t - burn_in) % thin == 0
            warm = bool(warmup_track) and t < burn_in and t % thin == 0
            report = progress and (t % 50 == 0 or t == num_steps - 1)
            try:
                state, info = kernel.step(live.state, live.batches.next(), keep or report or warm)
            except PieceError as e:  # a user's piece failed: name it, the chain and the step
                hint = "" if checkpoint is None else f" The last good checkpoint is {checkpoint.path}."
                raise DivergenceError(chain, t, e.role, current_step_size(kernel, t), hint, piece=e) from e
            live.state = state
            stopping = stop.requested
            save = checkpoint is not None and ((t + 1) % checkpoint.every == 0 or t == num_steps - 1 or stopping)
            snap = good is not None and (t + 1) % guard.snapshot_every == 0
            if keep or save or snap or (t + 1) % guard.every == 0:
                bad = first_nonfinite(state, info, guarded)
                if bad is not None:
                    if guard.action == "raise" or len(log["backoffs"]) >= guard.max_backoffs:
                        hint = "" if checkpoint is None else f" The last good checkpoint is {checkpoint.path}."
                        raise DivergenceError(chain, t, bad, current_step_size(kernel, t), hint)
                    run.restore(live, good)  # back to the last good state ...
                    before, after = back_off(kernel, guard.factor)  # ... with a smaller step
                    log["backoffs"].append({"chain": chain, "step": t, "quantity": bad, "resumed_from": good["t"],
                                            "step_size_before": before, "step_size_after": after})
                    t = good["t"]
                    continue
            for o in observers.values():
                o.observe(chain, t, state, info, keep)
            if warm:
                for name in warmup_track:
                    live.warmup.append(name, kernel.site(state, info, name))
            if keep:
                for name in track:
                    live.store.append(name, kernel.site(state, info, name))
            if report:
                bar.update(t + 1 + chain * num_steps - bar.n)
                bar.set_postfix(chain=chain, energy=f"{float(info['energy']):.4g}", refresh=False)
            t += 1
            if snap:
                good = run.payload(chain, t, live, completed)
            if save and t < num_steps:
                checkpoint.save(run.payload(chain, t, live, completed))
            if stopping and t < num_steps:
                bar.close()
                raise RunInterrupted(stop.signum, chain, t, checkpoint.path)
        finished.append(live)
        if checkpoint is not None:  # the chain is finished: the next one starts from scratch
            completed = [*completed, {"state": snapshot(live.state), "store": live.store.state(),
                                      "warmup": live.warmup.state()}]
            checkpoint.save(run.payload(chain + 1, 0, None, completed))
            if stop.requested and chain + 1 < num_chains:
                bar.close()
                raise RunInterrupted(stop.signum, chain + 1, 0, checkpoint.path)
    bar.close()
    return SampleResult(
        {name: torch.stack([c.store.stacked(name) for c in finished]) for name in track},
        [c.state for c in finished],
        time.perf_counter() - start,
        num_steps,
        burn_in,
        thin,
        extras={"backoffs": log["backoffs"], "resumed_at": log["resumed_at"]},
        warmup_draws={name: torch.stack([c.warmup.stacked(name) for c in finished]) for name in warmup_track},
        observers=observers,
    )
