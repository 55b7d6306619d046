"""Every method behind one call: BADS variants, the one-step-lookahead bi-level baselines (``l2rw``,
``mwn``) and the naive baselines, with the same metrics.

``run_method(problem, method, seed=...)`` returns a :class:`MethodResult`; ``pyrodps run`` and
``pyrodps compare`` are thin layers over it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from pyrodps.bads.fit import V01_OVERRIDES, BADSConfig, BADSFit, fit_bads
from pyrodps.baselines.blo import BLOFit
from pyrodps.baselines.l2rw import L2RWConfig, fit_l2rw
from pyrodps.baselines.mwn import MWNConfig, fit_mwn
from pyrodps.baselines.naive import NAIVE_METHODS, kept_fraction
from pyrodps.baselines.sgd import SGDConfig, fit_sgd
from pyrodps.diagnostics.metrics import (
    accuracy,
    balanced_accuracy,
    selection_auroc,
    selection_average_precision,
)
from pyrodps.errors import check_choice
from pyrodps.models.problem import SelectionProblem

# method -> BADSConfig overrides
BADS_METHODS = {
    "bads": {"log_z": "ignore"},
    "bads-companion": {"log_z": "companion"},
    "bads-weightnet": {"log_z": "ignore", "weights": "network"},
    # ablation: the meta set's influence removed (ρ_m = 1e-6); everything else as "bads"
    "bads-no-meta": {"log_z": "ignore", "meta_share": None, "rho_meta": 1e-6},
    # the defaults of pyrodps 0.1, kept to show the change side by side
    "bads-v0.1": {"log_z": "ignore", **V01_OVERRIDES},
}
# bi-level optimisation baselines: weight per step from a one-step lookahead on a meta batch
BLO_METHODS = ("l2rw", "mwn")
METHODS = (*BADS_METHODS, *BLO_METHODS, *NAIVE_METHODS)


@dataclass
class MethodResult:
    """What one method produced on one problem and seed."""

    method: str
    seed: int
    steps: int
    wall_seconds: float
    test_probs: np.ndarray
    accuracy_trace: list[tuple[int, float]]
    weight_mean: np.ndarray | None = None
    weight_std: np.ndarray | None = None
    config: dict = field(default_factory=dict)
    fit: BADSFit | None = None  # BADS methods: the whole fit (draws, window mean, ArviZ export)

    def metrics(self, problem: SelectionProblem) -> dict:
        """Test accuracy, balanced accuracy, and for weighting methods the selection metrics and the
        mean weight of every ground-truth group of the problem.

        ``weight_mean`` is the selection score: the BADS posterior-mean weight in (0, 1), the mean
        MW-Net weight in (0, 1), or the mean L2RW weight times the batch size (1 = uniform). The
        AUROC and ``kept_fraction = (Σ w)² / (N Σ w²)`` are invariant to a positive scale, so
        they mean the same for all of them; the group means are on each method's own scale."""
        out = {
            "method": self.method,
            "seed": self.seed,
            "steps": self.steps,
            "wall_seconds": self.wall_seconds,
            "test_accuracy": accuracy(self.test_probs, problem.y_test),
            "balanced_accuracy": balanced_accuracy(self.test_probs, problem.y_test),
            "selection_auroc": None,
            "selection_average_precision": None,
        }
        if self.weight_mean is not None:
            if problem.corrupted is not None:
                out["selection_auroc"] = selection_auroc(self.weight_mean, problem.corrupted)
                out["selection_average_precision"] = selection_average_precision(self.weight_mean, problem.corrupted)
            out["kept_fraction"] = kept_fraction(self.weight_mean)
            for name, mask in problem.groups().items():
                if mask.any():
                    out[f"mean_weight_{name}"] = float(self.weight_mean[mask].mean())
        return out


def run_method(
    problem: SelectionProblem,
    method: str,
    *,
    seed: int = 0,
    steps: int | None = None,
    keep_fraction: float = 0.5,
    progress: bool = True,
    bads_config: BADSConfig | None = None,
    sgd_config: SGDConfig | None = None,
    l2rw_config: L2RWConfig | None = None,
    mwn_config: MWNConfig | None = None,
    **bads_run_options: object,
) -> MethodResult:
    """Run ``method`` (one of :data:`METHODS`) on ``problem``. Each family takes its settings from
    its own config (``bads_config``, ``l2rw_config``, ``mwn_config``, ``sgd_config``); ``steps``
    overrides their ``steps``. ``bads_run_options`` go to :func:`~pyrodps.bads.fit.fit_bads`
    (``checkpoint_dir``, ``checkpoint_every``, ``guard``, ``memory_budget``); the other methods are
    short and restart from scratch."""
    check_choice("method", method, METHODS)
    start = time.perf_counter()
    if method in BLO_METHODS:
        if method == "l2rw":
            blo_config, fit_blo = l2rw_config or L2RWConfig(), fit_l2rw
        else:
            blo_config, fit_blo = mwn_config or MWNConfig(), fit_mwn
        blo_config = blo_config if steps is None else replace(blo_config, steps=steps)
        blo_config.validate()
        blo_fit: BLOFit = fit_blo(problem, blo_config, seed=seed, progress=progress)
        wall = time.perf_counter() - start
        return MethodResult(method, seed, blo_config.steps, wall, blo_fit.test_probs,
                            blo_fit.accuracy_trace, blo_fit.weight_mean, blo_fit.weight_std,
                            blo_fit.config)
    if method in BADS_METHODS:
        config = replace(bads_config or BADSConfig(), **BADS_METHODS[method])
        config = config if steps is None else replace(config, steps=steps)
        config.validate()
        fit = fit_bads(problem, config, seed=seed, progress=progress, **bads_run_options)
        return MethodResult(method, seed, config.steps, time.perf_counter() - start, fit.test_probs,
                            fit.accuracy_trace, fit.weight_mean, fit.weight_std, fit.config.to_dict(), fit=fit)
    config = sgd_config or SGDConfig()
    config = config if steps is None else replace(config, steps=steps)
    config.validate()
    config = config.resolved(problem)
    naive = method
    fit = fit_sgd(problem, config, seed=seed, method=naive, keep_fraction=keep_fraction, progress=progress)
    return MethodResult(method, seed, config.steps, time.perf_counter() - start, fit.test_probs, fit.accuracy_trace,
                        config={**config.to_dict(), "keep_fraction": keep_fraction if naive == "random-select" else None})
