"""BADS against the one-step-lookahead bi-level baselines (L2RW, Meta-Weight-Net): cost and quality.

**Part ``timing``** (``--device cpu`` or ``cuda``): the wall time and peak memory of one step of

* ``sgd``: plain momentum SGD on the mean cross-entropy of the train batch and the meta batch
  together (the examples a BADS step touches; as ``benchmarks/step_cost.py``);
* ``bads``: the default BADS sampler built as :func:`pyrodps.fit_bads` builds it (``BADSModel`` with
  the tuned ``rho_theta`` of the input kind, uniform weight prior, ``log Z(w)`` ignored;
  ``BADSKernel`` with pSGLD (RMSprop), the fused gradient, ``temperature`` and
  ``weight_step_size`` of :class:`pyrodps.BADSConfig`), timing ``kernel.step(state, batch,
  diagnostics=False)``;
* ``l2rw``: :func:`pyrodps.baselines.l2rw.l2rw_step` with the :class:`L2RWConfig` defaults;
* ``mwn``: :func:`pyrodps.baselines.mwn.mwn_step` with the :class:`MWNConfig` defaults (its weight
  network and Adam optimizer included);

on three networks: ``digits-mlp`` (the default 64-256-256-10 MLP on the real digits label-noise
data), ``mnist1d-cnn`` (the default 1-D CNN on the real MNIST-1D label-noise data) and ``resnet``
(:func:`pyrodps.models.resnet.small_resnet`: ResNet-8, widths 16-32-64 (``--resnet-widths``,
``--resnet-blocks``), GroupNorm; N = 1024, M = 128 **synthetic** 3x32x32 inputs with random
labels among 10 classes: only the cost is measured, activations dominate its memory). The train
batch is ``min(128, N)`` and the meta batch ``min(128, M)`` for every method; the momentum-SGD
learning rate is the BLO default of the input kind (0.003 vectors, 0.01 otherwise).

Every (network, method) pair runs in its **own process** (``--worker``, which prints one JSON line
on stdout), so that one method's allocations cannot raise another's peak. In the worker the data,
network, optimizer / sampler state and batch stream are built first and one step runs on a
2-point batch (so that lazy imports and one-off initialisations count in the footprint, not in the
steps' growth); then the RSS is read (``/proc/self/statm``), the kernel's RSS high-water mark is reset (``/proc/self/clear_refs``,
where writable; ``torch.cuda.reset_peak_memory_stats`` on CUDA) and ``--warmup`` steps plus
``--timing-steps`` timed steps run. A step's time covers gathering the batch from the stream and
the method's step function (``torch.cuda.synchronize`` after it on CUDA), measured with
``time.perf_counter``; the median over the timed steps is reported (mean, p10, p90 too). Memory:
``peak_rss_mib`` is ``getrusage(RUSAGE_SELF).ru_maxrss`` after the steps (the peak since the reset
when the reset worked, else since the process began), ``peak_rss_growth_mib`` that peak minus the
RSS before the first step (the step's own working memory: torch's libraries dominate absolute RSS);
on CUDA ``cuda_peak_allocated_mib`` is ``torch.cuda.max_memory_allocated`` and
``cuda_peak_growth_mib`` the same minus the memory allocated before the first step. The memory
ratios use the growth figures (absolute RSS also differs by libraries: building any
``torch.optim`` optimizer imports ``torch._dynamo``, about 150 MiB, which the BADS worker never does). ``--repeats R`` runs every worker R times (methods interleaved) and
reports the median of the medians. ``--in-process`` runs the workers in this process instead (for
tests: the memory figures are then not isolated).

**Part ``quality``** (CPU): on ``digits-label-noise`` and ``mnist1d-label-noise`` (40 % uniform
label noise) and ``digits-imbalance`` and ``mnist1d-imbalance`` (long tail, ratio 100), methods
``bads``, ``l2rw``, ``mwn``, ``mixing`` over ``--seeds``, through
:func:`pyrodps.app.methods.run_method` and :meth:`MethodResult.metrics`:

* *equal steps*: every method ``--steps`` steps (default 5000, the BADS default);
* *equal wall-clock*: every method gets the wall time ``W_bads`` of the equal-steps BADS run on the
  same problem and seed: it runs ``round(steps * W_bads / W_method)`` steps, ``W_method`` the wall
  time of its own equal-steps run there (so the per-step time includes each method's periodic
  test evaluation and its set-up, as BADS's does). The realised wall time is recorded. BADS's
  equal-wall result is its equal-steps run.

Reported: test accuracy, balanced accuracy, selection AUROC (label noise only) and the mean weight
of each ground-truth group, mean ± sd over seeds.

``--out`` (JSON, default ``benchmarks/results/blo_vs_bads.json``) is **merged**: a run replaces
only the networks (per device) and problems it ran, so the parts can run separately. The plot
(``--out`` with ``.png``) shows per-step time and peak memory by network and method, and test
accuracy against wall-clock seconds for every quality problem.

    python benchmarks/blo_vs_bads.py [--parts timing,quality] [--networks digits-mlp,mnist1d-cnn,resnet]
        [--device cpu] [--timing-steps 200] [--warmup 20] [--steps 5000] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from blo_workloads import NETWORKS, TIMING_METHODS, run_worker

from pyrodps.app.runner import machine_description
from pyrodps.io import write_json

SCRIPT = Path(__file__).resolve()
CONV_NETWORKS = ("mnist1d-cnn", "resnet")
QUALITY_PROBLEMS = ("digits-label-noise", "mnist1d-label-noise", "digits-imbalance", "mnist1d-imbalance")
QUALITY_METHODS = ("bads", "l2rw", "mwn", "mixing")
BUDGETS = ("equal-steps", "equal-wall")
# the issue's targets: BLO step / BADS step on the conv nets, BADS peak / BLO peak on the ResNet
TIME_RATIO_TARGET = 2.5
MEMORY_RATIO_TARGET = 0.7


def spawn_worker(network: str, method: str, args: argparse.Namespace) -> dict:
    """Run :func:`run_worker` in a fresh Python process and parse the JSON line it prints
    (``args.in_process``: call it here instead, marked ``isolated_process: false``)."""
    if args.in_process:
        rec = run_worker(network, method, args.device, args.warmup, args.timing_steps,
                         resnet_widths=args.resnet_widths, resnet_blocks=args.resnet_blocks)
        return {**rec, "isolated_process": False}
    cmd = [sys.executable, str(SCRIPT), "--worker", "--networks", network, "--timing-methods", method,
           "--device", args.device, "--warmup", str(args.warmup), "--timing-steps", str(args.timing_steps),
           "--resnet-widths", ",".join(map(str, args.resnet_widths)), "--resnet-blocks", str(args.resnet_blocks)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=os.environ.copy())
    if proc.returncode != 0:
        raise RuntimeError(f"worker {network}/{method} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"worker {network}/{method} printed no JSON:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return {**json.loads(lines[-1]), "isolated_process": True}


# ---------------------------------------------------------------------------------------------- timing summary
def _memory_key(records: dict[str, dict]) -> str:
    """The memory figure ratios use: the CUDA peak growth on a GPU, else the peak-RSS growth."""
    return "cuda_peak_growth_mib" if any("cuda_peak_growth_mib" in r for r in records.values()) else "peak_rss_growth_mib"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def network_summary(network: str, records: dict[str, dict]) -> dict:
    """Time ratios ``l2rw/bads``, ``mwn/bads``, ``bads/sgd`` (medians) and memory ratios
    ``bads/l2rw``, ``bads/mwn`` (peak growth), with the issue's targets where they apply."""
    t = {m: r["median_ms"] for m, r in records.items()}
    key = _memory_key(records)
    mem = {m: r.get(key) for m, r in records.items()}
    ratios = {
        "time_l2rw_over_bads": _ratio(t.get("l2rw"), t.get("bads")),
        "time_mwn_over_bads": _ratio(t.get("mwn"), t.get("bads")),
        "time_bads_over_sgd": _ratio(t.get("bads"), t.get("sgd")),
        "memory_bads_over_l2rw": _ratio(mem.get("bads"), mem.get("l2rw")),
        "memory_bads_over_mwn": _ratio(mem.get("bads"), mem.get("mwn")),
        "memory_figure": key,
    }
    targets: dict[str, dict] = {}
    if network in CONV_NETWORKS:
        blo = [v for v in (ratios["time_l2rw_over_bads"], ratios["time_mwn_over_bads"]) if v is not None]
        targets["time_blo_over_bads"] = {"target": f">= {TIME_RATIO_TARGET} for L2RW or MWN",
                                         "value": max(blo) if blo else None,
                                         "pass": bool(blo) and max(blo) >= TIME_RATIO_TARGET}
    if network == "resnet":
        mems = [v for v in (ratios["memory_bads_over_l2rw"], ratios["memory_bads_over_mwn"]) if v is not None]
        targets["memory_bads_over_blo"] = {"target": f"<= {MEMORY_RATIO_TARGET}", "value": max(mems) if mems else None,
                                           "pass": bool(mems) and max(mems) <= MEMORY_RATIO_TARGET}
    return {"ratios": ratios, "targets": targets}


