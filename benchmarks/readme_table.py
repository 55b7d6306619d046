"""Generate the README's results tables from the benchmark JSON (never typed by hand).

Reads ``benchmarks/results/compare/*/comparison.json`` (written by ``benchmarks/scenarios.sh``),
``benchmarks/results/meta_sweep.json`` and ``meta_sweep_imbalance.json`` (``benchmarks/meta_sweep.py``),
``benchmarks/results/long_run*.json`` (``benchmarks/long_run.py``) and, when they exist, ``benchmarks/results/blo_vs_bads.json``
(per-step time and peak memory of SGD, BADS, L2RW and Meta-Weight-Net; quality at equal steps and
equal wall-clock), ``benchmarks/results/binary_imbalance_sweep.json``, ``batch_size_sweep.json``
(``benchmarks/batch_size_sweep.py``) and ``tabular_network.json`` (``benchmarks/tabular_network.py``), and rewrites the part of
README.md between ``<!-- results:begin -->`` and ``<!-- results:end -->``. ``--check`` exits 1 if
README.md is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
BLO_TIMING_METHODS = ("sgd", "bads", "l2rw", "mwn")
BLO_QUALITY_METHODS = ("bads", "l2rw", "mwn", "mixing")


def _cell(summary: dict, key: str) -> str:
    v = summary.get(key)
    return "-" if v is None else f"{v['mean']:.3f} ± {v['sd']:.3f}"


def _num(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _in_order(names, order: tuple[str, ...]) -> list[str]:
    """``names`` in the order of ``order`` (JSON keys come back sorted), unknown ones last."""
    rank = {m: i for i, m in enumerate(order)}
    return sorted(names, key=lambda m: (rank.get(m, len(rank)), m))


def render_blo_vs_bads(r: dict) -> list[str]:
    """Markdown lines for ``blo_vs_bads.json``: per device a step-time and a peak-memory table (one
    row per network), then per budget a quality table (one row per problem and method)."""
    parts: list[str] = []
    for device, block in r.get("timing", {}).items():
        networks = block.get("networks", {})
        if not networks:
            continue
        stale = "blo_vs_bads.json:timing" in NOT_REGENERATED
        methods = _in_order({m for n in networks.values() for m in n["methods"]}, BLO_TIMING_METHODS)
        steps = sorted({n["timed_steps"] for n in networks.values()})
        isolated = all(rec.get("isolated_process", True) for n in networks.values() for rec in n["methods"].values())
        where = "each method in its own process" if isolated else "all methods in one process: memory not isolated"
        parts.append(f"**BADS vs bi-level baselines: per-step cost** ({device}; median of {','.join(map(str, steps))} "
                     f"timed steps, {where}; train batch 128, meta batch min(128, M))\n")
        parts += [STALE_NOTE] if stale else []
        parts.append("| network | " + " | ".join(f"{m} ms" for m in methods) + " | l2rw / bads | mwn / bads | bads / sgd |")
        parts.append("|---|" + "---|" * (len(methods) + 3))
        for name, n in networks.items():
            ra = n["ratios"]
            cells = [_num(n["methods"][m]["median_ms"], ".2f") if m in n["methods"] else "-" for m in methods]
            cells += [_num(ra["time_l2rw_over_bads"], ".2f"), _num(ra["time_mwn_over_bads"], ".2f"),
                      _num(ra["time_bads_over_sgd"], ".2f")]
            label = f"{n['label']}, synthetic inputs" if n.get("synthetic_inputs") else n["label"]
            parts.append(f"| {name} ({label}) | " + " | ".join(cells) + " |")
        parts.append("")
        figure = {n["ratios"]["memory_figure"] for n in networks.values()}
        what = "GPU max_memory_allocated" if figure == {"cuda_peak_growth_mib"} else "peak RSS"
        parts.append(f"**Peak memory growth above the footprint before the first step, MiB** ({device}, {what})\n")
        parts.append("| network | " + " | ".join(methods) + " | bads / l2rw | bads / mwn |")
        parts.append("|---|" + "---|" * (len(methods) + 2))
        for name, n in networks.items():
            key, ra = n["ratios"]["memory_figure"], n["ratios"]
            cells = [_num(n["methods"][m].get(key), ".1f") if m in n["methods"] else "-" for m in methods]
            cells += [_num(ra["memory_bads_over_l2rw"], ".2f"), _num(ra["memory_bads_over_mwn"], ".2f")]
            parts.append(f"| {name} | " + " | ".join(cells) + " |")
        parts.append("")
    problems = r.get("quality", {}).get("problems", {})
    for budget, label in (("equal-steps", "equal steps"), ("equal-wall", "equal wall-clock (the BADS run's)")):
        rows = [(name, p) for name, p in problems.items() if budget in p.get("summary", {})]
        if not rows:
            continue
        seeds = sorted({s for _, p in rows for s in p["seeds"]})
        parts.append(f"**BADS vs bi-level baselines at {label}**, seeds {','.join(map(str, seeds))}\n")
        parts.append("| problem | method | steps | test accuracy | balanced accuracy | selection AUROC |")
        parts.append("|---|---|---|---|---|---|")
        stale = {name for name, _ in rows if f"blo_vs_bads.json:quality:{name}" in NOT_REGENERATED}
        for name, p in rows:
            summary = p["summary"][budget]
            for m in _in_order(summary, BLO_QUALITY_METHODS):
                s = summary[m]
                parts.append(f"| {name}{' †' if name in stale else ''} | {m} | {s['steps']['mean']:.0f} | "
                             f"{_cell(s, 'test_accuracy')} | {_cell(s, 'balanced_accuracy')} | {_cell(s, 'selection_auroc')} |")
        parts.append("")
        parts += [f"† {STALE_NOTE}"] if stale else []
    return parts


def _span(values) -> str:
    """``"a"`` when all values are ``a``, else ``"min-max"``."""
    v = sorted(values)
    return str(v[0]) if v[0] == v[-1] else f"{v[0]}-{v[-1]}"


def render_binary_sweep(r: dict) -> list[str]:
    """Markdown lines for ``binary_imbalance_sweep.json``: test accuracy and balanced accuracy per
    positive ratio (rows) and method (columns)."""
    parts: list[str] = []
    methods = r["methods"]
    seeds = ",".join(map(str, r["seeds"]))
    for key, label in (("test_accuracy", "test accuracy"), ("balanced_accuracy", "balanced accuracy")):
        parts.append(f"**{r['scenario']} sweep** (4 vs 9, {r['meta_per_class']} meta examples per class; {label}), "
                     f"seeds {seeds}\n")
        parts.append("| fraction of 9s | train N (4s) | " + " | ".join(methods) + " |")
        parts.append("|---|---|" + "---|" * len(methods))
        for ratio in r["ratios"]:
            sizes = r["train_sizes"][str(ratio)]
            s = r["summary"][str(ratio)]
            cells = [_cell(s[m], key) if m in s else "-" for m in methods]
            parts.append(f"| {ratio} | {_span(x['num_train'] for x in sizes)} ({_span(x['num_minority'] for x in sizes)}) | "
                         + " | ".join(cells) + " |")
        parts.append("")
    return parts


def render_batch_sweep(r: dict) -> list[str]:
    """Markdown lines for ``batch_size_sweep.json``: per scenario, the score (balanced accuracy on
    imbalance, test accuracy otherwise) per method (rows) and train batch size (columns), and each
    method's spread of the mean test accuracy across batch sizes."""
    parts: list[str] = []
    seeds = sorted({row["seed"] for row in r["runs"]})
    for scenario, methods in r["table"].items():
        key = "balanced_accuracy" if "imbalance" in scenario else "test_accuracy"
        sizes = sorted({int(b) for by_b in methods.values() for b in by_b})
        parts.append(f"**Batch-size sweep, {scenario}** (`benchmarks/batch_size_sweep.py`: {r['args']['epochs']:g} "
                     f"epochs at every train batch size B, meta batch min(M, B); {key.replace('_', ' ')}, seeds "
                     f"{','.join(map(str, seeds))})\n")
        parts.append("| method | " + " | ".join(f"B = {b}" for b in sizes) + " | spread of test accuracy |")
        parts.append("|---|" + "---|" * (len(sizes) + 1))
        for method, by_b in methods.items():
            cells = [_cell(by_b[str(b)], key) if str(b) in by_b else "-" for b in sizes]
            parts.append(f"| {method} | " + " | ".join(cells) + f" | {r['accuracy_spread'][scenario][method]:.3f} |")
        parts.append("")
    return parts


