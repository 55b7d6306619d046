"""``pyrodps report DIR``: one self-contained HTML page for a run folder.

Reads ``DIR/metrics.json`` (required), ``config.json``, ``weights.npz`` and ``posterior.nc`` (each
optional: a baseline has no posterior) and, with ``compare_dir``, ``CMPDIR/comparison.json`` and
its figures. Writes ``DIR/report.html`` and ``DIR/convergence.json`` atomically. The page needs no
network: its only style is an inline ``<style>`` block, it has no script, and every figure is a
base64 PNG in a ``data:`` URI. Every metric is printed from ``metrics.json`` with its exact value
in a ``data-value`` attribute (JSON), so a test can check the page against the file.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from pyrodps.diagnostics import posterior_plots as pp
from pyrodps.diagnostics.arviz_adapter import group, group_names, read_netcdf
from pyrodps.diagnostics.convergence import ConvergenceReport, ConvergenceThresholds, diagnose
from pyrodps.errors import ValidationError
from pyrodps.io import atomic_write_bytes, write_json

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.fail td { background: #fde8e8; }
.verdict { padding: .7em 1em; border-radius: 4px; font-weight: 600; }
.pass { background: #e6f4e6; border: 1px solid #7c7; } .fail { background: #fde8e8; border: 1px solid #d77; }
figure { margin: 1em 0; } figcaption { font-size: .85em; color: #555; } img { max-width: 100%; }
"""
TRACE_SCALARS = ("train_nll", "meta_nll", "param_norm", "test_accuracy", "theta_projection")
COMPARE_COLUMNS = ("test_accuracy", "balanced_accuracy", "selection_auroc", "selection_average_precision",
                   "kept_fraction", "wall_seconds")


def format_value(value: object) -> str:
    """How the page prints a metric: floats to 6 significant digits, ``-`` for ``None``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def flatten(d: dict, prefix: str = "") -> dict[str, object]:
    """Nested dicts as dotted keys (``machine.python``); lists stay values."""
    out: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def figure_html(fig: Figure, caption: str, dpi: int = 80) -> str:
    """``<figure>`` with the figure as a base64 PNG ``data:`` URI (closes the figure)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return png_html(buf.getvalue(), caption)