def run_timing(args: argparse.Namespace) -> dict[str, dict]:
    """Every (network, method) worker, ``--repeats`` times with methods interleaved; per network the
    records (medians of the repeats' medians) and the ratios."""
    out: dict[str, dict] = {}
    for network in args.networks:
        repeats: dict[str, list[dict]] = {m: [] for m in args.timing_methods}
        for _ in range(args.repeats):
            for method in args.timing_methods:
                rec = spawn_worker(network, method, args)
                repeats[method].append(rec)
                mem = rec.get("cuda_peak_growth_mib", rec["peak_rss_growth_mib"])
                print(f"  {network:<12} {method:<5} {rec['median_ms']:9.3f} ms/step  peak growth "
                      f"{mem if mem is None else round(mem, 1)} MiB", flush=True)
        records = {}
        for method, recs in repeats.items():
            rec = dict(recs[-1])
            for key in ("median_ms", "mean_ms", "p10_ms", "p90_ms", "min_ms", "peak_rss_mib", "peak_rss_growth_mib",
                        "cuda_peak_allocated_mib", "cuda_peak_growth_mib"):
                vals = [r[key] for r in recs if r.get(key) is not None]
                if vals:
                    rec[key] = statistics.median(vals)
            rec["repeat_median_ms"] = [r["median_ms"] for r in recs]
            records[method] = rec
        first = next(iter(records.values()))
        out[network] = {
            "label": first["label"], "description": first["description"], "synthetic_inputs": first["synthetic_inputs"],
            "num_params": first["num_params"], "batch_size": first["batch_size"],
            "meta_batch_size": first["meta_batch_size"], "warmup_steps": args.warmup,
            "timed_steps": args.timing_steps, "repeats": args.repeats, "methods": records,
            **network_summary(network, records),
        }
    return out