def render_tabular_network(r: dict) -> list[str]:
    """Markdown lines for ``tabular_network.json``: test accuracy per set and network (rows) and
    method (columns), and BADS's selection AUROC."""
    methods = r["args"]["methods"].split(",")
    seeds = sorted({row["seed"] for row in r["runs"]})
    parts = [(f"**Small tabular data: which network** (`benchmarks/tabular_network.py`: 30 % uniform label "
              f"flips, 5 meta examples per class; test accuracy, seeds {','.join(map(str, seeds))}; held out "
              f"from the choice: {', '.join(r['held_out'])})\n"),
             "| set | network | " + " | ".join(methods) + " | BADS AUROC | cleanlab-logreg AUROC |",
             "|---|---|" + "---|" * (len(methods) + 2)]
    for name, nets in r["summary"].items():
        for net, by_m in nets.items():
            cells = [_cell(by_m[m], "test_accuracy") if m in by_m else "-" for m in methods]
            aurocs = [_cell(by_m.get(m, {}), "selection_auroc") for m in ("bads", "cleanlab-logreg")]
            parts.append(f"| {name} | {net} | " + " | ".join(cells + aurocs) + " |")
    return [*parts, ""]


def render_meta_sweep(r: dict, key: str) -> list[str]:
    """Markdown lines for a ``meta_sweep*.json``: ``key`` per meta-set size (rows) and method (columns)."""
    parts = [f"**Meta-set size sweep** on {r['scenario']} ({key.replace('_', ' ')}), seeds {','.join(map(str, r['seeds']))}\n",
             "| meta per class | " + " | ".join(r["methods"]) + " |", "|---|" + "---|" * len(r["methods"])]
    for k in r["sizes"]:
        s = r["summary"][str(k)]
        parts.append(f"| {k} | " + " | ".join(_cell(s[m], key) for m in r["methods"]) + " |")
    return [*parts, ""]


