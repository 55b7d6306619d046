"""``pyrodps run``: one method on one scenario, results written atomically to an output folder.

Everything the user passed is checked before any work starts; nothing is written when a check fails.
Files: ``metrics.json`` (scenario, method, seed, steps, wall_seconds, test_accuracy,
selection_auroc, ...), ``weights.npz`` (``mean``, ``std``, ``corrupted``; per training point) and
``config.json``.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import pyrodps
from pyrodps.baselines.sgd import SGDConfig, fit_sgd
from pyrodps.data import SCENARIOS, make_scenario
from pyrodps.diagnostics.metrics import selection_average_precision
from pyrodps.errors import OutputExistsError, check_choice, check_fraction, check_positive_int
from pyrodps.io import write_json, write_npz
from pyrodps.selection import BADSConfig, fit_bads

METHODS = ("bads", "sgd")


@dataclass
class RunRequest:
    """A validated ``pyrodps run`` invocation."""

    scenario: str
    method: str
    out: Path
    steps: int | None = None
    seed: int = 0
    noise_rate: float = 0.4
    meta_per_class: int = 5
    force: bool = False

    def validate(self) -> None:
        check_choice("scenario", self.scenario, tuple(SCENARIOS))
        check_choice("method", self.method, METHODS)
        if self.steps is not None:
            check_positive_int("steps", self.steps)
        check_positive_int("seed", self.seed, minimum=0)
        check_fraction("noise_rate", self.noise_rate)
        check_positive_int("meta_per_class", self.meta_per_class)
        check_output_dir(self.out, self.force)


def check_output_dir(out: Path, force: bool) -> None:
    """Refuse a non-empty output folder unless ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"out: {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"out: {out} is not empty; pass --force to overwrite")


def machine_description() -> dict:
    """Where a result was computed."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyrodps": pyrodps.__version__,
    }


def run(request: RunRequest, *, progress: bool = True) -> dict:
    """Run the request and write its results; returns the metrics."""
    request.validate()
    problem = make_scenario(
        request.scenario, noise_rate=request.noise_rate, meta_per_class=request.meta_per_class, seed=request.seed
    )
    start = time.perf_counter()
    if request.method == "bads":
        config = BADSConfig() if request.steps is None else BADSConfig(steps=request.steps)
        config.validate()
        fit = fit_bads(problem, config, seed=request.seed, progress=progress)
        test_accuracy, auroc = fit.test_accuracy, fit.selection_auroc
        mean, std = fit.weight_mean, fit.weight_std
        ap = selection_average_precision(mean, problem.corrupted) if problem.corrupted is not None else None
        extra = {
            "selection_average_precision": ap,
            "mean_weight_corrupted": float(mean[problem.corrupted].mean()) if problem.corrupted is not None else None,
            "mean_weight_clean": float(mean[~problem.corrupted].mean()) if problem.corrupted is not None else None,
            "num_draws": int(fit.samples.draws["energy"].shape[0] * fit.samples.draws["energy"].shape[1]),
        }
    else:
        config = SGDConfig() if request.steps is None else SGDConfig(steps=request.steps)
        config.validate()
        fit = fit_sgd(problem, config, seed=request.seed, progress=progress)
        test_accuracy, auroc = fit.test_accuracy, None
        mean = std = None
        extra = {}
    wall = time.perf_counter() - start
    metrics = {
        "scenario": request.scenario,
        "method": request.method,
        "seed": request.seed,
        "steps": config.steps,
        "noise_rate": request.noise_rate,
        "meta_per_class": request.meta_per_class,
        "num_train": problem.num_train,
        "num_meta": int(problem.x_meta.shape[0]),
        "num_test": int(problem.x_test.shape[0]),
        "wall_seconds": wall,
        "test_accuracy": test_accuracy,
        "selection_auroc": auroc,
        **extra,
        "machine": machine_description(),
    }
    out = Path(request.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", {"request": {**request.__dict__, "out": str(out)}, "config": config.to_dict()})
    if mean is not None:
        corrupted = problem.corrupted if problem.corrupted is not None else np.zeros(problem.num_train, bool)
        write_npz(out / "weights.npz", mean=mean, std=std, corrupted=corrupted)
    write_json(out / "metrics.json", metrics)
    return metrics
