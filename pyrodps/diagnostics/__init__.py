"""Diagnostics: metrics now; ArviZ, plots and reports later."""

from pyrodps.diagnostics.metrics import (
    accuracy,
    balanced_accuracy,
    selection_auroc,
    selection_average_precision,
)

__all__ = ["accuracy", "balanced_accuracy", "selection_auroc", "selection_average_precision"]
