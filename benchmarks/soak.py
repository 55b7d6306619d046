"""Soak test: a long BADS run on digits with resident memory watched throughout.

Runs ``fit_bads`` for ``--steps`` (default 10^5) steps on digits label noise with the defaults
(pSGLD, thin 10, diagnostics tracked per draw), checkpoints every ``--checkpoint-every`` steps and
a memory budget for kept draws (spilled to disk past it). A thread samples the resident set size
(``/proc/self/statm``) every ``--interval`` seconds. The growth is measured after a warm-up (the
first ``--warmup-fraction`` of the run): ``(max RSS after warm-up - RSS at the end of warm-up) /
RSS at the end of warm-up``, over the sampling phase (model building and the summaries after it are
excluded); the target is < 5 %. Prints the memory curve, writes JSON with the
machine description and a plot.

    python benchmarks/soak.py                       # 10^5 steps, about 5 minutes on one core
    python benchmarks/soak.py --steps 20000 --out /tmp/soak.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mib() -> float:
    """Resident set size of this process in MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class RSSSampler(threading.Thread):
    """Samples RSS every ``interval`` seconds into ``self.samples`` as ``(seconds, MiB)``."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval, self.samples, self._halt = interval, [], threading.Event()
        self.start_time = time.perf_counter()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.perf_counter() - self.start_time, rss_mib()))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.samples.append((time.perf_counter() - self.start_time, rss_mib()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between RSS samples")
    ap.add_argument("--warmup-fraction", type=float, default=0.1)
    ap.add_argument("--checkpoint-every", type=int, default=5_000)
    ap.add_argument("--memory-budget-mib", type=float, default=1.0, help="kept draws in memory before spilling")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "soak.json")
    args = ap.parse_args()

    import torch

    from pyrodps import BADSConfig, fit_bads, make_scenario, selection
    from pyrodps.app.runner import machine_description

    marks: dict[str, float] = {}
    driver_sample = selection.sample

    def timed_sample(*a, **k):  # the sampling phase only: model building and summaries excluded
        marks["start"] = time.perf_counter()
        try:
            return driver_sample(*a, **k)
        finally:
            marks["end"] = time.perf_counter()

    selection.sample = timed_sample

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    problem = make_scenario("digits-label-noise", seed=args.seed)
    config = replace(BADSConfig(), steps=args.steps)
    workdir = Path(tempfile.mkdtemp(prefix="pyrodps-soak-"))
    sampler = RSSSampler(args.interval)
    start_rss = rss_mib()
    sampler.start()
    t0 = time.perf_counter()
    fit = fit_bads(problem, config, seed=args.seed, progress=True, checkpoint_dir=workdir,
                   checkpoint_every=args.checkpoint_every, memory_budget=int(args.memory_budget_mib * 2**20))
    wall = time.perf_counter() - t0
    sampler.stop()
    samples = sampler.samples
    begin, end = marks["start"] - sampler.start_time, marks["end"] - sampler.start_time
    sampling_wall = end - begin
    warm_t = begin + args.warmup_fraction * sampling_wall
    after = [m for t, m in samples if warm_t <= t <= end]
    at_warm = after[0]
    growth = (max(after) - at_warm) / at_warm
    spilled = sorted(p.name for p in (workdir / "draws").rglob("*.npy")) if (workdir / "draws").exists() else []
    result = {
        "benchmark": "soak",
        "steps": args.steps,
        "wall_seconds": wall,
        "steps_per_second": args.steps / wall,
        "rss_mib_before_run": start_rss,
        "rss_mib_at_end_of_warmup": at_warm,
        "rss_mib_max_after_warmup": max(after),
        "rss_mib_end_of_sampling": after[-1],
        "rss_growth_after_warmup": growth,
        "target_growth": 0.05,
        "target_met": growth < 0.05,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "spilled_chunks": len(spilled),
        "memory_budget_mib": args.memory_budget_mib,
        "test_accuracy": fit.test_accuracy,
        "selection_auroc": fit.selection_auroc,
        "rss_mib_after_summaries": samples[-1][1],
        "curve": [{"seconds": round(t, 2), "approx_step": int(min(1.0, max(0.0, t - begin) / sampling_wall) * args.steps),
                   "rss_mib": round(m, 2)} for t, m in samples if t <= end],
        "machine": machine_description(),
    }
    print(f"{'seconds':>9} {'~step':>8} {'RSS MiB':>9}")
    stride = max(1, len(samples) // 25)
    for row in result["curve"][::stride]:
        print(f"{row['seconds']:>9.1f} {row['approx_step']:>8d} {row['rss_mib']:>9.1f}")
    print(f"RSS growth after warm-up: {100 * growth:.2f} % (target < 5 %), {args.steps / wall:.0f} steps/s, "
          f"{len(spilled)} draw chunks spilled, test accuracy {fit.test_accuracy:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.plot([r["approx_step"] for r in result["curve"]], [r["rss_mib"] for r in result["curve"]])
        ax.axvline(args.warmup_fraction * args.steps, color="grey", ls=":", label="end of warm-up")
        ax.set_xlabel("step (from elapsed time)")
        ax.set_ylabel("RSS (MiB)")
        ax.set_title(f"soak: {args.steps} steps, growth {100 * growth:.2f} %")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.out.with_suffix(".png"), dpi=110)
    except ImportError:
        pass
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
