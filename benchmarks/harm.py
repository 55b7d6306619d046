"""Which corruptions hurt? ``oracle`` against ``mixing`` on every classification corruption scenario.

For each scenario (default: every digits and MNIST-1D scenario with a ``corrupted`` mask, at its
default options) and seed in ``--seeds`` it builds the problem with that seed and runs, through
:func:`pyrodps.app.methods.run_method` at their default steps, ``mixing`` (plain momentum SGD on
train ∪ meta) and ``oracle`` (the same on the clean training points ∪ meta). The *harm* of a
corruption is ``oracle − mixing`` test accuracy, paired by seed: what a perfect selector would gain.
A scenario counts as harmful when its mean harm is at least ``--threshold`` (3 points); where it is
not, reweighting has nothing to gain and its selection AUROC means little.

Prints a table (mixing, oracle, harm: mean ± sample sd over seeds) and writes ``--out`` (JSON: every
run's metrics, the per-scenario summary, the options and sizes of every problem, the machine),
rewritten after each scenario so an interrupted run keeps what it finished.

    OMP_NUM_THREADS=1 python benchmarks/harm.py [--scenarios digits-open-set,mnist1d-pair-flip] [--seeds 0,1,2]

A scenario may carry options: ``--scenarios 'digits-feature-noise:feature_noise_kind=occlusion'``
(``,`` separates scenarios, ``;`` options); ``--option noise_rate=0.3`` sets one for all of them.
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from pyrodps.app.methods import run_method
from pyrodps.app.runner import machine_description
from pyrodps.data import SCENARIOS, make_scenario, scenario_options
from pyrodps.io import write_json

CORRUPTION_KINDS = ("label-noise", "feature-noise", "off-domain", "pair-flip", "open-set", "input-swap")
DEFAULT_SCENARIOS = [f"{d}-{k}" for d in ("digits", "mnist1d") for k in CORRUPTION_KINDS]
METHODS = ("mixing", "oracle")
THRESHOLD = 0.03


def parse_value(text: str) -> object:
    """``0.3`` -> 0.3, ``(7,8)`` -> (7, 8), ``uniform`` -> 'uniform'."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_options(text: str, sep: str) -> dict:
    options = {}
    for part in (p for p in text.split(sep) if p):
        key, _, value = part.partition("=")
        options[key.strip()] = parse_value(value.strip())
    return options


def split_top(text: str, sep: str) -> list[str]:
    """``text`` split at the ``sep`` not inside brackets: ``a,b:c=(1,2)`` -> ``["a", "b:c=(1,2)"]``."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch in "([") - (ch in ")]")
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [p.strip() for p in [*parts, cur] if p.strip()]


def parse_scenarios(text: str) -> list[tuple[str, str, dict]]:
    """``name[:key=value;key=value]`` separated by ``,`` -> ``(label, name, options)``."""
    out = []
    for item in split_top(text, ","):
        name, _, opts = item.partition(":")
        if name not in SCENARIOS:
            raise SystemExit(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
        out.append((item, name, parse_options(opts, ";")))
    return out


def mean_sd(values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def measure(label: str, name: str, options: dict, seeds: list[int], threshold: float) -> dict:
    """mixing and oracle on scenario ``name`` for every seed; the harm per seed and summarised."""
    runs, sizes = [], []
    acc: dict[str, list[float]] = {m: [] for m in METHODS}
    for seed in seeds:
        t0 = time.perf_counter()
        problem = make_scenario(name, **{**options, "seed": seed})
        build_seconds = time.perf_counter() - t0
        if problem.corrupted is None:
            raise SystemExit(f"{label}: the scenario marks nothing corrupted; the harm is 0 by construction")
        sizes.append({"seed": seed, "num_train": int(problem.num_train), "num_corrupted": int(problem.corrupted.sum()),
                      "num_classes": int(problem.num_classes), "num_test": int(problem.y_test.shape[0]),
                      "build_seconds": build_seconds})
        for method in METHODS:
            m = run_method(problem, method, seed=seed, progress=False).metrics(problem)
            runs.append({**m, "scenario": label})
            acc[method].append(m["test_accuracy"])
        print(f"  {label} seed {seed}: mixing {acc['mixing'][-1]:.4f} oracle {acc['oracle'][-1]:.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    harm = [o - m for o, m in zip(acc["oracle"], acc["mixing"])]
    summary = {"mixing": mean_sd(acc["mixing"]), "oracle": mean_sd(acc["oracle"]), "harm": mean_sd(harm)}
    return {"scenario": name, "options": {**scenario_options(name), **options, "seed": None}, "runs": runs,
            "sizes": sizes, "harm_per_seed": harm, "summary": summary, "harmful": summary["harm"]["mean"] >= threshold}


def format_table(result: dict) -> str:
    """One row per scenario: mixing, oracle and harm (test accuracy, mean ± sd over seeds)."""
    pm = lambda s: f"{s['mean']:.3f} ± {s['sd']:.3f}"
    head = f"{'scenario':<48}{'mixing':>17}{'oracle':>17}{'harm':>17}  harmful?"
    title = (f"test accuracy, mean ± sd over seeds {result['seeds']}; harm = oracle − mixing, "
             f"harmful if its mean >= {result['threshold']}")
    lines = [title, head]
    for label, r in result["scenarios"].items():
        s = r["summary"]
        lines.append(f"{label:<48}{pm(s['mixing']):>17}{pm(s['oracle']):>17}{pm(s['harm']):>17}  "
                     f"{'yes' if r['harmful'] else 'no'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                    help="comma-separated scenario names, each optionally name:key=value;key=value")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--option", action="append", default=[], help="key=value for every scenario (repeatable)")
    ap.add_argument("--threshold", type=float, default=THRESHOLD, help="mean harm that counts as harmful")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/harm/harm.json"))
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    common = parse_options(";".join(args.option), ";")
    scenarios = parse_scenarios(args.scenarios)
    result = {"benchmark": "harm", "methods": list(METHODS), "seeds": seeds, "threshold": args.threshold,
              "metric": "test_accuracy", "scenarios": {}, "machine": machine_description(), "complete": False}
    start = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for label, name, options in scenarios:
        t0 = time.perf_counter()
        r = measure(label, name, {**common, **options}, seeds, args.threshold)
        r["wall_seconds"] = time.perf_counter() - t0
        result["scenarios"][label] = r
        result["wall_seconds"] = time.perf_counter() - start
        write_json(args.out, result)
        h = r["summary"]["harm"]
        print(f"{label}: harm {h['mean']:+.3f} ± {h['sd']:.3f} ({r['wall_seconds']:.0f} s)", flush=True)
    result["complete"] = True
    result["wall_seconds"] = time.perf_counter() - start
    write_json(args.out, result)
    print(format_table(result))
    print(f"wrote {args.out} ({result['wall_seconds'] / 60:.1f} min)")
    return result


if __name__ == "__main__":
    main()
