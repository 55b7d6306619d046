"""Feed :func:`~pyrodps.diagnostics.verdict.assess_convergence` from a fit (``pyrodps run``) or from
the files of a run folder (``pyrodps report``); both give the same report for the same run.

Per-chain inputs, as ``pyrodps run`` writes them for the BADS methods:

* ``weights.npz["chain_mean"]``: ``(chains, N)``, chain k's posterior-mean weight of every training
  point (``fit.chain_weight_mean[k]``);
* ``metrics.json["chain_test_accuracy"]``: test accuracy of each chain's own posterior predictive
  ``(1/S_k) Σ_s p(y | x, θ_s^{(k)})``; ``metrics.json["chain_selection_auroc"]``: AUROC of
  ``-w̄_k`` for the corrupted points (``null`` without a mask holding both classes);
* ``weights.npz["corrupted"]``: the ground-truth mask (all ``False`` when the problem has none).

A folder without them (an older run) is still assessed; the across-chain checks that need them are
listed as not assessed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pyrodps.diagnostics.arviz_adapter import group, group_names
from pyrodps.diagnostics.convergence import ConvergenceThresholds
from pyrodps.diagnostics.metrics import accuracy, nll_per_token, selection_auroc
from pyrodps.diagnostics.verdict import SplitConvergenceReport, assess_convergence

if TYPE_CHECKING:
    from pyrodps.bads.fit import BADSFit


def chain_mean_weights(fit: BADSFit) -> np.ndarray:
    """``(chains, N)``: each chain's posterior-mean weight of every training point."""
    return np.asarray(fit.chain_weight_mean, dtype=np.float64)


def chain_test_accuracy(fit: BADSFit, y_test: np.ndarray) -> list[float] | None:
    """Test score of each chain's posterior predictive: accuracy, RMSE for regression, the NLL per
    token for sequences (``None`` when the fit kept none)."""
    if fit.chain_test_probs is None:
        return None
    if getattr(fit, "task", "classification") == "sequence":
        return [nll_per_token(p, y_test) for p in np.asarray(fit.chain_test_probs)]
    if getattr(fit, "task", "classification") != "classification":
        return [float(np.sqrt(np.mean((p - y_test) ** 2))) for p in np.asarray(fit.chain_test_probs)]
    return [accuracy(p, y_test) for p in np.asarray(fit.chain_test_probs)]


def chain_selection_auroc(chain_mean: np.ndarray, corrupted: np.ndarray | None) -> list[float] | None:
    """Per-chain selection AUROC, ``None`` unless ``corrupted`` holds both classes."""
    if corrupted is None:
        return None
    mask = np.asarray(corrupted, dtype=bool)
    if mask.all() or not mask.any():
        return None
    return [float(selection_auroc(m, mask)) for m in chain_mean]


def assess_fit(fit: BADSFit, y_test: np.ndarray, corrupted: np.ndarray | None,
               thresholds: ConvergenceThresholds | None = None) -> SplitConvergenceReport:
    """The verdict of a fit, from the same inputs ``pyrodps run`` writes to the run folder."""
    return assess_data(fit.to_arviz(), chain_mean_weights(fit), corrupted, chain_test_accuracy(fit, y_test), thresholds)


def assess_data(data: object, chain_mean: np.ndarray | None, corrupted: np.ndarray | None,
                chain_accuracy: list[float] | None,
                thresholds: ConvergenceThresholds | None = None) -> SplitConvergenceReport:
    """The verdict of ArviZ ``data`` (``posterior`` and optional ``sample_stats`` groups)."""
    stats = group(data, "sample_stats") if "sample_stats" in group_names(data) else None
    return assess_convergence(group(data, "posterior"), stats, chain_mean, corrupted, chain_accuracy, thresholds)


def assess_run_files(data: object, weights: dict[str, np.ndarray] | None, metrics: dict,
                     thresholds: ConvergenceThresholds | None = None) -> SplitConvergenceReport:
    """The verdict of a run folder's ``posterior.nc`` (``data``), ``weights.npz`` and ``metrics.json``."""
    weights = weights or {}
    return assess_data(data, weights.get("chain_mean"), weights.get("corrupted"), metrics.get("chain_test_accuracy"),
                       thresholds)
