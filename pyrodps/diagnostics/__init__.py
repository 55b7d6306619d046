"""Diagnostics: evaluation metrics; per-draw posterior summaries and their ArviZ groups
(:mod:`~pyrodps.diagnostics.posterior`, :mod:`~pyrodps.diagnostics.arviz_adapter`); the convergence
verdict, judged in function space (within-chain stationarity and agreement of the chains on the
weights and the predictive, :mod:`~pyrodps.diagnostics.verdict`, fed by
:mod:`~pyrodps.diagnostics.run_verdict`), with parameter space and the pooled per-quantity table
(:mod:`~pyrodps.diagnostics.convergence`) reported beside it; figures and the HTML report
(:mod:`~pyrodps.diagnostics.report`, :mod:`~pyrodps.diagnostics.convergence_page`); the
SGLD-versus-NUTS cross-check (:mod:`~pyrodps.crosscheck.nuts`). Only the metrics are
imported here: the rest pull in ArviZ, matplotlib or Pyro's NUTS when used."""

from pyrodps.diagnostics.metrics import (
    accuracy,
    balanced_accuracy,
    selection_auroc,
    selection_average_precision,
)

__all__ = ["accuracy", "balanced_accuracy", "selection_auroc", "selection_average_precision"]
