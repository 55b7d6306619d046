"""Diagnostics: evaluation metrics; per-draw posterior summaries and their ArviZ groups
(:mod:`~pyrodps.diagnostics.posterior`, :mod:`~pyrodps.diagnostics.arviz_adapter`); convergence verdicts
(:mod:`~pyrodps.diagnostics.convergence`); figures and the HTML report (:mod:`~pyrodps.diagnostics.report`);
the SGLD-versus-NUTS cross-check (:mod:`~pyrodps.diagnostics.nuts_crosscheck`). Only the metrics are
imported here: the rest pull in ArviZ, matplotlib or Pyro's NUTS when used."""

from pyrodps.diagnostics.metrics import (
    accuracy,
    balanced_accuracy,
    selection_auroc,
    selection_average_precision,
)

__all__ = ["accuracy", "balanced_accuracy", "selection_auroc", "selection_average_precision"]
