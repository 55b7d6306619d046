"""The driver: chains, burn-in, thinning, progress and storage, for any kernel.

Chains run **one after another** (chain ``k`` is seeded from ``(seed, k)``), so a K-chain run
costs K times one chain and a CPU run is reproducible bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from pyrodps.errors import ValidationError, check_positive_int
from pyrodps.inference.kernel import make_generator
from pyrodps.inference.weight_stats import OnlineWeightStats


@dataclass
class SampleResult:
    """What a run kept.

    ``draws[name]`` has shape ``(chains, draws, ...)``. ``weight_stats[k]`` holds the online
    per-point statistics of chain ``k`` (after burn-in); :meth:`weight_mean_std` pools them.
    ``window_stats[k]`` holds the same statistics over the last ``average_window`` steps only
    (the running-average window ``S_avg`` of the spec); :meth:`weight_window_mean` pools them.
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
    window_start = num_steps - average_window if average_window is not None else num_steps
    start = time.perf_counter()
    chain_draws: list[dict[str, list[torch.Tensor]]] = []
    all_stats: list[OnlineWeightStats] = []
    all_window_stats: list[OnlineWeightStats] = []
    states = []
    bar = tqdm(total=num_steps * num_chains, disable=not progress, desc="sampling", unit="step", mininterval=0.5)
    for chain in range(num_chains):
        state = kernel.init(seed, chain)
        batches = make_batches(make_generator(seed, 10_000 + chain))
        stats = OnlineWeightStats(num_points) if num_points is not None else None
        window = OnlineWeightStats(num_points) if num_points is not None and average_window else None
        kept: dict[str, list[torch.Tensor]] = {name: [] for name in track}
        for t in range(num_steps):
            keep = t >= burn_in and (t - burn_in) % thin == 0
            report = progress and (t % 50 == 0 or t == num_steps - 1)
            state, info = kernel.step(state, batches.next(), keep or report)
            if t >= burn_in and stats is not None:
                stats.update(info["idx"], info["w"])
            if t >= window_start and window is not None:
                window.update(info["idx"], info["w"])
            if keep:
                for name in track:
                    kept[name].append(kernel.site(state, info, name).detach().cpu())
                if on_draw is not None:
                    on_draw(chain, state, info)
            if report:
                bar.update(t + 1 + chain * num_steps - bar.n)
                bar.set_postfix(chain=chain, energy=f"{float(info['energy']):.4g}", refresh=False)
        chain_draws.append(kept)
        if stats is not None:
            all_stats.append(stats)
        if window is not None:
            all_window_stats.append(window)
        states.append(state)
    bar.close()
    draws = {name: torch.stack([torch.stack(c[name]) for c in chain_draws]) for name in track}
    return SampleResult(draws, all_stats, states, time.perf_counter() - start, num_steps, burn_in, thin,
                        window_stats=all_window_stats, average_window=average_window)
