"""The minibatch claim, measured: BADS against the one-step-lookahead BLO baselines across batch sizes.

The case against bi-level reweighting includes its minibatch defect: a one-step lookahead on a
minibatch is a biased estimate of its own objective, and the bias grows as the batch shrinks, while
the N/B-scaled SGLD gradient of BADS is unbiased at every batch size. This sweep runs BADS (``bads``),
L2RW and MW-Net at train batch sizes ``--batch-sizes`` with **equal epochs** (steps = epochs · N / B)
and the meta batch scaled alike (``min(M, B)``), on label noise and imbalance, over seeds; every other
setting is each method's default. Every finished run is appended to ``<out>.partial.jsonl`` as it ends;
a rerun with the same ``--out`` reads it and skips the runs already there, so an interrupted sweep loses
nothing. It prints a table (test accuracy, balanced accuracy and selection
AUROC, mean ± sd over seeds, per method and batch size), the spread of each method's mean accuracy
across batch sizes (max - min), and writes JSON (every run, the summary, the machine) and a plot.

    python benchmarks/batch_size_sweep.py --out benchmarks/results/batch_size_sweep.json
    python benchmarks/batch_size_sweep.py --scenarios digits-label-noise --seeds 0 --epochs 50   # a quick look
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

METHODS = ("bads", "l2rw", "mwn")


def run_one(problem, method: str, batch: int, epochs: float, seed: int) -> dict:
    """One run of ``method`` at train batch ``batch`` for ``epochs`` passes over the training set."""
    from pyrodps.app.methods import run_method
    from pyrodps.bads import BADSConfig
    from pyrodps.baselines.l2rw import L2RWConfig
    from pyrodps.baselines.mwn import MWNConfig

    n, m = problem.num_train, int(problem.x_meta.shape[0])
    b, b_meta = min(batch, n), min(batch, m)
    steps = max(1, round(epochs * n / b))
    options: dict = {}
    if method == "bads":
        options["bads_config"] = BADSConfig(batch_size=b, meta_batch_size=b_meta)
    elif method == "l2rw":
        options["l2rw_config"] = replace(L2RWConfig(), batch_size=b, meta_batch_size=b_meta)
    else:
        options["mwn_config"] = replace(MWNConfig(), batch_size=b, meta_batch_size=b_meta)
    start = time.perf_counter()
    res = run_method(problem, method, seed=seed, steps=steps, progress=False, **options)
    metrics = res.metrics(problem)
    return {"method": method, "batch_size": b, "requested_batch_size": batch, "meta_batch_size": b_meta, "steps": steps, "seed": seed,
            "test_accuracy": metrics["test_accuracy"], "balanced_accuracy": metrics["balanced_accuracy"],
            "selection_auroc": metrics["selection_auroc"], "wall_seconds": time.perf_counter() - start}


def load_partial(path: Path, epochs: float) -> dict:
    """The runs an earlier, interrupted sweep with the same ``--out`` finished at ``epochs``, keyed by
    (scenario, seed, method, requested batch size)."""
    done: dict = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                if row.get("epochs") == epochs:
                    done[(row["scenario"], row["seed"], row["method"], row.get("requested_batch_size",
                                                                               row["batch_size"]))] = row
    return done


def summarise(runs: list[dict]) -> dict:
    """Mean and sd over seeds per (scenario, method, batch size), and each method's spread of the mean
    test accuracy across batch sizes."""
    out: dict = {}
    for r in runs:
        key = (r["scenario"], r["method"], r["batch_size"])
        out.setdefault(key, []).append(r)
    table = {}
    for (scenario, method, b), rows in out.items():
        cell = {}
        for k in ("test_accuracy", "balanced_accuracy", "selection_auroc", "wall_seconds"):
            v = np.array([r[k] for r in rows if r[k] is not None], dtype=np.float64)
            if v.size:
                cell[k] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}
        table.setdefault(scenario, {}).setdefault(method, {})[str(b)] = cell
    spread = {s: {m: float(np.ptp([c["test_accuracy"]["mean"] for c in by_b.values()]))
                  for m, by_b in methods.items()} for s, methods in table.items()}
    return {"table": table, "accuracy_spread": spread}


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(summary["table"])
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5.2 * len(scenarios), 3.8), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios):
        for method, by_b in summary["table"][scenario].items():
            bs = sorted(int(b) for b in by_b)
            key = "balanced_accuracy" if "imbalance" in scenario else "test_accuracy"
            mean = [by_b[str(b)][key]["mean"] for b in bs]
            sd = [by_b[str(b)][key]["sd"] for b in bs]
            ax.errorbar(bs, mean, yerr=sd, marker="o", capsize=3, label=method)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("train batch size (equal epochs)")
        ax.set_ylabel("balanced accuracy" if "imbalance" in scenario else "test accuracy")
        ax.set_title(scenario)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenarios", default="digits-label-noise,digits-imbalance")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--batch-sizes", default="16,32,64,128,256")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=float, default=200.0, help="passes over the training set at every batch size")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "batch_size_sweep.json")
    p.add_argument("--summary-only", action="store_true",
                   help="run nothing: tabulate the runs of <out>.partial.jsonl among those asked for")
    args = p.parse_args()
    from pyrodps.app.runner import machine_description
    from pyrodps.data import make_scenario

    partial = args.out.with_suffix(".partial.jsonl")
    done = load_partial(partial, args.epochs)
    runs = []
    for scenario in args.scenarios.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            problem = None
            for method in args.methods.split(","):
                for batch in (int(b) for b in args.batch_sizes.split(",")):
                    key = (scenario, seed, method, batch)
                    if key in done:
                        runs.append(done[key])
                        continue
                    if args.summary_only:
                        continue
                    if problem is None:  # built once per seed, and only when a run is missing
                        problem = make_scenario(scenario, seed=seed)
                    row = {"scenario": scenario, "epochs": args.epochs,
                           **run_one(problem, method, batch, args.epochs, seed)}
                    runs.append(row)
                    print(json.dumps(row), flush=True)
                    partial.parent.mkdir(parents=True, exist_ok=True)
                    with partial.open("a") as f:
                        f.write(json.dumps(row) + "\n")
    summary = summarise(runs)
    print(f"\n{'scenario':<22}{'method':<8}" + "".join(f"{'B=' + b:>18}" for b in args.batch_sizes.split(","))
          + f"{'spread':>10}")
    for scenario, methods in summary["table"].items():
        key = "balanced_accuracy" if "imbalance" in scenario else "test_accuracy"
        for method, by_b in methods.items():
            cells = [f"{by_b[b][key]['mean']:.3f} ± {by_b[b][key]['sd']:.3f}" if b in by_b else "-"
                     for b in args.batch_sizes.split(",")]
            print(f"{scenario:<22}{method:<8}" + "".join(f"{c:>18}" for c in cells)
                  + f"{summary['accuracy_spread'][scenario][method]:>10.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"args": vars(args) | {"out": str(args.out)}, "runs": runs, **summary, "machine": machine_description(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(summary, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
