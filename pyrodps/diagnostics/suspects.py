"""The least-trusted training points: what a user acts on after a run.

From a run's ``weights.npz`` (:mod:`pyrodps.app.runner`): one row per training point, ordered by
posterior-mean weight, lowest first (ties by index): ``index``, ``given_label`` (the label or target
in the training set), ``predicted_label`` (the class, or mean, the posterior predicts for that input
at the last draws; BADS runs only), ``weight_mean``, ``weight_sd``, ``loss`` (``l_i(θ)`` at the last
draws; BADS runs only) and, when the data carry a ground truth, ``corrupted``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from pyrodps.io import atomic_write_bytes

COLUMNS = ("index", "given_label", "predicted_label", "weight_mean", "weight_sd", "loss", "corrupted")


def suspect_rows(weights: dict[str, np.ndarray]) -> list[dict[str, object]]:
    """Every training point as a row (:data:`COLUMNS`; a column the run did not record is left out),
    lowest posterior-mean weight first."""
    mean = np.asarray(weights["mean"], dtype=np.float64)
    order = np.lexsort((np.arange(mean.shape[0]), mean))
    columns = {
        "given_label": weights.get("label"),
        "predicted_label": weights.get("predicted"),
        "weight_mean": mean,
        "weight_sd": weights.get("std"),
        "loss": weights.get("loss"),
        "corrupted": weights["corrupted"] if "corrupted" in weights and weights["corrupted"].any() else None,
    }
    # one value per point only: a language model's "label" is a whole token sequence, left out here
    present = {k: np.asarray(v) for k, v in columns.items() if v is not None and np.asarray(v).ndim == 1}
    return [{"index": int(i), **{k: _scalar(v[i]) for k, v in present.items()}} for i in order]


def _scalar(value: np.generic) -> object:
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    return float(value)


def write_suspects_csv(path: str | Path, rows: list[dict[str, object]]) -> Path:
    """Write the rows as CSV (atomically), one line per training point."""
    header = [c for c in COLUMNS if rows and c in rows[0]]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_bytes(path, buf.getvalue().encode())
    return Path(path)
