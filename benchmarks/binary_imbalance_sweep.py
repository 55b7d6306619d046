"""Learning to Reweight's MNIST class-imbalance experiment (Ren et al. 2018, Figure 3), on digits.

The scenario ``digits-binary-imbalance`` keeps only the digits 4 (label 0, the minority) and 9
(label 1): every class-9 training point is kept and class-4 points are subsampled so that a
``positive_ratio`` fraction of the training set is class 9 (at least one class-4 point remains;
about 121 nines, so the ratios 0.99 and 0.995 both leave a single four). The meta set has
``--meta-per-class`` clean examples of each class (5, i.e. 10 points), the test set the loaded,
balanced proportions. For every ratio in ``--ratios``, seed in ``--seeds`` and method in
``--methods`` (``mixing``: plain momentum SGD on train ∪ meta; ``l2rw``; ``mwn``; ``bads``) it runs
:func:`pyrodps.app.methods.run_method` (each method's default steps unless ``--steps``) and
records test accuracy, balanced accuracy and the mean weight of the minority and majority points.
The training set is smaller than 128 at most ratios, so every method then sees the whole of it
each step.

Writes ``--out`` (JSON: every run, the per-ratio mean ± sd over seeds, the training-set sizes and the
machine) and a plot next to it (test and balanced accuracy against the ratio), and prints a table.

    python benchmarks/binary_imbalance_sweep.py [--ratios 0.9,0.95,0.98,0.99,0.995] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from pyrodps.app.compare import summarize_runs
from pyrodps.app.methods import METHODS as ALL_METHODS
from pyrodps.app.methods import run_method
from pyrodps.app.runner import machine_description
from pyrodps.data import make_scenario
from pyrodps.errors import check_choice
from pyrodps.io import write_json

SCENARIO = "digits-binary-imbalance"
RATIOS = "0.9,0.95,0.98,0.99,0.995"
METHODS = ("mixing", "l2rw", "mwn", "bads")
COLORS = {"mixing": "tab:gray", "l2rw": "tab:orange", "mwn": "tab:green", "bads": "tab:blue"}


def sweep(ratios: list[float], methods: list[str], seeds: list[int], steps: int | None, meta_per_class: int) -> dict:
    """Every (ratio, seed, method) run; the per-ratio summaries and training-set sizes."""
    runs: list[dict] = []
    sizes: dict[str, list[dict]] = {}
    summary: dict[str, dict] = {}
    for r in ratios:
        rows = []
        for seed in seeds:
            problem = make_scenario(SCENARIO, positive_ratio=r, meta_per_class=meta_per_class, seed=seed)
            counts = np.bincount(problem.y_train, minlength=2)
            sizes.setdefault(str(r), []).append({"seed": seed, "num_train": int(problem.num_train),
                                                 "num_minority": int(counts[0]), "num_majority": int(counts[1])})
            for method in methods:
                res = run_method(problem, method, seed=seed, steps=steps, progress=False)
                rows.append({**res.metrics(problem), "positive_ratio": r})
        runs += rows
        summary[str(r)] = summarize_runs(rows)
        line = "  ".join(f"{m} {summary[str(r)][m]['test_accuracy']['mean']:.3f}" for m in methods)
        print(f"positive_ratio={r:<6} {line}", flush=True)
    return {"runs": runs, "summary": summary, "train_sizes": sizes}


def format_table(result: dict) -> str:
    """Test accuracy (balanced accuracy) per ratio and method, mean ± sd over seeds."""
    head = f"{'ratio':<7}{'N (4s)':>10}" + "".join(f"{m:>30}" for m in result["methods"])
    lines = [f"{SCENARIO}, test accuracy / balanced accuracy, mean ± sd over seeds {result['seeds']}", head]
    for r in result["ratios"]:
        s = result["summary"][str(r)]
        size = result["train_sizes"][str(r)][0]
        cells = []
        for m in result["methods"]:
            a, b = s[m]["test_accuracy"], s[m]["balanced_accuracy"]
            cells.append(f"{a['mean']:.3f}±{a['sd']:.3f} / {b['mean']:.3f}±{b['sd']:.3f}")
        lines.append(f"{r:<7}{size['num_train']:>6} ({size['num_minority']})" + "".join(f"{c:>30}" for c in cells))
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """Test accuracy and balanced accuracy (mean ± sd over seeds) against the positive ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = result["ratios"]
    x = np.arange(len(ratios))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, key, label in zip(axes, ("test_accuracy", "balanced_accuracy"), ("test accuracy", "balanced accuracy")):
        for m in result["methods"]:
            mean = [result["summary"][str(r)][m][key]["mean"] for r in ratios]
            sd = [result["summary"][str(r)][m][key]["sd"] for r in ratios]
            ax.errorbar(x, mean, yerr=sd, marker="o", capsize=3, label=m, color=COLORS.get(m))
        ax.set_xticks(x, [str(r) for r in ratios])
        ax.set_xlabel("fraction of 9s in training (positive ratio)")
        ax.set_ylabel(f"{label} (mean ± sd over seeds)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{SCENARIO} (4 vs 9), meta set {result['meta_per_class']} per class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ratios", default=RATIOS)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--steps", type=int, default=None, help="steps of every method (default: each method's own default)")
    ap.add_argument("--meta-per-class", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/binary_imbalance_sweep.json"))
    args = ap.parse_args(argv)
    ratios = [float(r) for r in args.ratios.split(",") if r]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        check_choice("methods", m, ALL_METHODS)
    res = sweep(ratios, methods, seeds, args.steps, args.meta_per_class)
    result = {"benchmark": "binary_imbalance_sweep", "scenario": SCENARIO, "ratios": ratios, "seeds": seeds,
              "methods": methods, "steps": sorted({run["steps"] for run in res["runs"]}),
              "meta_per_class": args.meta_per_class, **res, "machine": machine_description()}
    print(format_table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    plot(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return result


if __name__ == "__main__":
    main()
