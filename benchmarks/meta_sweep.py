"""Meta-set size sweep (like Figure 3 of the BADS paper): test accuracy against clean examples per class.

For each ``meta_per_class`` in ``--sizes`` it runs ``pyrodps compare`` on the scenario over the seeds,
then writes ``--out`` (JSON with every run, the per-size summaries and the machine) and a plot next to it.

    python benchmarks/meta_sweep.py [--scenario digits-label-noise] [--sizes 1,5,10,20] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from pyrodps.app.compare import compare
from pyrodps.app.runner import machine_description
from pyrodps.data import make_scenario
from pyrodps.io import write_json

METHODS = "bads,mixing,meta-only,dup-meta,random-select"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="digits-label-noise")
    ap.add_argument("--sizes", default="1,5,10,20")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/meta_sweep.json"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    per_size = {}
    for k in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            res = compare(lambda seed, k=k: make_scenario(args.scenario, meta_per_class=k, seed=seed), methods, seeds,
                          Path(tmp), steps=args.steps, progress=False)
        per_size[k] = res["summary"]
        row = "  ".join(f"{m} {s['test_accuracy']['mean']:.4f}±{s['test_accuracy']['sd']:.4f}" for m, s in res["summary"].items())
        print(f"meta_per_class={k:>3}  {row}", flush=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for m in methods:
        mean = [per_size[k][m]["test_accuracy"]["mean"] for k in sizes]
        sd = [per_size[k][m]["test_accuracy"]["sd"] for k in sizes]
        ax.errorbar(sizes, mean, yerr=sd, marker="o", capsize=3, label=m)
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("clean meta examples per class")
    ax.set_ylabel("test accuracy (mean ± sd over seeds)")
    ax.set_title(f"{args.scenario}: meta-set size sweep")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out.with_suffix(".png"), dpi=110)
    write_json(args.out, {"benchmark": "meta_sweep", "scenario": args.scenario, "sizes": sizes, "seeds": seeds,
                          "methods": methods, "summary": {str(k): v for k, v in per_size.items()},
                          "machine": machine_description()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
