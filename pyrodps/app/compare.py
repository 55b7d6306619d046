"""``pyrodps compare``: several methods over several seeds on one scenario (or one set of ``.npz`` files).

Writes ``DIR/comparison.json`` (per method and seed: test accuracy and balanced accuracy, or test RMSE
and MAE for regression; selection
AUROC and average precision where ground truth exists, mean weight per group, wall time; and the
mean and sd over seeds per method) and the figures ``DIR/accuracy_vs_steps.png`` and
``DIR/weights_by_group.png``. BADS methods run first in each seed, so that ``random-select`` keeps
the fraction of points the first of them keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pyrodps.app.methods import BADS_METHODS, METHODS, run_method
from pyrodps.bads import BADSConfig
from pyrodps.diagnostics.plots import plot_accuracy_vs_steps, plot_weight_groups
from pyrodps.errors import ValidationError, check_choice
from pyrodps.io import write_json
from pyrodps.models.problem import SelectionProblem

SUMMARY_METRICS = ("test_accuracy", "balanced_accuracy", "test_rmse", "test_mae", "test_nll_per_token",
                   "test_perplexity", "selection_auroc",
                   "selection_average_precision", "wall_seconds")


def check_methods(methods: list[str]) -> list[str]:
    if not methods:
        raise ValidationError("methods", "give at least one method")
    for m in methods:
        check_choice("methods", m, METHODS)
    if len(set(methods)) != len(methods):
        raise ValidationError("methods", "a method is listed twice")
    return sorted(methods, key=lambda m: m not in BADS_METHODS)


def summarize_runs(runs: list[dict]) -> dict:
    """Mean and sample sd over seeds of every numeric metric, per method."""
    summary: dict[str, dict] = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        rows = [r for r in runs if r["method"] == method]
        keys = [k for k in rows[0] if k in SUMMARY_METRICS or k.startswith("mean_weight_") or k == "kept_fraction"]
        summary[method] = {}
        for k in keys:
            vals = [r[k] for r in rows if r.get(k) is not None]
            if vals:
                v = np.asarray(vals, dtype=np.float64)
                summary[method][k] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}
    return summary


def compare(
    make_problem: Callable[[int], SelectionProblem],
    methods: list[str],
    seeds: list[int],
    out: Path,
    *,
    steps: int | None = None,
    progress: bool = True,
    header: dict | None = None,
    config: dict | None = None,
    references: bool = True,
    previous: list[dict] | None = None,
) -> dict:
    """Run every method on the problem of every seed; write the JSON and the figures into ``out``.

    ``config``: :class:`~pyrodps.bads.BADSConfig` fields for the BADS methods (the command line's
    ``--step-size`` ...); its ``likelihood`` (and ``likelihood_kwargs``) reach every method.

    ``references`` adds the rows that say what there is to win (:func:`reference_methods`):
    ``mixing``; ``oracle`` when the problem marks corrupted points (then ``harm`` per seed, the
    oracle's score minus mixing's, and its summary, with ``harmless: true`` when the mean harm is
    below :data:`HARMLESS_BELOW`: removing the corrupted points does not help, so a weight near the
    prior is the right answer and the selection AUROC means little); ``class-balanced`` when it marks
    minority points.

    ``previous``: the runs of an earlier comparison of the same problems (``pyrodps compare --add``);
    a (method, seed) pair found there is kept, not run again, and its methods stay in the table.
    ``comparison.json`` is rewritten after every run (``"complete": false`` until the last), so an
    interrupted comparison keeps what it finished and ``--add`` with the same methods completes it."""
    previous = list(previous or [])
    done = {(r["method"], r["seed"]): r for r in previous}
    methods = check_methods(list(dict.fromkeys([*(r["method"] for r in previous), *methods])))
    first = make_problem(seeds[0])
    if references:
        methods = check_methods(list(dict.fromkeys([*methods, *reference_methods(first)])))
    config = dict(config or {})
    likelihood = {"likelihood": config.get("likelihood"), "likelihood_kwargs": config.get("likelihood_kwargs", {}),
                  "hidden": config.get("hidden")}
    base = BADSConfig.from_flags(**config)
    runs: list[dict] = []
    last_weights: dict[str, np.ndarray] = {}
    groups: dict[str, np.ndarray] = {}
    header = {**(header or {}), "methods": methods, "seeds": seeds, "references": references}
    for seed in seeds:
        problem = first if seed == seeds[0] else make_problem(seed)
        keep = 0.5
        for method in methods:
            if (method, seed) in done:
                runs.append(done.pop((method, seed)))
                if keep == 0.5 and method in BADS_METHODS and "kept_fraction" in runs[-1]:
                    keep = runs[-1]["kept_fraction"]
                continue
            res = run_method(problem, method, seed=seed, steps=steps, keep_fraction=keep, progress=progress,
                             bads_config=base, **likelihood)
            metrics = res.metrics(problem)
            metrics["accuracy_trace"] = res.accuracy_trace
            runs.append(metrics)
            if res.weight_mean is not None:
                if keep == 0.5 and method in BADS_METHODS and "kept_fraction" in metrics:
                    keep = metrics["kept_fraction"]
                last_weights[method] = res.weight_mean
            out.mkdir(parents=True, exist_ok=True)
            so_far = runs + list(done.values())  # kept runs of later seeds too: an interruption loses none
            write_json(out / "comparison.json", {**header, "complete": False, "runs": so_far,
                                                  "summary": summarize_runs(so_far)})
        groups = problem.groups()
    result = {**header, "complete": True, "runs": runs, "summary": summarize_runs(runs)}
    harm = corruption_harm(runs)
    if harm is not None:
        result["harm"] = harm
    out.mkdir(parents=True, exist_ok=True)
    name = (header or {}).get("scenario", "")
    traces = {m: [r["accuracy_trace"] for r in runs if r["method"] == m] for m in methods}
    score = "test accuracy" if any("test_accuracy" in r for r in runs) else \
        "test NLL per token" if any("test_nll_per_token" in r for r in runs) else "test RMSE"
    plot_accuracy_vs_steps(traces, out / "accuracy_vs_steps.png", title=f"{name}: {score} against steps", score=score)
    # the per-point weights of kept runs are not stored: an --add leaves the figure of the earlier
    # weighting methods alone rather than redraw it with the new ones only
    kept_weighting = any(k.startswith("mean_weight_") for r in previous for k in r)
    if last_weights and groups and not kept_weighting:
        plot_weight_groups(last_weights, groups, out / "weights_by_group.png", title=f"{name}, seed {seeds[-1]}")
    write_json(out / "comparison.json", result)
    return result


HARMLESS_BELOW = 0.01  # a corruption whose removal gains less than 1 point of accuracy is flagged harmless


def reference_methods(problem: SelectionProblem) -> list[str]:
    """The rows every comparison of ``problem`` carries: ``mixing``; ``oracle`` if some training points
    are marked corrupted; ``class-balanced`` if some are marked minority (classification)."""
    out = ["mixing"]
    if problem.corrupted is not None and np.asarray(problem.corrupted).any():
        out.append("oracle")
    if problem.minority is not None and np.asarray(problem.minority).any() and problem.num_classes is not None:
        out.append("class-balanced")
    return out


def corruption_harm(runs: list[dict]) -> dict | None:
    """What the corruption costs, per seed and over seeds: the oracle's score minus mixing's (test
    accuracy; for regression, mixing's RMSE minus the oracle's), ``None`` without both rows."""
    def score(run: dict) -> float:
        if "test_nll_per_token" in run:  # a language model: mixing's NLL per token minus the oracle's
            return -run["test_nll_per_token"]
        return run["test_accuracy"] if "test_accuracy" in run else -run["test_rmse"]

    by_seed: dict[int, dict[str, float]] = {}
    for r in runs:
        if r["method"] in ("oracle", "mixing"):
            by_seed.setdefault(r["seed"], {})[r["method"]] = score(r)
    per_seed = {s: v["oracle"] - v["mixing"] for s, v in by_seed.items() if len(v) == 2}
    if not per_seed:
        return None
    h = np.asarray(list(per_seed.values()), dtype=np.float64)
    mean = float(h.mean())
    return {"per_seed": {str(s): float(v) for s, v in per_seed.items()}, "mean": mean,
            "sd": float(h.std(ddof=1)) if h.size > 1 else 0.0, "harmless": bool(mean < HARMLESS_BELOW),
            "metric": "test_accuracy" if any("test_accuracy" in r for r in runs) else
            "-test_nll_per_token" if any("test_nll_per_token" in r for r in runs) else "-test_rmse"}


def format_summary(result: dict) -> str:
    """A table: one row per method, mean ± sd over seeds."""
    regression = any("test_rmse" in s for s in result["summary"].values())
    sequence = any("test_nll_per_token" in s for s in result["summary"].values())
    cols = ("test_rmse", "test_mae", "selection_auroc", "kept_fraction") if regression else \
        ("test_nll_per_token", "test_perplexity", "selection_auroc", "kept_fraction") if sequence else \
        ("test_accuracy", "balanced_accuracy", "selection_auroc", "kept_fraction")
    lines = [f"{'method':<16}" + "".join(f"{c:>22}" for c in cols)]
    for method, s in result["summary"].items():
        cells = [f"{s[c]['mean']:.4f} ± {s[c]['sd']:.4f}" if c in s else "-" for c in cols]
        lines.append(f"{method:<16}" + "".join(f"{c:>22}" for c in cells))
    harm = result.get("harm")
    if harm is not None:
        what = {"test_accuracy": "accuracy", "-test_nll_per_token": "NLL per token"}.get(harm["metric"], "RMSE")
        lines.append(f"harm of the corruption (oracle - mixing, {what}): {harm['mean']:+.4f} ± {harm['sd']:.4f}"
                     + ("  -> harmless: removing the corrupted points does not help; the AUROC means little"
                        if harm["harmless"] else ""))
    return "\n".join(lines)