LONG_RUN_STEPS = (5_000, 20_000, 100_000)


def render_long_runs(results: Path) -> list[str]:
    """Markdown lines for ``long_run*.json`` (``benchmarks/long_run.py``): per run, the metrics a run
    stopped at the default steps and at each longer step count would report (mean ± sd over seeds), and
    the largest drop from the best value along the way."""
    files = sorted(results.glob("long_run*.json"))
    if not files:
        return []
    parts = [("**Long runs** (`benchmarks/long_run.py`: the metrics a run of t steps reports, from one run per seed; "
              "drop: best along the way from step 2,000 minus the last)\n"),
             "| scenario | seeds | metric | " + " | ".join(f"{t:,} steps" for t in LONG_RUN_STEPS) + " | max drop |",
             "|---|---|---|" + "---|" * (len(LONG_RUN_STEPS) + 1)]
    for path in files:
        r = json.loads(path.read_text())
        seeds = ",".join(str(run["seed"]) for run in r["runs"])
        for key in ("test_accuracy", "balanced_accuracy", "selection_auroc"):
            if key not in r["summary"] or (key == "balanced_accuracy" and "selection_auroc" in r["summary"]):
                continue
            cells = []
            for t in LONG_RUN_STEPS:
                vals = [row[key] for run in r["runs"] for row in run["rows"] if row["step"] == t and key in row]
                if len(vals) != len(r["runs"]):
                    cells.append("-")
                    continue
                mean = sum(vals) / len(vals)
                sd = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0
                cells.append(f"{mean:.3f} ± {sd:.3f}")
            parts.append(f"| {r['scenario']} | {seeds} | {key.replace('_', ' ')} | " + " | ".join(cells)
                         + f" | {r['summary'][key]['max_drop']:+.3f} |")
    return [*parts, ""]


