"""The driver: chains, burn-in, thinning, progress and storage, for any kernel.

Chains run **one after another** (chain ``k`` is seeded from ``(seed, k)``), so a K-chain run
costs K times one chain and a CPU run is reproducible bit for bit.

Long runs: a :class:`~pyrodps.run.checkpoint.Checkpointer` saves the whole run atomically
every few steps and resumes it exactly; a :class:`~pyrodps.run.guard.DivergenceGuard` stops
(or backs off) on non-finite values; a memory budget spills kept draws to disk
(:class:`~pyrodps.run.draw_store.DrawStore`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from tqdm.auto import tqdm

from pyrodps.errors import ValidationError, check_positive_int
from pyrodps.run.checkpoint import Checkpointer, restore_, snapshot
from pyrodps.run.draw_store import DrawStore
from pyrodps.run.guard import (
    DivergenceError,
    DivergenceGuard,
    back_off,
    current_step_size,
    first_nonfinite,
)
from pyrodps.run.weight_stats import OnlineWeightStats
from pyrodps.sgmcmc.kernel import make_generator


@dataclass
class SampleResult:
    """What a run kept.

    ``draws[name]`` has shape ``(chains, draws, ...)``. ``weight_stats[k]`` holds the online
    per-point statistics of chain ``k`` (after burn-in); :meth:`weight_mean_std` pools them.
    ``window_stats[k]`` holds the same statistics over the last ``average_window`` steps only
    (the running-average window ``S_avg`` of the spec); :meth:`weight_window_mean` pools them.
    ``warmup_draws[name]`` (``(chains, draws)``) holds the ``warmup_track`` sites at every ``thin``-th
    step of the burn-in, so a trace can show where burn-in ended.
    """

    draws: dict[str, torch.Tensor]
    weight_stats: list[OnlineWeightStats]
    states: list
    wall_seconds: float
    num_steps: int
    burn_in: int
    thin: int
    extras: dict = field(default_factory=dict)
    window_stats: list[OnlineWeightStats] = field(default_factory=list)
    average_window: int | None = None
    warmup_draws: dict[str, torch.Tensor] = field(default_factory=dict)

    def weight_mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation of every weight, pooled over chains."""
        mean, var = OnlineWeightStats.pool(self.weight_stats)
        return mean, var.sqrt()

    def weight_window_mean(self) -> torch.Tensor | None:
        """Mean of every weight over the last ``average_window`` steps, pooled over chains
        (``None`` without a window). A point never visited in the window keeps its overall mean."""
        if not self.window_stats:
            return None
        count = sum(s.count for s in self.window_stats)
        total = sum(s.total for s in self.window_stats)
        overall, _ = OnlineWeightStats.pool(self.weight_stats)
        return torch.where(count > 0, total / count.clamp(min=1), overall)


class ExtraState(Protocol):
    """State a caller accumulates in ``on_draw`` (e.g. a posterior-predictive sum) and wants
    checkpointed with the run: ``get()`` returns it (tensors, numbers, lists), ``set(value)``
    puts it back."""

    def get(self) -> object: ...

    def set(self, value: object) -> None: ...


@dataclass
class _Chain:
    """One chain's live objects."""

    state: object
    batches: object
    stats: OnlineWeightStats | None
    window: OnlineWeightStats | None
    store: DrawStore
    warmup: DrawStore


def _payload(chain: int, t: int, live: _Chain, completed: list[dict], extra: ExtraState | None, log: dict) -> dict:
    """Everything needed to continue chain ``chain`` at step ``t``: the sampler, stream, statistics,
    draws (buffered, and the names of spilled chunks), the caller's state and finished chains."""
    return {
        "chain": chain,
        "t": t,
        "state": snapshot(live.state),
        "batches": snapshot(live.batches),
        "stats": snapshot(live.stats),
        "window": snapshot(live.window),
        "store": live.store.state(),
        "warmup": live.warmup.state(),
        "extra": snapshot(extra.get()) if extra is not None else None,
        "completed": completed,
        "log": snapshot(log),
    }


