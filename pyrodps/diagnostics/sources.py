"""Per-source weight summaries of a run on a mixture (``SelectionProblem.weight_groups``): ``sources.json``,
the trace of every source's mean weight against steps (``source_trace.npz``, ``sources.png``) and the
report's section.

For a source ``g`` of ``N_g`` training points the quantity summarised is the **source mean weight**

    m_g = (1 / N_g) Σ_{i ∈ g} w_i.

Under a posterior ``m_g`` is a random variable like each ``w_i``; its uncertainty is *not* an average
of the per-point posterior sds (the weights of a source are correlated a posteriori through θ, and an
average of sds is no sd of an average). It comes from the draws: ``m_g(s)`` is computed at every draw
``s`` (:class:`~pyrodps.bads.source_trace.SourceTrace`: the recorded steps after burn-in, every
``thin``-th step, the driver's kept draws), and with ``C`` chains of ``S`` draws each, per source:

* ``mean_weight``: the posterior mean of ``m_g``, ``(1/CS) Σ_{c,s} m_g(c, s)``;
* ``sd``: its posterior sd, the sample sd (``ddof=1``) of the ``C·S`` pooled draws (between-chain
  differences included: the pooled draws are the posterior the run reports);
* ``mcse``: the Monte Carlo standard error of ``mean_weight``, ``sd / sqrt(ESS)`` (ArviZ ``mcse``,
  mean method; the ESS accounts for the autocorrelation of the draws): how far another run of the same
  length could put ``mean_weight``; two sources whose means differ by many ``mcse`` but less than an
  ``sd`` are told apart by the run, not by the posterior;
* ``chain_mean`` / ``chain_sd``: each chain's own mean and sd of ``m_g``; ``between_chain_sd``: the sd
  (``ddof=1``) of the chain means (``None`` with one chain); ``rhat``: ArviZ's rank-normalised split
  R-hat of ``m_g`` (``None`` with one chain);

and from the per-point posterior-mean weights ``w̄_i`` (``weights.npz["mean"]``), for every method:

* ``mean_of_point_weights``: ``(1/N_g) Σ_{i∈g} w̄_i``, metrics.json's ``mean_weight_group<g>``; for BADS
  it estimates the same number as ``mean_weight`` (an average over each point's visits instead of over
  the draws: they agree within Monte Carlo error); for a method without draws it *is* ``mean_weight``
  and the posterior fields are ``None``;
* ``point_sd``: the spread (sd, ``ddof=0``) of ``w̄_i`` over the source's points: how uniform the
  source is, not an uncertainty;
* ``flagged_fraction``: the fraction of the source's points with ``w̄_i`` below ``flag_threshold``,
  half the mean ``w̄`` of the whole training set (a flagged point counts for less than half an average
  point in the weighted likelihood; the rule is scale-free, so it means the same for every method:
  for cleanlab, exactly its flagged points);
* ``corrupted_fraction``: the fraction of the source's points the problem marks ``corrupted`` (ground
  truth; only when the problem has it).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from pyrodps.diagnostics.page_parts import cell, figure_png, head_cell, png_html, table
from pyrodps.errors import ValidationError
from pyrodps.io import atomic_write_bytes, read_json, write_json, write_npz

SOURCES_FILE = "sources.json"
TRACE_FILE = "source_trace.npz"
PLOT_FILE = "sources.png"
FLAG_FRACTION = 0.5  # flagged: w̄_i < FLAG_FRACTION × mean w̄ of the training set
TABLE_COLUMNS = ("size", "mean_weight", "sd", "mcse", "between_chain_sd", "rhat", "mean_of_point_weights",
                 "point_sd", "flagged_fraction", "corrupted_fraction", "chain_mean")
LINE_STYLES = ("-", "--", ":", "-.")


def _float(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _posterior(draws: np.ndarray) -> list[dict]:
    """Per source, the posterior fields from ``draws`` ``(chains, draws, G)`` of ``m_g``."""
    chains, num, groups = draws.shape
    pooled = draws.reshape(chains * num, groups)
    mcse = rhat = np.full(groups, np.nan)
    if num >= 4:  # ArviZ's ESS needs a few draws per chain
        import xarray as xr

        from pyrodps.diagnostics.arviz_adapter import convergence_statistics

        ds = xr.Dataset({"m": (("chain", "draw", "source"), draws)})
        stats = convergence_statistics(ds, statistics=("mcse_mean", "rhat") if chains >= 2 else ("mcse_mean",))
        mcse = np.asarray(stats["mcse_mean"]["m"].values, dtype=np.float64)
        if chains >= 2:
            rhat = np.asarray(stats["rhat"]["m"].values, dtype=np.float64)
    chain_mean = draws.mean(axis=1)
    out = []
    for g in range(groups):
        out.append({
            "mean_weight": float(pooled[:, g].mean()),
            "sd": _float(pooled[:, g].std(ddof=1)) if pooled.shape[0] >= 2 else None,
            "mcse": _float(mcse[g]),
            "chain_mean": [float(v) for v in chain_mean[:, g]],
            "chain_sd": [_float(draws[c, :, g].std(ddof=1)) if num >= 2 else None for c in range(chains)],
            "between_chain_sd": _float(chain_mean[:, g].std(ddof=1)) if chains >= 2 else None,
            "rhat": _float(rhat[g]),
        })
    return out


def source_summary(groups: np.ndarray, weight_mean: np.ndarray, *, corrupted: np.ndarray | None = None,
                   trace: dict[str, np.ndarray] | None = None, method: str | None = None) -> dict:
    """What ``sources.json`` holds (fields: the module docstring). ``groups``: the source of every training
    point; ``weight_mean``: every point's posterior-mean weight (or the method's weight); ``trace``:
    :meth:`~pyrodps.bads.source_trace.SourceTrace.arrays` of the run (``None``: a method without
    draws, whose posterior fields are ``None``)."""
    groups, weight_mean = np.asarray(groups), np.asarray(weight_mean, dtype=np.float64)
    if groups.ndim != 1 or not np.issubdtype(groups.dtype, np.integer) or groups.size == 0:
        raise ValidationError("groups", f"must be integers, one per training point, got {groups.dtype} {groups.shape}")
    if weight_mean.shape != groups.shape:
        raise ValidationError("weight_mean", f"has shape {weight_mean.shape}, groups {groups.shape}")
    if corrupted is not None and np.asarray(corrupted).shape != groups.shape:
        raise ValidationError("corrupted", f"has shape {np.asarray(corrupted).shape}, groups {groups.shape}")
    sources = np.unique(groups)
    threshold = FLAG_FRACTION * float(weight_mean.mean())
    posterior: list[dict] | None = None
    summary: dict = {"method": method, "num_points": int(groups.size), "flag_threshold": threshold,
                     "uncertainty": "none: the method has no posterior draws"}
    if trace is not None:
        if not np.array_equal(np.asarray(trace["sources"]), sources):
            raise ValidationError("trace", f"holds sources {list(trace['sources'])}, the groups {list(sources)}")
        steps, burn_in = np.asarray(trace["steps"]), int(trace["burn_in"])
        draws = np.asarray(trace["means"], dtype=np.float64)[:, steps >= burn_in, :]
        if draws.shape[0] and draws.shape[1]:
            posterior = _posterior(draws)
            summary.update({"uncertainty": "posterior draws of the source mean weight", "chains": int(draws.shape[0]),
                            "draws_per_chain": int(draws.shape[1]), "burn_in": burn_in,
                            "record_every": int(trace["record_every"])})
    rows = []
    for k, g in enumerate(sources):
        mask = groups == g
        w = weight_mean[mask]
        row = {"source": int(g), "size": int(mask.sum())}
        row.update(posterior[k] if posterior is not None else {
            "mean_weight": float(w.mean()), "sd": None, "mcse": None, "chain_mean": None, "chain_sd": None,
            "between_chain_sd": None, "rhat": None})
        row.update({"mean_of_point_weights": float(w.mean()), "point_sd": float(w.std()),
                    "flagged_fraction": float((w < threshold).mean())})
        if corrupted is not None:
            row["corrupted_fraction"] = float(np.asarray(corrupted, dtype=bool)[mask].mean())
        rows.append(row)
    summary["sources"] = rows
    summary["ranking"] = [r["source"] for r in sorted(rows, key=lambda r: (-r["mean_weight"], r["source"]))]
    return summary


def plot_source_trace(trace: dict[str, np.ndarray], summary: dict | None = None) -> Figure:
    """Every source's mean weight against the step: one colour per source, one line style per chain, the
    burn-in shaded; with ``summary`` the legend gives each source's size and posterior mean ± sd."""
    steps, means = np.asarray(trace["steps"]), np.asarray(trace["means"])
    sources, sizes, burn_in = np.asarray(trace["sources"]), np.asarray(trace["sizes"]), int(trace["burn_in"])
    rows = {r["source"]: r for r in (summary or {}).get("sources", [])}
    fig, ax = plt.subplots(figsize=(9.0, 4.2))
    colours = plt.get_cmap("tab10")
    chains = means.shape[0]
    for k, g in enumerate(sources):
        r = rows.get(int(g))
        label = f"source {int(g)} (n={int(sizes[k])})"
        if r is not None and r.get("sd") is not None:
            label += f"\n{r['mean_weight']:.3f} ± {r['sd']:.3f}"
        for c in range(chains):
            ax.plot(steps, means[c, :, k], color=colours(k % 10), ls=LINE_STYLES[c % len(LINE_STYLES)], lw=1.3,
                    alpha=0.9, label=label if c == 0 else None)
    if steps.size and burn_in > steps[0]:
        ax.axvspan(steps[0], burn_in, color="0.9", zorder=0)
        ax.axvline(burn_in, color="0.4", lw=0.9, ls="--")
        ax.text(0.5 * (steps[0] + burn_in), 0.97, "burn-in", transform=ax.get_xaxis_transform(), fontsize=8,
                color="0.35", ha="center", va="top")
    handles, labels = ax.get_legend_handles_labels()
    if chains > 1:
        for c in range(chains):
            handles.append(plt.Line2D([], [], color="k", ls=LINE_STYLES[c % len(LINE_STYLES)], lw=1.2))
            labels.append(f"chain {c}")
    title = "posterior mean ± sd\nafter burn-in" if rows else None
    ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title=title,
              title_fontsize=8, frameon=False, labelspacing=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("mean weight of the source")
    ax.set_title("Mean weight of each source against the step", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def write_source_files(out: str | Path, groups: np.ndarray, weight_mean: np.ndarray, *,
                       corrupted: np.ndarray | None = None, trace: dict[str, np.ndarray] | None = None,
                       method: str | None = None) -> dict:
    """Write ``out/sources.json`` and, with a ``trace``, ``out/source_trace.npz`` and ``out/sources.png``
    (each atomically); returns the summary."""
    out = Path(out)
    summary = source_summary(groups, weight_mean, corrupted=corrupted, trace=trace, method=method)
    if trace is not None:
        write_npz(out / TRACE_FILE, **trace)
        atomic_write_bytes(out / PLOT_FILE, figure_png(plot_source_trace(trace, summary), dpi=110))
    write_json(out / SOURCES_FILE, summary)
    return summary


def _cell(value: object, key: str) -> str:
    """:func:`~pyrodps.diagnostics.page_parts.cell`, a list (one value per chain) printed to 4 digits."""
    if not isinstance(value, list):
        return cell(value, key)
    text = ", ".join("-" if v is None else f"{v:.4g}" for v in value)
    return f'<td class="num" data-key="{html.escape(key)}" data-value="{html.escape(json.dumps(value))}">{html.escape(text)}</td>'


def sources_html(run_dir: str | Path) -> list[str]:
    """The report's section from ``run_dir/sources.json`` (and ``sources.png``): ``[]`` when the run has
    no sources.json. Every cell carries its exact value (``data-key`` ``source.<g>.<field>``)."""
    run_dir = Path(run_dir)
    if not (run_dir / SOURCES_FILE).is_file():
        return []
    summary = read_json(run_dir / SOURCES_FILE, "dir")
    rows = summary.get("sources", [])
    cols = [c for c in TABLE_COLUMNS if any(r.get(c) is not None for r in rows)]  # e.g. no R-hat of one chain
    body = [[head_cell(f"source {r['source']}"), *(_cell(r.get(c), f"source.{r['source']}.{c}") for c in cols)]
            for r in rows]
    posterior = any(r.get("sd") is not None for r in rows)
    what = ("<code>mean_weight</code> and <code>sd</code>: posterior mean and sd of the source's mean weight, from "
            "its value at every draw; <code>mcse</code>: Monte Carlo error of that mean; " if posterior else
            "<code>mean_weight</code>: the mean of the points' weights (the method has no posterior draws); ")
    ranking = ", ".join(str(s) for s in summary.get("ranking", []))
    intro = (f"<p>Per source of the training mixture, from <code>{SOURCES_FILE}</code>. {what}<code>point_sd</code>: "
             "spread of the points' weights within the source; <code>flagged_fraction</code>: points weighted below "
             f"{format(summary.get('flag_threshold', float('nan')), '.3g')} (half the mean weight of the training set). "
             f"Highest mean weight first: {html.escape(ranking)}.</p>")
    parts = ["<h2>Sources</h2>", intro, table(["source", *cols], body, table_id="sources")]
    if (run_dir / PLOT_FILE).is_file():
        parts.append(png_html((run_dir / PLOT_FILE).read_bytes(), "Mean weight of each source against the step "
                              "(one line style per chain; shaded: burn-in)"))
    return parts
