"""BADS against plain SGD on digits with uniform label noise, over several seeds.

Prints one row per seed and the mean ± sd, and writes JSON with the machine's description:

    python benchmarks/digits_label_noise.py [--seeds 0,1,2] [--noise-rate 0.4] [--out benchmarks/results/digits_label_noise.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyrodps import BADSConfig, fit_bads, make_scenario
from pyrodps.app.runner import machine_description
from pyrodps.baselines import SGDConfig, fit_sgd
from pyrodps.io import write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--noise-rate", type=float, default=0.4)
    ap.add_argument("--meta-per-class", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/digits_label_noise.json"))
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    print(f"{'seed':>4}{'bads acc':>10}{'sgd acc':>9}{'auroc':>8}{'AP':>8}{'bads s':>8}{'sgd s':>7}")
    for seed in seeds:
        problem = make_scenario("digits-label-noise", noise_rate=args.noise_rate, meta_per_class=args.meta_per_class, seed=seed)
        t0 = time.perf_counter()
        fit = fit_bads(problem, BADSConfig(), seed=seed, progress=False)
        t1 = time.perf_counter()
        sgd = fit_sgd(problem, SGDConfig(), seed=seed, progress=False)
        t2 = time.perf_counter()
        from pyrodps.diagnostics import selection_average_precision

        ap_ = selection_average_precision(fit.weight_mean, problem.corrupted)
        rows.append({"seed": seed, "bads_test_accuracy": fit.test_accuracy, "sgd_test_accuracy": sgd.test_accuracy,
                     "selection_auroc": fit.selection_auroc, "selection_average_precision": ap_,
                     "bads_seconds": t1 - t0, "sgd_seconds": t2 - t1})
        r = rows[-1]
        print(f"{seed:>4}{r['bads_test_accuracy']:>10.4f}{r['sgd_test_accuracy']:>9.4f}{r['selection_auroc']:>8.4f}"
              f"{ap_:>8.4f}{r['bads_seconds']:>8.1f}{r['sgd_seconds']:>7.1f}")
    summary = {}
    for key in ("bads_test_accuracy", "sgd_test_accuracy", "selection_auroc", "selection_average_precision", "bads_seconds"):
        v = np.array([r[key] for r in rows])
        summary[key] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
    gain = np.array([r["bads_test_accuracy"] - r["sgd_test_accuracy"] for r in rows])
    summary["accuracy_gain"] = {"mean": float(gain.mean()), "sd": float(gain.std(ddof=1)) if len(gain) > 1 else 0.0}
    for k, v in summary.items():
        print(f"{k:<30} {v['mean']:.4f} ± {v['sd']:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, {"benchmark": "digits_label_noise", "noise_rate": args.noise_rate, "meta_per_class": args.meta_per_class,
                          "bads_config": BADSConfig().to_dict(), "sgd_config": SGDConfig().to_dict(),
                          "machine": machine_description(), "rows": rows, "summary": summary})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
