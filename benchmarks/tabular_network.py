"""Which network for small vector data? BADS, mixing, the oracle and cleanlab at several MLP widths.

The default MLP (two hidden layers of 256) was chosen on digits and MNIST-1D (1-4k training points,
64-40 inputs). On a few hundred tabular rows it is the wrong network: mixing with it overfits the
flipped labels and BADS inherits the problem. This benchmark measures the choice on small real
tables with label noise (uniform flips at ``--noise-rate``, a clean meta set of 5 per class, a clean
quarter for testing, features standardised per column with the training part's moments), over seeds:

* development sets: scikit-learn's ``iris`` (150 rows, 4 features), the vega ``cars`` table (392, 7;
  origin from the specifications) and scikit-learn's ``wine`` (178, 13);
* held-out checks, not used to pick the rule: scikit-learn's ``breast_cancer`` (569, 30) and the vega
  ``seattle_weather`` table (1461 days, 4 features: precipitation, temperatures, wind; 5 weathers).

For every set, seed and network in ``--hidden`` (``256-256``, ``64``, ``16``, ``linear``) it runs
``bads``, ``mixing``, ``oracle`` and ``cleanlab-logreg`` (logistic-regression out-of-fold probabilities,
then a retrain of the same network on the kept points + meta) through
:func:`pyrodps.app.methods.run_method` at their default steps, and prints a table (test accuracy and
selection AUROC, mean ± sd over seeds) per set and network. JSON (every run, the summary, the machine)
is rewritten after each set so an interrupted run keeps what it finished.

    OMP_NUM_THREADS=1 python benchmarks/tabular_network.py --out benchmarks/results/tabular_network.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from pyrodps.app.methods import run_method
from pyrodps.app.runner import machine_description
from pyrodps.data.scenarios import Source, label_noise
from pyrodps.data.tabular import load_cars_xy, load_iris_xy
from pyrodps.io import write_json

METHODS = ("bads", "mixing", "oracle", "cleanlab-logreg")
NETWORKS = {"256-256": (256, 256), "64": (64,), "16": (16,), "linear": ()}
DEVELOPMENT = ("iris", "cars", "wine")
HELD_OUT = ("breast_cancer", "seattle_weather")


def _sklearn(name: str):
    def load() -> tuple[np.ndarray, np.ndarray]:
        import sklearn.datasets

        x, y = getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)
        return x.astype(np.float32), y.astype(np.int64)
    return load


def load_seattle_weather_xy() -> tuple[np.ndarray, np.ndarray]:
    """The vega ``seattle_weather`` table: precipitation, max and min temperature, wind -> weather."""
    from vega_datasets import local_data

    df = local_data.seattle_weather()
    kinds = sorted(df["weather"].unique())
    x = df[["precipitation", "temp_max", "temp_min", "wind"]].to_numpy(np.float32)
    y = np.array([kinds.index(w) for w in df["weather"]], dtype=np.int64)
    return x, y


SOURCES = {
    "iris": Source("iris", load_iris_xy, 3, "feature"),
    "cars": Source("cars", load_cars_xy, 3, "feature"),
    "wine": Source("wine", _sklearn("wine"), 3, "feature"),
    "breast_cancer": Source("breast_cancer", _sklearn("breast_cancer"), 2, "feature"),
    "seattle_weather": Source("seattle_weather", load_seattle_weather_xy, 5, "feature"),
}


def summarise(runs: list[dict]) -> dict:
    """Mean and sample sd over seeds per (set, network, method)."""
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["set"], r["network"], r["method"]), []).append(r)
    out: dict = {}
    for (name, net, method), rows in groups.items():
        cell = {}
        for k in ("test_accuracy", "balanced_accuracy", "selection_auroc", "wall_seconds"):
            v = np.array([r[k] for r in rows if r.get(k) is not None], dtype=np.float64)
            if v.size:
                cell[k] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
                           "n": int(v.size)}
        out.setdefault(name, {}).setdefault(net, {})[method] = cell
    return out


def print_table(summary: dict) -> None:
    print(f"\n{'set':<16}{'network':<9}" + "".join(f"{m:>17}" for m in METHODS) + f"{'BADS AUROC':>17}")
    for name, nets in summary.items():
        for net, methods in nets.items():
            cells = [methods.get(m, {}).get("test_accuracy") for m in METHODS]
            auroc = methods.get("bads", {}).get("selection_auroc")
            print(f"{name:<16}{net:<9}" + "".join(
                f"{c['mean']:>10.3f} ±{c['sd']:.3f}" if c else f"{'-':>17}" for c in cells)
                + (f"{auroc['mean']:>10.3f} ±{auroc['sd']:.3f}" if auroc else ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default=",".join(DEVELOPMENT + HELD_OUT))
    p.add_argument("--hidden", default=",".join(NETWORKS))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--noise-rate", type=float, default=0.3)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/tabular_network.json"))
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    runs: list[dict] = []
    start = time.perf_counter()
    for name in args.sets.split(","):
        for seed in seeds:
            problem = label_noise(SOURCES[name], args.noise_rate, "uniform", 5, 0.25, seed)
            for net in args.hidden.split(","):
                for method in args.methods.split(","):
                    res = run_method(problem, method, seed=seed, progress=False, hidden=NETWORKS[net])
                    m = res.metrics(problem)
                    runs.append({"set": name, "network": net, "method": method, "seed": seed,
                                 "num_train": problem.num_train, **{k: m.get(k) for k in (
                                     "test_accuracy", "balanced_accuracy", "selection_auroc")},
                                 "wall_seconds": res.wall_seconds})
                    print(runs[-1], flush=True)
        summary = summarise(runs)
        write_json(args.out, {"benchmark": "tabular_network", "args": vars(args) | {"out": str(args.out)},
                              "development": list(DEVELOPMENT), "held_out": list(HELD_OUT),
                              "runs": runs, "summary": summary, "machine": machine_description(),
                              "wall_seconds": time.perf_counter() - start})
    print_table(summarise(runs))


if __name__ == "__main__":
    main()