# ---------------------------------------------------------------------------------------------- quality
def run_quality(args: argparse.Namespace) -> dict[str, dict]:
    """Equal-steps and equal-wall-clock runs of every method on every problem and seed (CPU)."""
    from pyrodps.app.compare import summarize_runs
    from pyrodps.app.methods import run_method
    from pyrodps.data import make_scenario

    if "bads" not in args.methods:
        raise SystemExit("--methods must include bads: it sets the wall-clock budget")
    # a few steps of every method first, so that one-off costs (lazy imports, torch.func set-up) do
    # not inflate the wall time of the first timed run and with it the equal-wall step counts
    first = make_scenario(args.problems[0], seed=args.seeds[0])
    for method in args.methods:
        run_method(first, method, seed=args.seeds[0], steps=20, progress=False)
    out: dict[str, dict] = {}
    for name in args.problems:
        runs: list[dict] = []
        for seed in args.seeds:
            problem = make_scenario(name, seed=seed)
            equal_steps: dict[str, dict] = {}
            for method in ["bads", *[m for m in args.methods if m != "bads"]]:
                res = run_method(problem, method, seed=seed, steps=args.steps, progress=False)
                row = {**res.metrics(problem), "budget": "equal-steps", "problem": name}
                equal_steps[method] = row
                runs.append(row)
            budget = equal_steps["bads"]["wall_seconds"]
            for method in args.methods:
                if method == "bads":
                    row = {**equal_steps["bads"], "budget": "equal-wall", "budget_seconds": budget, "same_run_as": "equal-steps"}
                else:
                    per_step = equal_steps[method]["wall_seconds"] / args.steps
                    steps = max(1, round(budget / per_step))
                    res = run_method(problem, method, seed=seed, steps=steps, progress=False)
                    row = {**res.metrics(problem), "budget": "equal-wall", "problem": name, "budget_seconds": budget,
                           "per_step_seconds": per_step}
                row["wall_over_budget"] = row["wall_seconds"] / budget
                runs.append(row)
            line = "  ".join(f"{m} {equal_steps[m]['test_accuracy']:.3f}" for m in args.methods)
            print(f"  {name:<22} seed {seed}  equal steps: {line}  (bads {budget:.1f} s)", flush=True)
        summary = {}
        for b in BUDGETS:
            rows = [r for r in runs if r["budget"] == b]
            summary[b] = summarize_runs(rows)
            for method in summary[b]:
                steps = [r["steps"] for r in rows if r["method"] == method]
                summary[b][method]["steps"] = {"mean": statistics.fmean(steps), "sd": statistics.stdev(steps) if len(steps) > 1 else 0.0,
                                               "n": len(steps)}
        out[name] = {"steps": args.steps, "seeds": args.seeds, "methods": args.methods, "runs": runs, "summary": summary,
                     "equal_wall_rule": "steps = round(steps * W_bads / W_method), W the wall seconds of the equal-steps "
                                        "runs on the same problem and seed"}
    return out


