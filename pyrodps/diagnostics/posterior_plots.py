"""Figures of one run's posterior (matplotlib, Agg): each function returns a ``Figure``.

Traces and rank plots (Vehtari et al. 2021: the ranks of the pooled draws, histogrammed per chain,
are uniform when the chains sample the same distribution), weights by ground-truth group, weight
against loss, points ranked by posterior-mean weight, per-point R-hat / ESS, test accuracy against
steps, the agreement of the chains (per-chain accuracy and AUROC, posterior-mean weights of chain 0
against each other chain), and the summary of a ``pyrodps compare`` folder.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from scipy.stats import rankdata

GROUP_COLOURS = {"clean": "tab:blue", "corrupted": "tab:red", "majority": "tab:green", "minority": "tab:orange"}


def _select(ds: xr.Dataset, label: str) -> np.ndarray:
    """``(chain, draw)`` draws of ``name`` or of element ``name[coord]``."""
    if "[" in label:
        name, coord = label[:-1].split("[")
        da = ds[name]
        dim = da.dims[-1]
        values = da.coords[dim].values
        pos = int(np.flatnonzero(values.astype(str) == coord)[0])
        return da.isel({dim: pos}).values
    return ds[label].values


def plot_trace_rank(ds: xr.Dataset, labels: list[str], bins: int = 20) -> Figure:
    """One row per quantity: the trace of every chain (left) and the per-chain histograms of the
    pooled ranks (right; dashed: the uniform count each bin would hold)."""
    fig, axes = plt.subplots(len(labels), 2, figsize=(9.0, 1.7 * len(labels) + 0.6), squeeze=False,
                             gridspec_kw={"width_ratios": [2.2, 1.0]})
    for row, label in enumerate(labels):
        x = _select(ds, label)
        chains, draws = x.shape
        ranks = rankdata(x.reshape(-1)).reshape(chains, draws)
        nb = max(4, min(bins, draws // 5))
        edges = np.linspace(0.5, chains * draws + 0.5, nb + 1)
        ax_t, ax_r = axes[row]
        for c in range(chains):
            ax_t.plot(np.arange(draws), x[c], lw=0.8, alpha=0.8, label=f"chain {c}")
            counts, _ = np.histogram(ranks[c], bins=edges)
            height = counts / max(draws / nb, 1e-12)
            ax_r.bar(np.arange(nb), 0.8 * height / 2.0, bottom=c, width=1.0, alpha=0.75)
            ax_r.axhline(c + 0.4, color="k", lw=0.5, ls="--")
        ax_t.set_ylabel(label, fontsize=8)
        ax_r.set_yticks(np.arange(chains) + 0.4, [str(c) for c in range(chains)], fontsize=7)
        ax_r.set_xticks([])
        if row == 0:
            ax_t.set_title("trace (x: draw)", fontsize=9)
            ax_r.set_title("rank histogram per chain", fontsize=9)
    axes[0][0].legend(fontsize=6, ncol=4, loc="best")
    fig.tight_layout()
    return fig


def plot_weights_by_group(weight_mean: np.ndarray, groups: dict[str, np.ndarray]) -> Figure:
    """Histograms of the posterior-mean weights of each ground-truth group (all points if none)."""
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    bins = np.linspace(0.0, 1.0, 41)
    shown = {k: m for k, m in groups.items() if m.any()} or {"all points": np.ones(weight_mean.size, bool)}
    for name, mask in shown.items():
        ax.hist(weight_mean[mask], bins=bins, alpha=0.55, density=True, color=GROUP_COLOURS.get(name),
                label=f"{name} (n={int(mask.sum())})")
    ax.set_xlabel("posterior mean weight")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _group_colours(n: int, groups: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, str]]:
    colours = np.full(n, "tab:blue", dtype=object)
    legend = {}
    for name in ("clean", "corrupted", "majority", "minority"):
        if name in groups and groups[name].any():
            colours[groups[name]] = GROUP_COLOURS[name]
            legend[name] = GROUP_COLOURS[name]
    return colours, legend


def plot_weight_vs_loss(weight_mean: np.ndarray, loss: np.ndarray, groups: dict[str, np.ndarray]) -> Figure:
    """Posterior-mean weight of every training point against its loss ``l_i(θ)``."""
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    colours, legend = _group_colours(weight_mean.size, groups)
    ax.scatter(np.maximum(loss, 1e-6), weight_mean, s=5, c=list(colours), alpha=0.6, linewidths=0)
    for name, col in legend.items():
        ax.scatter([], [], s=12, c=col, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("training loss l_i(θ) at the last draws")
    ax.set_ylabel("posterior mean weight")
    if legend:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_ranked_weights(weight_mean: np.ndarray, weight_std: np.ndarray, groups: dict[str, np.ndarray]) -> Figure:
    """Points ranked by posterior-mean weight, with ±1 posterior sd, coloured by ground truth."""
    order = np.argsort(weight_mean)
    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    rank = np.arange(order.size)
    ax.fill_between(rank, (weight_mean - weight_std)[order], (weight_mean + weight_std)[order],
                    color="0.8", label="±1 posterior sd")
    colours, legend = _group_colours(weight_mean.size, groups)
    ax.scatter(rank, weight_mean[order], s=3, c=list(colours[order]), linewidths=0)
    for name, col in legend.items():
        ax.scatter([], [], s=12, c=col, label=name)
    ax.set_xlabel("rank of posterior mean weight")
    ax.set_ylabel("weight")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def plot_weight_convergence(rhat: np.ndarray, ess_bulk: np.ndarray, max_rhat: float, min_ess: float) -> Figure:
    """Histograms of the per-point R-hat and bulk ESS of the tracked weights, thresholds dashed."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.0, 3.0))
    ok = np.isfinite(rhat)
    a.hist(rhat[ok], bins=40, color="tab:purple")
    a.axvline(max_rhat, color="k", ls="--")
    a.set_xlabel("R-hat of w_i")
    b.hist(ess_bulk[np.isfinite(ess_bulk)], bins=40, color="tab:cyan")
    b.axvline(min_ess, color="k", ls="--")
    b.set_xlabel("bulk ESS of w_i")
    a.set_ylabel("tracked points")
    fig.tight_layout()
    return fig


