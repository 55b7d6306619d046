"""``pyrodps report DIR``: one self-contained HTML page for a run folder.

Reads ``DIR/metrics.json`` (required), ``config.json``, ``weights.npz`` and ``posterior.nc`` (each
optional: a baseline has no posterior) and, with ``compare_dir``, ``CMPDIR/comparison.json`` and
its figures. Writes ``DIR/report.html`` and, when there is a posterior, ``DIR/convergence.json``
(the function-space verdict, the parameter-space statistics and the pooled table of
:mod:`pyrodps.diagnostics.verdict`, recomputed from the folder's files: the same as ``pyrodps run``
wrote) atomically. The page leads with the function-space verdict (see
:mod:`pyrodps.diagnostics.convergence_page`), then the metrics, the configuration and the figures.
It needs no network: its only style is an inline ``<style>`` block, it has no script, and every
figure is a base64 PNG in a ``data:`` URI. Every metric is printed from ``metrics.json`` with its
exact value in a ``data-value`` attribute (JSON), so a test can check the page against the file.
A run on a mixture adds a "Sources" section from ``sources.json`` and ``sources.png``
(:func:`pyrodps.diagnostics.sources.sources_html`).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from pyrodps.diagnostics import posterior_plots as pp
from pyrodps.diagnostics.arviz_adapter import group, group_names, read_netcdf
from pyrodps.diagnostics.convergence import ConvergenceReport, ConvergenceThresholds
from pyrodps.diagnostics.convergence_page import convergence_sections
from pyrodps.diagnostics.page_parts import (  # noqa: F401  (flatten, format_value: part of this module's API)
    STYLE,
    cell,
    figure_html,
    flatten,
    format_value,
    key_value_table,
    png_html,
    table,
)
from pyrodps.diagnostics.run_verdict import assess_run_files
from pyrodps.diagnostics.sources import sources_html
from pyrodps.diagnostics.suspects import COLUMNS as SUSPECT_COLUMNS
from pyrodps.diagnostics.suspects import suspect_rows, write_suspects_csv
from pyrodps.diagnostics.verdict import SplitConvergenceReport
from pyrodps.errors import ValidationError, check_positive_int
from pyrodps.io import atomic_write_bytes, read_json, read_npz, write_json

TRACE_SCALARS = ("train_nll", "meta_nll", "param_norm", "test_accuracy", "test_rmse", "theta_projection")
COMPARE_COLUMNS = ("test_accuracy", "balanced_accuracy", "selection_auroc", "selection_average_precision",
                   "kept_fraction", "wall_seconds")


def _weight_groups(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    if "corrupted" in weights and weights["corrupted"].any():
        out["corrupted"], out["clean"] = weights["corrupted"], ~weights["corrupted"]
    if "minority" in weights and weights["minority"].any():
        out["minority"], out["majority"] = weights["minority"], ~weights["minority"]
    return out


def posterior_figures(data: object, report: ConvergenceReport) -> list[str]:
    post = group(data, "posterior")
    stats = group(data, "sample_stats") if "sample_stats" in group_names(data) else xr.Dataset()
    labels = [q.name for q in report.quantities if q.name.split("[")[0] in TRACE_SCALARS]
    figs = []
    trace_ds = post.copy()
    if "energy" in stats:
        trace_ds["energy"] = stats["energy"]
        labels.append("energy")
    if labels:
        figs.append(figure_html(pp.plot_trace_rank(trace_ds, labels), "Traces and rank plots of the θ summaries"))
    w = report.weights
    if w is not None and w.points.size:
        worst = np.argsort(np.where(np.isfinite(w.rhat), w.rhat, np.inf))[::-1][:4]
        wl = [f"w[{w.points[i]}]" for i in worst]
        figs.append(figure_html(pp.plot_trace_rank(post, wl), "Traces and rank plots of the 4 tracked weights with the largest R-hat"))
        figs.append(figure_html(pp.plot_weight_convergence(w.rhat, w.ess_bulk, report.thresholds.max_rhat, report.min_ess_bulk),
                                "Per-point R-hat and bulk ESS of the tracked weights (dashed: thresholds)"))
    labels = {"test_accuracy": "test accuracy", "test_nll_per_token": "test NLL per token", "test_rmse": "test RMSE"}
    score = next((k for k in labels if k in post), "test_rmse")
    if score in post and "step" in stats:
        label = labels[score]
        figs.append(figure_html(pp.plot_accuracy_by_chain(stats["step"].values, post[score].values, label),
                                f"{label[0].upper()}{label[1:]} of each kept draw against its step"))
    names = group_names(data)
    if "warmup_posterior" in names and "warmup_sample_stats" in names and "step" in stats:
        warm, warm_stats = group(data, "warmup_posterior"), group(data, "warmup_sample_stats")
        kept = {n: post[n].values for n in ("train_nll", "meta_nll") if n in post and n in warm}
        burn_in = int(post.attrs.get("burn_in", 0))
        figs.append(figure_html(pp.plot_burn_in(warm_stats["step"].values, {n: warm[n].values for n in kept},
                                                stats["step"].values, kept, burn_in),
                                f"Train and meta NLL over the whole run; burn-in ended at step {burn_in} "
                                "(thin lines: burn-in, not kept)"))
    return figs


def weight_figures(weights: dict[str, np.ndarray]) -> list[str]:
    groups = _weight_groups(weights)
    figs = [figure_html(pp.plot_weights_by_group(weights["mean"], groups), "Posterior-mean weights by ground-truth group")]
    if "loss" in weights:
        figs.append(figure_html(pp.plot_weight_vs_loss(weights["mean"], weights["loss"], groups),
                                "Posterior-mean weight against training loss"))
    if "std" in weights:
        figs.append(figure_html(pp.plot_ranked_weights(weights["mean"], weights["std"], groups),
                                "Training points ranked by posterior-mean weight, ±1 posterior sd"))
    return figs


def suspects_html(rows: list[dict], top: int) -> str:
    """The ``top`` least-trusted training points as a table (all of them are in ``suspects.csv``)."""
    shown = rows[:top]
    header = [c for c in SUSPECT_COLUMNS if shown and c in shown[0]]
    body = [[cell(r[c], f"suspect.{r['index']}.{c}") for c in header] for r in shown]
    return (f"<p>The {len(shown)} training points with the lowest posterior-mean weight, of {len(rows)}; every "
            "point is in <code>suspects.csv</code>, ordered the same way.</p>" + table(header, body, table_id="suspects"))


def compare_html(compare_dir: Path) -> str:
    result = read_json(compare_dir / "comparison.json", "compare")
    summary = result.get("summary", {})
    cols = [c for c in COMPARE_COLUMNS if any(c in s for s in summary.values())]
    rows = []
    for method, s in summary.items():
        cells = [f"<th>{html.escape(method)}</th>"]
        for c in cols:
            v = s.get(c)
            text = "-" if v is None else f"{format_value(v['mean'])} ± {format_value(v['sd'])} (n={v['n']})"
            attrs = "" if v is None else f' data-key="{html.escape(method + "." + c)}" data-value="{html.escape(json.dumps(v))}"'
            cells.append(f'<td class="num"{attrs}>{html.escape(text)}</td>')
        rows.append(cells)
    parts = [(f"<p>From {html.escape(str(compare_dir))}: scenario {html.escape(str(result.get('scenario', '?')))}, "
             f"seeds {html.escape(str(result.get('seeds', '?')))}.</p>"),
             table(["method", *cols], rows, table_id="comparison")]
    if summary:
        parts.append(figure_html(pp.plot_comparison(summary), "Methods compared (mean ± sd over seeds)"))
    for name in ("accuracy_vs_steps.png", "weights_by_group.png"):
        if (compare_dir / name).is_file():
            parts.append(png_html((compare_dir / name).read_bytes(), f"{name} of the comparison"))
    return "\n".join(parts)


def _read_posterior(path: Path) -> object:
    """``posterior.nc``, or a :class:`ValidationError` naming it when it is truncated or corrupt."""
    try:
        return read_netcdf(path)
    except ValidationError:
        raise
    except Exception as e:  # noqa: BLE001 - netCDF/HDF5 report a damaged file in many ways
        raise ValidationError("dir", f"{path} is corrupt or unreadable ({type(e).__name__}: {str(e)[:200]})") from None


@dataclass
class ReportResult:
    """Where the page went, and the convergence verdict (``None`` without posterior draws)."""

    path: Path
    convergence: SplitConvergenceReport | None


def write_report(run_dir: str | Path, compare_dir: str | Path | None = None,
                 thresholds: ConvergenceThresholds | None = None, suspects: int = 20) -> ReportResult:
    """Write ``run_dir/report.html`` (and ``convergence.json`` when there is a posterior, and
    ``suspects.csv``, every training point from the least trusted, when the run has weights; the page
    shows the first ``suspects`` of them). Inputs are checked before anything is written."""
    run_dir = Path(run_dir)
    thresholds = (thresholds or ConvergenceThresholds()).validate()
    check_positive_int("suspects", suspects, minimum=0)
    if not run_dir.is_dir():
        raise ValidationError("dir", f"{run_dir} is not a folder")
    metrics = read_json(run_dir / "metrics.json", "dir")
    config = read_json(run_dir / "config.json", "dir") if (run_dir / "config.json").is_file() else {}
    if compare_dir is not None:
        compare_dir = Path(compare_dir)
        read_json(compare_dir / "comparison.json", "compare")
    weights = read_npz(run_dir / "weights.npz", "dir") if (run_dir / "weights.npz").is_file() else None
    posterior = _read_posterior(run_dir / "posterior.nc") if (run_dir / "posterior.nc").is_file() else None
    report = assess_run_files(posterior, weights, metrics, thresholds) if posterior is not None else None

    title = (f"pyrodps report: {metrics.get('method', '?')} on {metrics.get('scenario', '?')}, "
             f"seed {metrics.get('seed', '?')}")
    body = [f"<h1>{html.escape(title)}</h1>"]
    if report is None:
        body += ["<h2>Convergence</h2>",
                 ('<p id="verdict" class="verdict" data-passed="none">No posterior draws in this folder '
                  "(posterior.nc is written by the BADS methods): no convergence diagnostics.</p>")]
    else:
        w = weights or {}
        body += convergence_sections(report, w.get("chain_mean"), w.get("corrupted"))
    rows = suspect_rows(weights) if weights else []
    if rows and suspects:
        body += ["<h2>Least-trusted training points</h2>", suspects_html(rows, suspects)]
    body += sources_html(run_dir)  # a mixture (sources.json): per-source weights and their trace
    body += ["<h2>Metrics</h2>", key_value_table(metrics, "metrics")]
    body += ["<h2>Configuration</h2>", key_value_table(config, "config") if config else "<p>No config.json.</p>"]
    figures = ((posterior_figures(posterior, report.table) if report is not None and report.table is not None else [])
               + (weight_figures(weights) if weights else []))
    if figures:
        body += ["<h2>Figures</h2>", *figures]
    if compare_dir is not None:
        body += ["<h2>Comparison</h2>", compare_html(compare_dir)]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")
    out = run_dir / "report.html"
    if report is not None:
        write_json(run_dir / "convergence.json", report.to_dict())
    if rows:
        write_suspects_csv(run_dir / "suspects.csv", rows)
    atomic_write_bytes(out, page.encode("utf-8"))
    return ReportResult(out, report)