def render_default_sweep(r: dict) -> list[str]:
    """Markdown lines for ``default_sweep.json``: every candidate run measured while choosing the defaults."""
    parts = [("**Choosing the defaults** (`benchmarks/results/default_sweep.json`; each row one `benchmarks/long_run.py` "
              "run: the metric a run stopped at t steps reports; drop: best from step 2,000 on minus the last)\n"),
             "| scenario | seed | θ prior | ρ_θ | meta | step | w block (prior) | burn-in | metric | 3k | 5k | 10k | 20k | drop |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def prior(row: dict) -> str:
        kw = row["theta_prior_kwargs"]
        return {"calibrated": f"λ={kw.get('weight_decay', '')}", "isotropic": f"N(0, {kw.get('scale', 1.0)}²)",
                "fan-in": f"fan-in c={kw.get('gain', 1.0)}"}.get(row["theta_prior"], row["theta_prior"])

    for row in sorted(r["rows"], key=lambda x: (x["scenario"], x["name"], x["seed"])):
        meta = f"share {row['meta_share']}" if row["meta_share"] is not None else f"ρ_m={row['rho_meta']}"
        m = row["metric"]
        cells = [_num(row.get(f"{m}@{t}"), ".3f") for t in (3000, 5000, 10000, 20000)]
        parts.append(f"| {row['scenario']} | {row['seed']} | {prior(row)} | {row['rho_theta']:g} | {meta} | "
                     f"{row['step_size']:g} | {row['weight_update']} ({row.get('weight_prior', 'uniform')}) | {row['burn_in_fraction']} | "
                     f"{m.replace('_accuracy', '')} | " + " | ".join(cells) + f" | {row['max_drop']:+.3f} |")
    return [*parts, ""]


# Results not regenerated since the defaults changed (issue #8: calibrated prior, meta share, slice weight
# block, 5,000 steps): a file name, or "file:part". Their tables are printed under STALE_NOTE; delete an
# entry when its benchmark is rerun. Comparisons and meta sweeps are recognised as current by themselves
# (they carry the ``bads-v0.1`` / ``bads-no-meta`` rows).
NOT_REGENERATED: frozenset[str] = frozenset({
    "blo_vs_bads.json:timing", "blo_vs_bads.json:quality:mnist1d-imbalance", "blo_vs_bads.json:quality:mnist1d-label-noise",
})
STALE_NOTE = "_Measured with the v0.1 defaults (before the calibrated prior and meta share); not regenerated yet._\n"


def _mark_stale(lines: list[str]) -> list[str]:
    """``lines`` with :data:`STALE_NOTE` after their heading (nothing to mark when empty)."""
    return [*lines[:1], STALE_NOTE, *lines[1:]] if lines else lines


def render_harm(results: Path) -> list[str]:
    """The harm of every corruption (oracle − mixing), from ``benchmarks/harm.py``'s JSON files."""
    rows = []
    for name in ("harm.json", "harm_occlusion.json", "harm_tabular.json"):
        path = results / "harm" / name
        if path.is_file():
            r = json.loads(path.read_text())
            rows += [(key, v, r["seeds"]) for key, v in sorted(r["scenarios"].items())]
    if not rows:
        return []
    out = [("**Which corruptions hurt** (`benchmarks/harm.py`: test accuracy of plain SGD on the clean training "
           "points ∪ meta (oracle) and on train ∪ meta (mixing), default options, seeds "
           f"{','.join(str(s) for s in rows[0][2])}; harmful at a mean harm of 3 points or more)\n"),
           "| scenario | mixing | oracle | harm (oracle − mixing) | harmful? |", "|---|---|---|---|---|"]
    for key, v, _ in rows:
        s = v["summary"]
        cells = [f"{s[m]['mean']:.3f} ± {s[m]['sd']:.3f}" for m in ("mixing", "oracle", "harm")]
        out.append(f"| {key.replace(':', ' (').replace('feature_noise_kind=', '') + (')' if ':' in key else '')} | "
                   + " | ".join(cells) + f" | {'yes' if v['harmful'] else 'no'} |")
    return [*out, ""]


def render(results: Path) -> str:
    parts = render_harm(results)
    for path in sorted((results / "compare").glob("*/comparison.json")):
        r = json.loads(path.read_text())
        seeds = ",".join(str(s) for s in r["seeds"])
        opts = ", ".join(f"{k}={v}" for k, v in (r.get("scenario_options") or {}).items())
        parts.append(f"**{r['scenario']}**{' (' + opts + ')' if opts else ''}, seeds {seeds}\n")
        regression = any("test_rmse" in s for s in r["summary"].values())
        # regression came after pyrodps 0.1; comparisons with reference rows are of this version
        has_bads = any(m.startswith("bads") for m in r["summary"])
        if has_bads and "bads-v0.1" not in r["summary"] and not regression and not r.get("references"):
            parts.append(STALE_NOTE)
        groups = sorted({k[len('mean_weight_'):] for s in r["summary"].values() for k in s if k.startswith("mean_weight_")})
        scores = (("test_rmse", "test RMSE"), ("test_mae", "test MAE")) if regression else \
            (("test_accuracy", "test accuracy"), ("balanced_accuracy", "balanced accuracy"))
        head = ["method", *(label for _, label in scores), "selection AUROC"] + [f"w̄ {g}" for g in groups]
        parts.append("| " + " | ".join(head) + " |")
        parts.append("|" + "---|" * len(head))
        for method, s in r["summary"].items():
            cells = [method, *(_cell(s, key) for key, _ in scores), _cell(s, "selection_auroc")]
            cells += [_cell(s, f"mean_weight_{g}") for g in groups]
            parts.append("| " + " | ".join(cells) + " |")
        parts.append("")
    for name, key in (("meta_sweep.json", "test_accuracy"), ("meta_sweep_imbalance.json", "balanced_accuracy")):
        sweep = results / name
        if sweep.is_file():
            r = json.loads(sweep.read_text())
            lines = render_meta_sweep(r, key)
            parts += lines if "bads-no-meta" in r["methods"] else _mark_stale(lines)
    parts += render_long_runs(results)
    sweep = results / "default_sweep.json"
    if sweep.is_file():
        parts += render_default_sweep(json.loads(sweep.read_text()))
    for name, render_one in (("blo_vs_bads.json", render_blo_vs_bads), ("binary_imbalance_sweep.json", render_binary_sweep),
                             ("batch_size_sweep.json", render_batch_sweep),
                             ("tabular_network.json", render_tabular_network)):
        path = results / name
        if path.is_file():
            lines = render_one(json.loads(path.read_text()))
            parts += _mark_stale(lines) if name in NOT_REGENERATED else lines
    if not parts:
        return "_No benchmark results yet: run `benchmarks/scenarios.sh`._\n"
    return "\n".join(parts)


def rewrite(readme: str, table: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"README.md lacks the markers {BEGIN} / {END}")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}{END}{tail}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--check", action="store_true", help="exit 1 if the README is not up to date")
    args = ap.parse_args()
    old = args.readme.read_text()
    new = rewrite(old, render(args.results))
    if args.check:
        sys.exit(0 if new == old else 1)
    args.readme.write_text(new)
    print(f"updated {args.readme}")


if __name__ == "__main__":
    main()