def plot_accuracy_by_chain(steps: np.ndarray, accuracy: np.ndarray, label: str = "test accuracy") -> Figure:
    """Test accuracy (or another score, ``label``) of every draw against its step, one line per chain
    (``(chain, draw)`` arrays)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for c in range(accuracy.shape[0]):
        ax.plot(steps[c], accuracy[c], lw=0.9, label=f"chain {c}")
    ax.set_xlabel("step")
    ax.set_ylabel(f"{label} of the draw")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_burn_in(warm_steps: np.ndarray, warm: dict[str, np.ndarray], kept_steps: np.ndarray,
                 kept: dict[str, np.ndarray], burn_in: int) -> Figure:
    """The whole run of each quantity (``(chain, draw)`` arrays of the burn-in and of the kept draws)
    against the step, one line per chain, with a vertical line where burn-in ended: the kept draws
    should show no trend left over from the transient."""
    names = [n for n in kept if n in warm]
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.6 * max(1, len(names)), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for c in range(kept[name].shape[0]):
            line, = ax.plot(warm_steps[c], warm[name][c], lw=0.7, alpha=0.5)
            ax.plot(kept_steps[c], kept[name][c], lw=0.9, color=line.get_color(), label=f"chain {c}")
        ax.axvline(burn_in, color="k", ls="--", lw=1)
        ax.annotate("burn-in ends", (burn_in, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", fontsize=7)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(name.replace("_", " ") + " (minibatch mean)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_chain_agreement(chain_accuracy: list[float] | None, chain_auroc: list[float] | None,
                         chain_mean: np.ndarray | None, corrupted: np.ndarray | None,
                         rank_correlation: np.ndarray | None = None, max_scatter: int = 5) -> Figure:
    """Does each chain tell the user the same thing? Left: each chain's posterior-predictive test
    accuracy (and selection AUROC), one point per chain. Right: the posterior-mean weight ``w̄_0,i``
    of chain 0 against ``w̄_k,i`` of chain k for every training point (up to ``max_scatter`` other
    chains; log axes, as most weights sit near 0), red where the point is corrupted, Spearman ρ in
    the title; chains that agree put the points on the diagonal."""
    bars = [(name, np.asarray(v, dtype=float)) for name, v in
            (("test accuracy", chain_accuracy), ("selection AUROC", chain_auroc)) if v is not None]
    others = 0 if chain_mean is None else min(max_scatter, chain_mean.shape[0] - 1)
    panels = max(1, len(bars) + others)
    fig, axes = plt.subplots(1, panels, figsize=(min(3.0 * panels, 15.0), 3.0), squeeze=False)
    axes = axes[0]
    for ax, (name, values) in zip(axes, bars):
        ax.plot(np.arange(values.size), values, "o", color="tab:blue")
        for k, v in enumerate(values):
            ax.annotate(f"{v:.4f}", (k, v), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xticks(np.arange(values.size), [str(k) for k in range(values.size)])
        ax.set_xlim(-0.5, values.size - 0.5)
        lo, hi = float(values.min()), float(values.max())
        pad = max(0.01, 0.2 * (hi - lo))
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel("chain")
        ax.set_title(f"{name} per chain\n(spread {hi - lo:.4f})", fontsize=9)
        ax.grid(alpha=0.3)
    mask = np.zeros(0 if chain_mean is None else chain_mean.shape[1], bool) if corrupted is None \
        else np.asarray(corrupted, dtype=bool)
    if others:
        positive = chain_mean[chain_mean > 0]
        floor = float(positive.min()) if positive.size else 1e-6
        lo, hi = floor / 2.0, max(1.0, float(chain_mean.max()))
    for j in range(others):
        ax, k = axes[len(bars) + j], j + 1
        x, y = np.clip(chain_mean[0], lo, None), np.clip(chain_mean[k], lo, None)
        ax.scatter(x[~mask], y[~mask], s=3, c="tab:blue", alpha=0.5, linewidths=0, label="clean")
        if mask.any():  # drawn last: on top
            ax.scatter(x[mask], y[mask], s=4, c="tab:red", alpha=0.7, linewidths=0, label="corrupted")
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.6, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("w̄ in chain 0", fontsize=8)
        ax.set_ylabel(f"w̄ in chain {k}", fontsize=8)
        rho = "" if rank_correlation is None else f": ρ = {rank_correlation[0, k]:.3f}"
        ax.set_title(f"chain 0 vs chain {k}{rho}", fontsize=9)
        if j == 0 and mask.any():
            ax.legend(fontsize=6, loc="upper left", markerscale=2)
    if not bars and not others:
        axes[0].text(0.5, 0.5, "no per-chain results", ha="center", va="center")
        axes[0].set_axis_off()
    fig.tight_layout()
    return fig


def plot_comparison(summary: dict[str, dict], metrics: tuple[str, ...] = ("test_accuracy", "selection_auroc")) -> Figure:
    """Mean ± sd over seeds of ``metrics`` per method (``comparison.json``'s ``summary``)."""
    shown = [m for m in metrics if any(m in s for s in summary.values())]
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(4.2 * max(1, len(shown)), 0.4 * len(summary) + 1.4),
                             squeeze=False)
    methods = list(summary)
    for ax, metric in zip(axes[0], shown):
        mean = [summary[m].get(metric, {}).get("mean", np.nan) for m in methods]
        sd = [summary[m].get(metric, {}).get("sd", 0.0) for m in methods]
        ax.barh(np.arange(len(methods)), mean, xerr=sd, color="tab:blue", alpha=0.7)
        ax.set_yticks(np.arange(len(methods)), methods, fontsize=8)
        ax.set_xlabel(f"{metric} (mean ± sd over seeds)", fontsize=8)
        finite = [v for v in mean if np.isfinite(v)]
        if finite:
            ax.set_xlim(max(0.0, min(finite) - 0.1), min(1.0, max(finite) + 0.05) + 1e-9)
    fig.tight_layout()
    return fig