# ---------------------------------------------------------------------------------------------- output
def merge_results(old: dict | None, timing: dict | None, quality: dict | None, device: str) -> dict:
    """``old`` (a previous JSON of this benchmark, or None) with the networks of ``device`` and the
    problems just run replaced."""
    result = old if old and old.get("benchmark") == "blo_vs_bads" else {"benchmark": "blo_vs_bads"}
    result.setdefault("timing", {})
    result.setdefault("quality", {})
    machine = machine_description()
    result["machine"] = machine
    if timing:
        block = result["timing"].setdefault(device, {"networks": {}})
        block["machine"] = machine
        block["networks"].update(timing)
    if quality:
        result["quality"].setdefault("problems", {}).update(quality)
        result["quality"]["machine"] = machine
    return result


def _ordered(by_method: dict[str, dict]) -> list[tuple[str, dict]]:
    """``by_method``'s items in the order of :data:`TIMING_METHODS` / :data:`QUALITY_METHODS` (JSON
    files store keys sorted)."""
    order = {m: i for i, m in enumerate(dict.fromkeys((*TIMING_METHODS, *QUALITY_METHODS)))}
    return sorted(by_method.items(), key=lambda kv: order.get(kv[0], len(order)))


def _mean_sd(summary: dict, key: str) -> str:
    return f"{summary[key]['mean']:.3f} ± {summary[key]['sd']:.3f}" if key in summary else "-"


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def format_tables(result: dict) -> str:
    lines = []
    for device, block in result.get("timing", {}).items():
        lines.append(f"per-step time and peak memory ({device}; memory = growth of the peak above the footprint before the first step)")
        lines.append(f"{'network':<13}{'method':<7}{'median ms':>11}{'p90 ms':>10}{'peak MiB':>10}{'growth MiB':>12}{'finite':>8}")
        for network, n in block["networks"].items():
            key = n["ratios"]["memory_figure"]
            for method, r in _ordered(n["methods"]):
                peak = r.get("cuda_peak_allocated_mib", r["peak_rss_mib"])
                lines.append(f"{network:<13}{method:<7}{r['median_ms']:>11.3f}{r['p90_ms']:>10.3f}{_fmt(peak, '.1f'):>10}"
                             f"{_fmt(r.get(key), '.1f'):>12}{r['parameters_finite_after']!s:>8}")
            ra = n["ratios"]
            lines.append(f"{'':<13}time l2rw/bads {_fmt(ra['time_l2rw_over_bads'], '.2f')}, mwn/bads {_fmt(ra['time_mwn_over_bads'], '.2f')}, "
                         f"bads/sgd {_fmt(ra['time_bads_over_sgd'], '.2f')}; memory bads/l2rw {_fmt(ra['memory_bads_over_l2rw'], '.2f')}, "
                         f"bads/mwn {_fmt(ra['memory_bads_over_mwn'], '.2f')}")
            for name, t in n["targets"].items():
                lines.append(f"{'':<13}target {name} {t['target']}: {_fmt(t['value'], '.2f')} {'pass' if t['pass'] else 'FAIL'}")
        lines.append("")
    for name, p in result.get("quality", {}).get("problems", {}).items():
        for budget in BUDGETS:
            lines.append(f"{name}, {budget} (mean ± sd over seeds {','.join(map(str, p['seeds']))})")
            lines.append(f"{'method':<9}{'steps':>8}{'wall s':>9}{'test accuracy':>18}{'balanced acc':>18}{'selection AUROC':>18}")
            for method, s in _ordered(p["summary"][budget]):
                acc, bal, auroc = (_mean_sd(s, k) for k in ("test_accuracy", "balanced_accuracy", "selection_auroc"))
                lines.append(f"{method:<9}{s['steps']['mean']:>8.0f}{s['wall_seconds']['mean']:>9.1f}{acc:>18}{bal:>18}{auroc:>18}")
            lines.append("")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """Per-step time and peak-memory growth bars (network x method, per device) and test accuracy
    against wall-clock seconds for every quality problem."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timing = [(d, b) for d, b in result.get("timing", {}).items() if b.get("networks")]
    problems = list(result.get("quality", {}).get("problems", {}).items())
    rows = len(timing) + (1 if problems else 0)
    if rows == 0:
        return
    cols = max(2, len(problems))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    colors = {"sgd": "tab:gray", "mixing": "tab:gray", "bads": "tab:blue", "l2rw": "tab:orange", "mwn": "tab:green"}
    for row, (device, block) in enumerate(timing):
        networks = list(block["networks"])
        methods = [m for m, _ in _ordered({m: {} for n in block["networks"].values() for m in n["methods"]})]
        width = 0.8 / max(1, len(methods))
        for col, (label, figure) in enumerate((("median ms per step", "time"), ("peak memory growth, MiB", "memory"))):
            ax = axes[row][col]
            positive = False
            for k, method in enumerate(methods):
                vals = []
                for n in networks:
                    r = block["networks"][n]["methods"].get(method)
                    key = block["networks"][n]["ratios"]["memory_figure"]
                    v = None if r is None else (r["median_ms"] if figure == "time" else r.get(key))
                    vals.append(v if v is not None and v > 0 else math.nan)  # a log axis shows no zeros
                    positive = positive or not math.isnan(vals[-1])
                ax.bar([i + (k - (len(methods) - 1) / 2) * width for i in range(len(networks))], vals, width,
                       label=method, color=colors.get(method))
            ax.set_xticks(range(len(networks)), networks)
            if positive:
                ax.set_yscale("log")
            ax.set_ylabel(label)
            ax.set_title(f"{'per-step time' if figure == 'time' else 'peak memory growth'} ({device})")
            ax.grid(alpha=0.3, axis="y")
            ax.legend(fontsize=7)
        for col in range(2, cols):
            axes[row][col].axis("off")
    if problems:
        row = len(timing)
        for col, (name, p) in enumerate(problems):
            ax = axes[row][col]
            for method in p["methods"]:
                pts = [(p["summary"][b][method]["wall_seconds"]["mean"], p["summary"][b][method]["test_accuracy"]["mean"],
                        p["summary"][b][method]["test_accuracy"]["sd"]) for b in BUDGETS if method in p["summary"][b]]
                ax.errorbar([x for x, _, _ in pts], [y for _, y, _ in pts], yerr=[s for _, _, s in pts], capsize=3,
                            label=method, color=colors.get(method))
                for (x, y, _), marker in zip(pts, ("o", "s")):
                    ax.plot([x], [y], marker=marker, color=colors.get(method))
            ax.set_xscale("log")
            ax.set_xlabel("mean wall-clock seconds (o: equal steps, s: equal wall)")
            ax.set_ylabel("test accuracy")
            ax.set_title(name, fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        for col in range(len(problems), cols):
            axes[row][col].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _csv(text: str) -> list[str]:
    return [s for s in text.split(",") if s]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="timing,quality", help="comma list of timing, quality")
    ap.add_argument("--networks", default=",".join(NETWORKS), help="timing networks: " + ", ".join(NETWORKS))
    ap.add_argument("--timing-methods", default=",".join(TIMING_METHODS), help="timing methods: " + ", ".join(TIMING_METHODS))
    ap.add_argument("--device", default="cpu", help="timing device: cpu or cuda (quality always runs on the CPU)")
    ap.add_argument("--timing-steps", type=int, default=200, help="timed steps per worker (>= 200 for reported numbers)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps before them")
    ap.add_argument("--repeats", type=int, default=1, help="workers per (network, method), methods interleaved")
    ap.add_argument("--resnet-widths", default="16,32,64")
    ap.add_argument("--resnet-blocks", type=int, default=1, help="blocks per stage (1: ResNet-8)")
    ap.add_argument("--problems", default=",".join(QUALITY_PROBLEMS))
    ap.add_argument("--methods", default=",".join(QUALITY_METHODS), help="quality methods (bads required)")
    ap.add_argument("--steps", type=int, default=5000, help="steps of every method at equal steps")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/blo_vs_bads.json"))
    ap.add_argument("--in-process", action="store_true", help="time in this process (tests only: memory not isolated)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.parts = _csv(args.parts)
    args.networks = _csv(args.networks)
    args.timing_methods = _csv(args.timing_methods)
    args.problems = _csv(args.problems)
    args.methods = _csv(args.methods)
    args.seeds = [int(s) for s in _csv(args.seeds)]
    args.resnet_widths = tuple(int(s) for s in _csv(args.resnet_widths))
    for part in args.parts:
        if part not in ("timing", "quality"):
            ap.error(f"unknown part {part!r}")
    for n in args.networks:
        if n not in NETWORKS:
            ap.error(f"unknown network {n!r}")
    for m in args.timing_methods:
        if m not in TIMING_METHODS:
            ap.error(f"unknown timing method {m!r}")
    if args.timing_steps < 1 or args.warmup < 0 or args.repeats < 1 or args.steps < 1:
        ap.error("--timing-steps, --repeats and --steps must be >= 1, --warmup >= 0")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda but CUDA is not available")
    return args


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args.networks[0], args.timing_methods[0], args.device, args.warmup, args.timing_steps,
                                    resnet_widths=args.resnet_widths, resnet_blocks=args.resnet_blocks)), flush=True)
        return None
    if "timing" in args.parts and args.timing_steps < 200:
        print(f"note: --timing-steps {args.timing_steps} < 200: fine for a check, too few for reported numbers", flush=True)
    timing = quality = None
    if "timing" in args.parts:
        print(f"timing on {args.device}: {args.warmup} warm-up + {args.timing_steps} timed steps per worker", flush=True)
        timing = run_timing(args)
    if "quality" in args.parts:
        print(f"quality: {args.steps} steps, seeds {args.seeds}", flush=True)
        quality = run_quality(args)
    old = json.loads(args.out.read_text()) if args.out.is_file() else None
    result = merge_results(old, timing, quality, args.device)
    print(format_tables(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    plot(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return result


if __name__ == "__main__":
    main()
