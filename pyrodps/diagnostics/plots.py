"""Figures of a comparison: test accuracy against steps, and the weight distributions of groups."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def plot_accuracy_vs_steps(traces: dict[str, list[list[tuple[int, float]]]], path: str | Path, title: str = "",
                           score: str = "test accuracy") -> None:
    """One line per method: the mean over seeds of the test accuracy at each recorded step.

    ``traces[method]`` holds one ``[(step, accuracy), ...]`` list per seed. For BADS a point is the
    accuracy of one posterior draw; the reported BADS accuracy averages the predictive over draws.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for method, per_seed in traces.items():
        per_seed = [t for t in per_seed if t]
        if not per_seed:
            continue
        n = min(len(t) for t in per_seed)
        steps = np.array([s for s, _ in per_seed[0][:n]])
        acc = np.array([[a for _, a in t[:n]] for t in per_seed])
        ax.plot(steps, acc.mean(0), label=method)
        if acc.shape[0] > 1:
            ax.fill_between(steps, acc.min(0), acc.max(0), alpha=0.15)
    ax.set_xlabel("step")
    ax.set_ylabel(score)
    ax.set_title(title or f"{score} against steps (band: min-max over seeds)")
    ax.grid(alpha=0.3)
    if ax.get_lines():
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_weight_groups(weights: dict[str, np.ndarray], groups: dict[str, np.ndarray], path: str | Path, title: str = "") -> None:
    """Histograms of the posterior-mean weights (or selection scores) of each ground-truth group, one
    panel per method; the bins span [0, 1], or [0, max] for scores above 1 (L2RW's B·w)."""
    methods = list(weights)
    fig, axes = plt.subplots(1, max(1, len(methods)), figsize=(4.2 * max(1, len(methods)), 3.4), squeeze=False)
    for ax, method in zip(axes[0], methods):
        w = weights[method]
        bins = np.linspace(0.0, max(1.0, float(np.max(w))), 41)
        for name, mask in groups.items():
            if mask.any():
                ax.hist(w[mask], bins=bins, alpha=0.55, label=f"{name} (n={int(mask.sum())})", density=True)
        ax.set_title(method)
        ax.set_xlabel("posterior mean weight" if method.startswith("bads") else "selection score")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("density")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
