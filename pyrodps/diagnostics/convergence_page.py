"""The convergence sections of ``report.html`` (:class:`~pyrodps.diagnostics.verdict.SplitConvergenceReport`).

In page order: the function-space verdict (pass/fail box with ``id="verdict"`` and
``data-passed``, the failing checks in ``<ul id="failures">``), the within-chain checks
(``table#within-chain``: one row per chain per quantity; ``table#within-chain-weights``: the tracked
weights per chain), the across-chain checks (``table#across-chains``, and what was not assessed), the
figure of the chains' agreement, the parameter-space section (``table#parameter-space`` with its
explanation) and the pooled per-quantity table (``table#convergence``, ``table#weight-convergence``).
Cells carry their JSON value (``data-key``/``data-value``), as in ``convergence.json``.
"""

from __future__ import annotations

import html

import numpy as np

from pyrodps.diagnostics import posterior_plots as pp
from pyrodps.diagnostics.convergence import WEIGHT_VARIABLE, ConvergenceReport
from pyrodps.diagnostics.page_parts import cell, figure_html, head_cell, table
from pyrodps.diagnostics.verdict import ACROSS, WITHIN, SplitConvergenceReport


def verdict_html(report: SplitConvergenceReport) -> str:
    """The function-space verdict box and the list of failing checks."""
    fs = report.function_space
    cls = "pass" if fs.passed else "fail"
    parts = [(f'<p id="verdict" class="verdict {cls}" data-passed="{str(fs.passed).lower()}">'
              f"{html.escape(fs.verdict())}</p>")]
    if fs.failures():
        items = "".join(f"<li>{html.escape(f)}</li>" for f in fs.failures())
        parts.append(f'<p>Failed checks:</p><ul id="failures">{items}</ul>')
    parts.append(f"<p>{report.chains} chain(s) × {report.draws} draws after burn-in and thinning. The verdict "
                 "is judged in function space: each chain on its own must be stationary (split R-hat of the "
                 "chain's two halves, bulk ESS of the chain), and the chains must agree on what the run "
                 "reports (the weights, the selection, the predictive accuracy).</p>")
    return "\n".join(parts)


def within_chain_html(report: SplitConvergenceReport) -> str:
    checks = report.function_space.scope(WITHIN)
    scalar: dict[tuple[int, str], dict] = {}
    weights = []
    for c in checks:
        if c.quantity == WEIGHT_VARIABLE:
            weights.append(c)
        else:
            scalar.setdefault((c.chain, c.quantity), {})["rhat" if "R-hat" in c.name else "ess"] = c
    t = report.thresholds
    rows, classes = [], []
    for (chain, q), pair in scalar.items():
        d = {k: c.to_dict() for k, c in pair.items()}
        ok = all(c.passed for c in pair.values())
        key = f"chain{chain}.{q}"
        rows.append([head_cell(f"chain {chain} {q}"), cell(chain), cell(q),
                     cell(d["rhat"]["value"], key + ".rhat") if "rhat" in d else cell(None),
                     cell(d["ess"]["value"], key + ".ess_bulk") if "ess" in d else cell(None),
                     cell("yes" if ok else "no", key + ".passed")])
        classes.append("" if ok else "fail")
    parts = [(f"<h3>Within each chain</h3><p>Pass: split R-hat &lt; {t.max_rhat:g} and bulk ESS &ge; "
              f"{t.min_ess_bulk_per_chain:g} for each chain alone.</p>")]
    if rows:
        parts.append(table(["check", "chain", "quantity", "split R-hat", "bulk ESS", "passes"], rows, classes,
                           "within-chain"))
    if weights:
        rows = []
        for c in weights:
            d = c.to_dict()
            key = f"chain{c.chain}.w"
            rows.append([head_cell(f"chain {c.chain} w"), cell(d["detail"]["num_tracked"]),
                         cell(d["value"], key + ".fraction_passed"), cell(d["threshold"]),
                         cell(d["detail"]["rhat_median"]), cell(d["detail"]["ess_bulk_median"]),
                         cell("yes" if c.passed else "no", key + ".passed")])
        parts.append(table(["tracked weights", "points", "fraction passing", "needed", "median split R-hat",
                            "median bulk ESS", "passes"], rows, ["" if c.passed else "fail" for c in weights],
                           "within-chain-weights"))
    return "\n".join(parts)