def _restore(live: _Chain, payload: dict, extra: ExtraState | None) -> None:
    restore_(live.state, payload["state"])
    restore_(live.batches, payload["batches"])
    if live.stats is not None:
        restore_(live.stats, payload["stats"])
    if live.window is not None:
        restore_(live.window, payload["window"])
    live.store.load_state(payload["store"])
    live.warmup.load_state(payload["warmup"])
    if extra is not None:
        extra.set(payload["extra"])


def _rebuild(fresh: _Chain, done: dict) -> _Chain:
    """A chain finished before a checkpoint, from its record in the checkpoint."""
    fresh.state = restore_(fresh.state, done["state"])
    if fresh.stats is not None:
        restore_(fresh.stats, done["stats"])
    if fresh.window is not None:
        restore_(fresh.window, done["window"])
    fresh.store.load_state(done["store"])
    fresh.warmup.load_state(done["warmup"])
    return fresh


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
    num_points: int | None = None,
    on_draw: Callable[[int, object, dict], None] | None = None,
    progress: bool = True,
    average_window: int | None = None,
    checkpoint: Checkpointer | None = None,
    extra_state: ExtraState | None = None,
    guard: DivergenceGuard | None = None,
    memory_budget: int | None = None,
    spill_dir: str | Path | None = None,
    warmup_track: Sequence[str] = (),
) -> SampleResult:
    """Run ``num_chains`` chains of ``num_steps`` steps each.

    Args:
        kernel: has ``init(seed, chain)``, ``step(state, batch)`` and ``site(state, info, name)``.
        make_batches: builds a batch stream (with ``.next()``) from a generator; called per chain.
        burn_in: steps discarded before statistics and draws are kept.
        thin: keep every ``thin``-th step after burn-in.
        track: sites kept at each kept step (``kernel.site`` names them).
        num_points: length of the weight table; when given, the driver keeps online statistics of
            ``info["w"]`` at ``info["idx"]`` after burn-in.
        on_draw: called as ``on_draw(chain, state, info)`` at every kept step.
        average_window: with ``num_points``, also keep the statistics of the last
            ``average_window`` steps of each chain (``S_avg``; may reach into burn-in).
        checkpoint: write a checkpoint every ``checkpoint.every`` steps and at the end of every
            chain; when the file already exists the run **resumes** from it and reproduces the
            uninterrupted run exactly (same seed, same device). ``extra_state`` is saved with it.
        guard: the divergence guard (default: check every 10 steps and raise); see
            :mod:`pyrodps.run.guard`.
        memory_budget, spill_dir: keep at most this many bytes of draws in memory per chain and
            spill the rest to ``.npy`` chunks in ``spill_dir`` (:class:`DrawStore`).
        warmup_track: scalar sites also kept at every ``thin``-th step of the burn-in
            (``SampleResult.warmup_draws``; in memory: burn-in / thin numbers per site and chain).
    """
    check_positive_int("num_steps", num_steps)
    check_positive_int("burn_in", burn_in, minimum=0)
    check_positive_int("thin", thin)
    check_positive_int("num_chains", num_chains)
    if burn_in >= num_steps:
        raise ValidationError("burn_in", f"must be smaller than num_steps ({num_steps}), got {burn_in}")
    if average_window is not None:
        check_positive_int("average_window", average_window)
        if average_window > num_steps:
            raise ValidationError("average_window", f"must be at most num_steps ({num_steps}), got {average_window}")
    guard = guard if guard is not None else DivergenceGuard()
    window_start = num_steps - average_window if average_window is not None else num_steps
    resume = checkpoint.load() if checkpoint is not None else None
    completed: list[dict] = resume["completed"] if resume else []
    log: dict = dict(resume["log"]) if resume else {"backoffs": [], "resumed_at": []}
    if resume:
        log["resumed_at"] = [*log["resumed_at"], (resume["chain"], resume["t"])]
    start = time.perf_counter()
    bar = tqdm(total=num_steps * num_chains, disable=not progress, desc="sampling", unit="step", mininterval=0.5)

    def new_chain(chain: int) -> _Chain:
        chain_dir = None if spill_dir is None else Path(spill_dir) / f"chain{chain}"
        return _Chain(
            kernel.init(seed, chain),
            make_batches(make_generator(seed, 10_000 + chain)),
            OnlineWeightStats(num_points) if num_points is not None else None,
            OnlineWeightStats(num_points) if num_points is not None and average_window else None,
            DrawStore(tuple(track), memory_budget, chain_dir),
            DrawStore(tuple(warmup_track)),
        )

    fuses_stats = bool(getattr(kernel, "fuses_weight_stats", False))  # kernel.step(..., stats=) supported
    guarded = getattr(kernel, "guarded_state", None)  # the state fields the guard checks (None: all)
    if resume is not None and extra_state is not None:
        extra_state.set(resume["extra"])
    finished = [_rebuild(new_chain(chain), done) for chain, done in enumerate(completed)]  # from a checkpoint
    for chain in range(len(completed), num_chains):
        live = new_chain(chain)
        t = 0
        if resume is not None and resume["chain"] == chain and resume["state"] is not None:
            _restore(live, resume, extra_state)
            t = resume["t"]
        good = _payload(chain, t, live, completed, extra_state, log) if guard.action == "backoff" else None
        while t < num_steps:
            keep = t >= burn_in and (t - burn_in) % thin == 0
            warm = bool(warmup_track) and t < burn_in and t % thin == 0
            report = progress and (t % 50 == 0 or t == num_steps - 1)
            fuse_stats = live.stats is not None and t >= burn_in and fuses_stats
            state, info = kernel.step(live.state, live.batches.next(), keep or report or warm,
                                      **({"stats": live.stats} if fuse_stats else {}))
            live.state = state
            save = checkpoint is not None and ((t + 1) % checkpoint.every == 0 or t == num_steps - 1)
            snap = good is not None and (t + 1) % guard.snapshot_every == 0
            if keep or save or snap or (t + 1) % guard.every == 0:
                bad = first_nonfinite(state, info, guarded)
                if bad is not None:
                    if guard.action == "raise" or len(log["backoffs"]) >= guard.max_backoffs:
                        hint = "" if checkpoint is None else f" The last good checkpoint is {checkpoint.path}."
                        raise DivergenceError(chain, t, bad, current_step_size(kernel, t), hint)
                    _restore(live, good, extra_state)  # back to the last good state ...
                    before, after = back_off(kernel, guard.factor)  # ... with a smaller step
                    log["backoffs"].append({"chain": chain, "step": t, "quantity": bad, "resumed_from": good["t"],
                                            "step_size_before": before, "step_size_after": after})
                    t = good["t"]
                    continue
            if t >= burn_in and live.stats is not None and not info.get("stats_updated", False):
                live.stats.update(info["idx"], info["w"])
            if t >= window_start and live.window is not None:
                live.window.update(info["idx"], info["w"])
            if warm:
                for name in warmup_track:
                    live.warmup.append(name, kernel.site(state, info, name))
            if keep:
                for name in track:
                    live.store.append(name, kernel.site(state, info, name))
                if on_draw is not None:
                    on_draw(chain, state, info)
            if report:
                bar.update(t + 1 + chain * num_steps - bar.n)
                bar.set_postfix(chain=chain, energy=f"{float(info['energy']):.4g}", refresh=False)
            t += 1
            if snap:
                good = _payload(chain, t, live, completed, extra_state, log)
            if save and t < num_steps:
                checkpoint.save(_payload(chain, t, live, completed, extra_state, log))
        finished.append(live)
        if checkpoint is not None:  # the chain is finished: the next one starts from scratch
            completed = [*completed, {"state": snapshot(live.state), "stats": snapshot(live.stats),
                                      "window": snapshot(live.window), "store": live.store.state(),
                                      "warmup": live.warmup.state()}]
            checkpoint.save({"chain": chain + 1, "t": 0, "state": None, "completed": completed, "log": snapshot(log),
                             "extra": snapshot(extra_state.get()) if extra_state is not None else None})
    bar.close()
    chains = finished
    draws = {name: torch.stack([c.store.stacked(name) for c in chains]) for name in track}
    return SampleResult(
        draws,
        [c.stats for c in chains if c.stats is not None],
        [c.state for c in chains],
        time.perf_counter() - start,
        num_steps,
        burn_in,
        thin,
        extras={"backoffs": log["backoffs"], "resumed_at": log["resumed_at"]},
        window_stats=[c.window for c in chains if c.window is not None],
        average_window=average_window,
        warmup_draws={name: torch.stack([c.warmup.stacked(name) for c in chains]) for name in warmup_track},
    )
