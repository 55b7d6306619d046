"""``sources.json``, ``source_trace.npz`` and ``sources.png`` of a ``pyrodps run`` on a problem with
``weight_groups`` (:mod:`pyrodps.diagnostics.sources`)."""

from __future__ import annotations

from pathlib import Path

from pyrodps.diagnostics.sources import write_source_files
from pyrodps.models.problem import SelectionProblem


def write_run_sources(out: str | Path, problem: SelectionProblem, res: object) -> dict | None:
    """Write the per-source files of the result ``res`` (a :class:`~pyrodps.app.methods.MethodResult`)
    into ``out`` and return the summary; ``None`` (nothing written) when the problem has no
    ``weight_groups`` or the method no per-point weights. The trace comes from the BADS run's
    ``"sources"`` observer (:class:`~pyrodps.bads.source_trace.SourceTrace`); other methods get the
    summary without posterior fields."""
    if problem.weight_groups is None or getattr(res, "weight_mean", None) is None:
        return None
    fit = getattr(res, "fit", None)
    observer = None if fit is None else fit.samples.observers.get("sources")
    return write_source_files(out, problem.weight_groups, res.weight_mean, corrupted=problem.corrupted,
                              trace=None if observer is None else observer.arrays(), method=res.method)