def across_chains_html(report: SplitConvergenceReport) -> str:
    fs = report.function_space
    parts = ["<h3>Across chains</h3>"]
    checks = fs.scope(ACROSS)
    if checks:
        rows = []
        for i, c in enumerate(checks):
            d = c.to_dict()
            label = c.name + (f" (chains {d['detail']['chains'][0]} and {d['detail']['chains'][1]})"
                              if "chains" in d["detail"] else "")
            rows.append([head_cell(label), cell(d["value"], f"across.{i}.value"),
                         cell(f"{c.comparison} {c.threshold:g}"), cell("yes" if c.passed else "no", f"across.{i}.passed")])
        parts.append(table(["check", "value", "needed", "passes"], rows, ["" if c.passed else "fail" for c in checks],
                           "across-chains"))
    missing = [n for n in fs.not_assessed if n.scope == ACROSS]
    if missing:
        items = "".join(f"<li>{html.escape(n.name)}: {html.escape(n.reason)}</li>" for n in missing)
        parts.append(f'<p>Not assessed:</p><ul id="not-assessed">{items}</ul>')
    return "\n".join(parts)


def agreement_figure(report: SplitConvergenceReport, chain_mean: np.ndarray | None,
                     corrupted: np.ndarray | None) -> str:
    """Per-chain accuracy and AUROC, and the weights of chain 0 against every other chain ("" when
    there is nothing per chain to show)."""
    fs = report.function_space
    if fs.chain_test_accuracy is None and fs.chain_selection_auroc is None and (chain_mean is None or len(chain_mean) < 2):
        return ""
    fig = pp.plot_chain_agreement(fs.chain_test_accuracy, fs.chain_selection_auroc, chain_mean, corrupted,
                                  fs.rank_correlation)
    return figure_html(fig, "Do the chains agree? Per-chain posterior-predictive test accuracy and selection AUROC; "
                            "posterior-mean weight of every training point in chain 0 against each other chain "
                            "(red: corrupted; dashed: equality). Chains in different modes show as spread points "
                            "and a cloud off the diagonal.")


def parameter_space_html(report: SplitConvergenceReport) -> str:
    ps = report.parameter_space
    parts = [f'<p class="note" id="parameter-space-explanation">{html.escape(ps.explanation)}</p>']
    if ps.quantities:
        rows = []
        for q in ps.quantities:
            rows.append([head_cell(q["name"]), cell(q["rhat"], q["name"] + ".rhat"),
                         cell(q["ess_bulk"], q["name"] + ".ess_bulk"), cell(q["ess_tail"]),
                         cell(", ".join(f"{v:.4g}" for v in q["chain_means"]))])
        parts.append(table(["quantity", "pooled R-hat", "bulk ESS", "tail ESS", "mean per chain"], rows,
                           table_id="parameter-space"))
    return "\n".join(parts)


def pooled_table_html(tbl: ConvergenceReport) -> str:
    """The per-quantity table pooled over chains (reported; not the verdict)."""
    parts = [(f"<p>Every tracked quantity with its statistics pooled over the {tbl.chains} chain(s): rank-normalised "
              "split R-hat, bulk and tail ESS, MCSE (Vehtari et al. 2021, computed by ArviZ). &quot;Passes&quot; "
              f"means R-hat &lt; {tbl.thresholds.max_rhat:g} and bulk ESS &ge; {tbl.min_ess_bulk:g}; with chains in "
              "different modes the θ-dependent rows fail here whatever the length of the run, which is why the "
              "verdict above is judged per chain and on agreement instead.</p>")]
    header = ["quantity", "mean", "sd", "MCSE(mean)", "MCSE(sd)", "ESS bulk", "ESS tail", "R-hat", "passes"]
    rows = [[head_cell(q.name), cell(q.mean), cell(q.sd), cell(q.mcse_mean), cell(q.mcse_sd),
             cell(q.ess_bulk), cell(q.ess_tail), cell(q.rhat), cell("yes" if q.passed else "no")]
            for q in tbl.quantities]
    parts.append(table(header, rows, ["" if q.passed else "fail" for q in tbl.quantities], "convergence"))
    if tbl.weights is not None:
        s = tbl.weights.summary()
        parts.append(f"<p>Weight table: {s['num_tracked']} tracked points; per point pooled R-hat and bulk ESS.</p>")
        rows = [[head_cell(k), cell(v)] for k, v in s.items()]
        parts.append(table(["weight table", "value"], rows, None if tbl.weights.passed else ["fail"] * len(rows),
                           "weight-convergence"))
    return "\n".join(parts)


def convergence_sections(report: SplitConvergenceReport, chain_mean: np.ndarray | None,
                         corrupted: np.ndarray | None) -> list[str]:
    """The convergence part of the page, headings included, in the order of the module docstring."""
    body = ["<h2>Convergence (function space)</h2>", verdict_html(report), within_chain_html(report),
            across_chains_html(report)]
    fig = agreement_figure(report, chain_mean, corrupted)
    if fig:
        body.append(fig)
    body += ["<h2>Parameter space (reported, not the verdict)</h2>", parameter_space_html(report)]
    if report.table is not None:
        body += ["<h2>Per-quantity table (pooled over chains)</h2>", pooled_table_html(report.table)]
    return body
