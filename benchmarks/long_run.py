"""Long runs: does a BADS run need early stopping? Accuracy, AUROC and group weights against steps.

One run of ``--steps`` steps per seed answers "what would ``fit_bads`` have reported had it stopped at
step t" for every t on a grid of ``--block`` steps: the draws of the run are summed per block (test-set
class probabilities and the whole weight table ``sigmoid(u)``), and the estimate at t uses the blocks
after the default burn-in of a t-step run (``BADSConfig.burn_in_fraction`` of t). At each t it records

* test accuracy of the posterior predictive over those draws (``fit.test_accuracy`` of a t-step run);
* selection AUROC of the posterior-mean weights over the same draws, and the mean weight of the
  corrupted and of the clean points (label-noise scenarios);
* the balanced accuracy (imbalance scenarios).

The target (issue: runs that do not need early stopping): at the last step, accuracy and AUROC within
1 point (0.01) of their best along the way (from t = 2,000 on, where a default run starts). Prints a
table, writes JSON (every trajectory, the summaries, the machine) and a PNG next to it.

    python benchmarks/long_run.py --scenario digits-label-noise --steps 20000 --seeds 0,1,2
    python benchmarks/long_run.py --steps 100000 --seeds 0 --out benchmarks/results/long_run_1e5.json
    python benchmarks/long_run.py --config '{"theta_prior": "isotropic", "theta_prior_kwargs": {"scale": 1.0}}'
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIRST_CHECKED_STEP = 2_000  # targets are checked from here on (a default run is 3,000 steps)
TOLERANCE = 0.01


def trajectory(problem, config, seed: int, block: int) -> dict:
    """Run ``fit_bads(problem, config)`` once and return the metrics a run stopped at each multiple of
    ``block`` would have reported (module docstring)."""
    import torch

    from pyrodps import fit_bads
    from pyrodps.diagnostics.metrics import accuracy, balanced_accuracy, selection_auroc

    steps = config.steps
    n_blocks = steps // block
    probs = torch.zeros(n_blocks, problem.x_test.shape[0], problem.num_classes, dtype=torch.float64)
    weights = torch.zeros(n_blocks, problem.num_train, dtype=torch.float64)
    counts = torch.zeros(n_blocks, dtype=torch.float64)

    def on_draw(chain: int, state, test_probs) -> None:
        b = min((state.step - 1) // block, n_blocks - 1)
        probs[b] += test_probs.double()
        counts[b] += 1
        if state.u is not None:
            weights[b] += torch.sigmoid(state.u).double()

    # keep every draw from the start: the burn-in of each stopping time is applied here
    full = replace(config, burn_in=0)
    start = time.perf_counter()
    fit = fit_bads(problem, full, seed=seed, progress=False, on_draw=on_draw)
    wall = time.perf_counter() - start
    rows = []
    for k in range(1, n_blocks + 1):
        t = k * block
        first = int(config.burn_in_fraction * t) // block
        n = counts[first:k].sum()
        if n == 0:
            continue
        p = (probs[first:k].sum(0) / n).numpy()
        w = (weights[first:k].sum(0) / n).numpy()
        row = {"step": t, "test_accuracy": accuracy(p, problem.y_test),
               "balanced_accuracy": balanced_accuracy(p, problem.y_test)}
        if problem.corrupted is not None and problem.corrupted.any():
            row["selection_auroc"] = selection_auroc(w, problem.corrupted)
            row["mean_weight_corrupted"] = float(w[problem.corrupted].mean())
            row["mean_weight_clean"] = float(w[~problem.corrupted].mean())
        if problem.minority is not None and problem.minority.any():
            row["mean_weight_minority"] = float(w[problem.minority].mean())
            row["mean_weight_majority"] = float(w[~problem.minority].mean())
        rows.append(row)
    return {"seed": seed, "wall_seconds": wall, "rows": rows, "final_fit_accuracy": fit.test_accuracy}


def stability(rows: list[dict], key: str) -> dict | None:
    """Best value from :data:`FIRST_CHECKED_STEP` on, the last value, and whether last >= best - 0.01."""
    vals = [(r["step"], r[key]) for r in rows if key in r and r["step"] >= FIRST_CHECKED_STEP]
    if not vals:
        return None
    best_step, best = max(vals, key=lambda x: x[1])
    last = vals[-1][1]
    return {"best": best, "best_step": best_step, "last": last, "drop": best - last, "stable": best - last <= TOLERANCE}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("test_accuracy", "selection_auroc", "balanced_accuracy") if k in result["runs"][0]["rows"][0]]
    weight_keys = [k for k in ("mean_weight_clean", "mean_weight_corrupted", "mean_weight_majority",
                               "mean_weight_minority") if k in result["runs"][0]["rows"][0]]
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(4.2 * (len(keys) + 1), 3.4))
    for ax, key in zip(axes, keys):
        for run in result["runs"]:
            ax.plot([r["step"] for r in run["rows"]], [r[key] for r in run["rows"]], label=f"seed {run['seed']}")
        ax.set_xscale("log")
        ax.set_title(key.replace("_", " "))
        ax.set_xlabel("steps of the run")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[-1]
    for key, style in zip(weight_keys, ("-", "--", "-", "--")):
        for run in result["runs"]:
            ax.plot([r["step"] for r in run["rows"]], [r[key] for r in run["rows"]], style,
                    label=f"{key.removeprefix('mean_weight_')} s{run['seed']}")
    ax.set_xscale("log")
    ax.set_title("mean posterior weight")
    ax.set_xlabel("steps of the run")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.suptitle(f"{result['scenario']}: metrics a run stopped at step t reports")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="digits-label-noise")
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--block", type=int, default=500, help="steps per block of the trajectory grid")
    ap.add_argument("--config", default="{}", help="JSON of BADSConfig overrides")
    ap.add_argument("--scenario-options", default="{}", help="JSON of scenario options")
    ap.add_argument("--method", default="bads", help="a BADS method (its overrides apply first)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "long_run.json")
    args = ap.parse_args()

    import torch

    from pyrodps import BADSConfig, make_scenario
    from pyrodps.app.methods import BADS_METHODS
    from pyrodps.app.runner import machine_description
    from pyrodps.io import write_json

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    overrides = json.loads(args.config)
    config = replace(BADSConfig(), **{**BADS_METHODS[args.method], **overrides, "steps": args.steps})
    config.validate()
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        problem = make_scenario(args.scenario, seed=seed, **json.loads(args.scenario_options))
        run = trajectory(problem, config, seed, args.block)
        run["stability"] = {k: stability(run["rows"], k) for k in ("test_accuracy", "selection_auroc", "balanced_accuracy")}
        runs.append(run)
        print(f"seed {seed}: {run['wall_seconds']:.0f} s", flush=True)
        grid = [r for r in run["rows"] if r["step"] in _report_steps(args.steps)]
        for r in grid:
            print("  " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()))
        for k, s in run["stability"].items():
            if s is not None:
                print(f"  {k}: best {s['best']:.4f} at {s['best_step']}, last {s['last']:.4f}, "
                      f"drop {s['drop']:+.4f} -> {'stable' if s['stable'] else 'DECAYS'}")
    summary = {}
    for key in ("test_accuracy", "selection_auroc", "balanced_accuracy"):
        stats = [r["stability"][key] for r in runs if r["stability"][key] is not None]
        if stats:
            last = np.array([s["last"] for s in stats])
            summary[key] = {"last_mean": float(last.mean()), "last_sd": float(last.std(ddof=1)) if last.size > 1 else 0.0,
                            "max_drop": float(max(s["drop"] for s in stats)), "all_stable": all(s["stable"] for s in stats)}
    result = {"benchmark": "long_run", "scenario": args.scenario, "scenario_options": json.loads(args.scenario_options),
              "method": args.method, "steps": args.steps, "block": args.block, "overrides": overrides,
              "config": config.to_dict(), "tolerance": TOLERANCE, "first_checked_step": FIRST_CHECKED_STEP,
              "summary": summary, "runs": runs, "machine": machine_description()}
    for key, s in summary.items():
        print(f"{key}: last {s['last_mean']:.4f} ± {s['last_sd']:.4f}, max drop from best {s['max_drop']:+.4f}, "
              f"{'stable' if s['all_stable'] else 'NOT stable'} on every seed")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    plot(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out}")


def _report_steps(steps: int) -> set[int]:
    grid = {1000, 2000, 3000, 5000, 10_000, 20_000, 50_000, 100_000, steps}
    return {s for s in grid if s <= steps}


if __name__ == "__main__":
    main()