def png_html(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = html.escape(caption)
    return f'<figure><img alt="{cap}" src="data:image/png;base64,{data}"><figcaption>{cap}</figcaption></figure>'


def _table(header: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, cells in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cell(value: object, key: str | None = None) -> str:
    """A ``<td>``; with ``key`` it carries ``data-key`` and the exact JSON value in ``data-value``."""
    cls = ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    attrs = ""
    if key is not None:
        attrs = f' data-key="{html.escape(key)}" data-value="{html.escape(json.dumps(value))}"'
    return f"<td{cls}{attrs}>{html.escape(format_value(value))}</td>"


def key_value_table(d: dict, table_id: str) -> str:
    rows = [[f"<th>{html.escape(k)}</th>", _cell(v, k)] for k, v in flatten(d).items()]
    return _table(["name", "value"], rows).replace("<table>", f'<table id="{table_id}">', 1)


def convergence_html(report: ConvergenceReport) -> str:
    cls = "pass" if report.passed else "fail"
    parts = [(f'<p id="verdict" class="verdict {cls}" data-passed="{str(report.passed).lower()}">'
             f"{html.escape(report.verdict())}</p>")]
    if report.failures():
        items = "".join(f"<li>{html.escape(f)}</li>" for f in report.failures())
        parts.append(f"<p>Failed checks:</p><ul>{items}</ul>")
    header = ["quantity", "mean", "sd", "MCSE(mean)", "MCSE(sd)", "ESS bulk", "ESS tail", "R-hat", "passes"]
    rows = [[f"<th>{html.escape(q.name)}</th>", _cell(q.mean), _cell(q.sd), _cell(q.mcse_mean), _cell(q.mcse_sd),
             _cell(q.ess_bulk), _cell(q.ess_tail), _cell(q.rhat), _cell("yes" if q.passed else "no")]
            for q in report.quantities]
    classes = ["" if q.passed else "fail" for q in report.quantities]
    parts.append(_table(header, rows, classes).replace("<table>", '<table id="convergence">', 1))
    if report.weights is not None:
        s = report.weights.summary()
        parts.append(f"<p>Weight table: {s['num_tracked']} tracked points; per point R-hat and bulk ESS as above.</p>")
        rows = [[f"<th>{html.escape(k)}</th>", _cell(v)] for k, v in s.items()]
        parts.append(_table(["weight table", "value"], rows, None if report.weights.passed else ["fail"] * len(rows))
                     .replace("<table>", '<table id="weight-convergence">', 1))
    parts.append(f"<p>{report.chains} chain(s) × {report.draws} draws after burn-in and thinning. R-hat: "
                 "rank-normalised split R-hat; ESS: bulk and tail (Vehtari et al. 2021), computed by ArviZ. "
                 "The parameter norm and the fixed random projections of θ measure mixing in parameter space: "
                 "a network's posterior has many equivalent modes, and chains started from different "
                 "initialisations rarely meet there, so these can fail while the losses, the accuracy and the "
                 "weights (functions of θ) mix.</p>")
    return "\n".join(parts)


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
    if "test_accuracy" in post and "step" in stats:
        figs.append(figure_html(pp.plot_accuracy_by_chain(stats["step"].values, post["test_accuracy"].values),
                                "Test accuracy of each kept draw against its step"))
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


def compare_html(compare_dir: Path) -> str:
    result = _read_json(compare_dir / "comparison.json", "compare")
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
             _table(["method", *cols], rows).replace("<table>", '<table id="comparison">', 1)]
    if summary:
        parts.append(figure_html(pp.plot_comparison(summary), "Methods compared (mean ± sd over seeds)"))
    for name in ("accuracy_vs_steps.png", "weights_by_group.png"):
        if (compare_dir / name).is_file():
            parts.append(png_html((compare_dir / name).read_bytes(), f"{name} of the comparison"))
    return "\n".join(parts)


def _read_json(path: Path, argument: str) -> dict:
    if not path.is_file():
        raise ValidationError(argument, f"{path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValidationError(argument, f"{path} is not valid JSON: {e}") from None


@dataclass
class ReportResult:
    """Where the page went, and the convergence verdict (``None`` without posterior draws)."""

    path: Path
    convergence: ConvergenceReport | None


def write_report(run_dir: str | Path, compare_dir: str | Path | None = None,
                 thresholds: ConvergenceThresholds | None = None) -> ReportResult:
    """Write ``run_dir/report.html`` (and ``convergence.json`` when there is a posterior). Inputs
    are checked before anything is written."""
    run_dir = Path(run_dir)
    thresholds = (thresholds or ConvergenceThresholds()).validate()
    if not run_dir.is_dir():
        raise ValidationError("dir", f"{run_dir} is not a folder")
    metrics = _read_json(run_dir / "metrics.json", "dir")
    config = _read_json(run_dir / "config.json", "dir") if (run_dir / "config.json").is_file() else {}
    if compare_dir is not None:
        compare_dir = Path(compare_dir)
        _read_json(compare_dir / "comparison.json", "compare")
    weights = None
    if (run_dir / "weights.npz").is_file():
        with np.load(run_dir / "weights.npz") as f:
            weights = {k: f[k] for k in f.files}
    posterior = read_netcdf(run_dir / "posterior.nc") if (run_dir / "posterior.nc").is_file() else None
    report = diagnose(posterior, thresholds) if posterior is not None else None

    title = (f"pyrodps report: {metrics.get('method', '?')} on {metrics.get('scenario', '?')}, "
             f"seed {metrics.get('seed', '?')}")
    body = [f"<h1>{html.escape(title)}</h1>", "<h2>Convergence</h2>"]
    if report is None:
        body.append('<p id="verdict" class="verdict" data-passed="none">No posterior draws in this folder '
                    "(posterior.nc is written by the BADS methods): no convergence diagnostics.</p>")
    else:
        body.append(convergence_html(report))
    body += ["<h2>Metrics</h2>", key_value_table(metrics, "metrics")]
    body += ["<h2>Configuration</h2>", key_value_table(config, "config") if config else "<p>No config.json.</p>"]
    figures = (posterior_figures(posterior, report) if report is not None else []) + (weight_figures(weights) if weights else [])
    if figures:
        body += ["<h2>Figures</h2>", *figures]
    if compare_dir is not None:
        body += ["<h2>Comparison</h2>", compare_html(compare_dir)]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")
    out = run_dir / "report.html"
    if report is not None:
        write_json(run_dir / "convergence.json", report.to_dict())
    atomic_write_bytes(out, page.encode("utf-8"))
    return ReportResult(out, report)
