"""Every method behind one call: BADS variants, the one-step-lookahead bi-level baselines (``l2rw``,
``mwn``) and the naive baselines, with the same metrics.

``run_method(problem, method, seed=...)`` returns a :class:`MethodResult`; ``pyrodps run`` and
``pyrodps compare`` are thin layers over it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from pyrodps.bads.config import V01_OVERRIDES, BADSConfig
from pyrodps.bads.fit import BADSFit, fit_bads
from pyrodps.baselines.blo import BLOFit
from pyrodps.baselines.l2rw import L2RWConfig, fit_l2rw
from pyrodps.baselines.label_issues import CleanlabConfig, fit_cleanlab
from pyrodps.baselines.mwn import MWNConfig, fit_mwn
from pyrodps.baselines.naive import NAIVE_METHODS, kept_fraction
from pyrodps.baselines.sgd import SGDConfig, fit_sgd
from pyrodps.diagnostics.metrics import (
    predictive_scores,
    selection_auroc,
    selection_average_precision,
)
from pyrodps.errors import ValidationError, check_choice
from pyrodps.models.likelihoods import make_likelihood
from pyrodps.models.problem import SelectionProblem, default_likelihood

# method -> BADSConfig overrides
BADS_METHODS = {
    "bads": {"log_z": "ignore"},
    "bads-companion": {"log_z": "companion"},
    "bads-weightnet": {"log_z": "ignore", "weights": "network"},
    # grouped weights: one latent per group (the problem's weight_groups, else its classes), log Z(w) kept
    "bads-grouped": {"log_z": "companion", "weights": "network", "weight_net_features": ("group",),
                     "weight_net_hidden": 0},
    # per-point weights times group weights (sources): w_i = sigmoid(u_i) sigmoid(φ_g(i)); log Z(w) kept for the
    # group latents only (a shared latent without it collapses), dropped for the table (it would hide the flips)
    "bads-point-group": {"log_z": "companion-groups", "weights": "product", "weight_net_features": ("group",),
                         "weight_net_hidden": 0},
    # ablation: the meta set's influence removed (ρ_m = 1e-6); everything else as "bads"
    "bads-no-meta": {"log_z": "ignore", "meta_share": None, "rho_meta": 1e-6},
    # the defaults of pyrodps 0.1, kept to show the change side by side
    "bads-v0.1": {"log_z": "ignore", **V01_OVERRIDES},
}
# bi-level optimisation baselines: weight per step from a one-step lookahead on a meta batch
BLO_METHODS = ("l2rw", "mwn")
# confident learning (cleanlab, optional extra): out-of-fold probabilities from the same network or a
# logistic regression, label issues removed, the network retrained (:mod:`pyrodps.baselines.label_issues`)
CLEANLAB_METHODS = {"cleanlab": "network", "cleanlab-logreg": "logistic"}
METHODS = (*BADS_METHODS, *BLO_METHODS, *CLEANLAB_METHODS, *NAIVE_METHODS)
# methods refused on a sequence problem (token ids, a language model), and why
SEQUENCE_UNSUPPORTED = {
    **{m: "confident learning finds wrong class labels, and a token sequence has none" for m in CLEANLAB_METHODS},
    "class-balanced": "it weights examples by their class, and a token sequence has none",
}


@dataclass
class MethodResult:
    """What one method produced on one problem and seed. ``test_probs`` is the test prediction:
    class probabilities ``(n_test, C)`` for classification, predictive means ``(n_test,)`` for
    regression. ``accuracy_trace`` holds ``(step, test accuracy)``, or ``(step, test RMSE)`` for
    regression."""

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
        """The predictive scores of the problem's task (:func:`~pyrodps.diagnostics.metrics.predictive_scores`:
        ``test_accuracy`` and ``balanced_accuracy`` for classification, ``test_rmse`` and
        ``test_mae`` for regression), and for weighting methods the selection metrics (from
        ``corrupted``, for either task) and the mean weight of every ground-truth group (and of every
weight group, ``mean_weight_group<g>``, when the problem has ``weight_groups``).

        ``weight_mean`` is the selection score: the BADS posterior-mean weight in (0, 1), the mean
        MW-Net weight in (0, 1), or the mean L2RW weight times the batch size (1 = uniform). The
        AUROC and ``kept_fraction = (Σ w)² / (N Σ w²)`` are invariant to a positive scale, so
        they mean the same for all of them; the group means are on each method's own scale."""
        out = {
            "method": self.method,
            "seed": self.seed,
            "steps": self.steps,
            "wall_seconds": self.wall_seconds,
            **predictive_scores(self.test_probs, problem.y_test, problem.task),
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
            if problem.weight_groups is not None:  # model input, e.g. each point's source: w̄ per group
                groups = np.asarray(problem.weight_groups)
                for g in np.unique(groups):
                    out[f"mean_weight_group{int(g)}"] = float(self.weight_mean[groups == g].mean())
        return out


def check_method_overrides(method: str, config: BADSConfig) -> None:
    """A BADS method fixes the fields that define it (``bads-no-meta`` its ρ_m, ``bads-v0.1`` the old
    defaults, ...): refuse a base ``config`` that sets one of them to something else."""
    check_choice("method", method, tuple(BADS_METHODS))
    default = BADSConfig()
    for name, value in BADS_METHODS[method].items():
        given = getattr(config, name)
        if given != getattr(default, name) and given != value:
            raise ValidationError(name, f"the method {method!r} fixes {name} to {value!r}; drop it, or use the "
                                  "method 'bads'")


def method_config(method: str, base: BADSConfig | None = None, steps: int | None = None) -> BADSConfig:
    """The config a BADS method runs with: ``base`` with the method's own fields on top, then ``steps``
    (applied here once; the result is checked as it is made). The command line refuses a flag that
    collides with the method's fields first (:func:`check_method_overrides`)."""
    base = base or BADSConfig()
    check_choice("method", method, tuple(BADS_METHODS))
    return replace(base, **{**BADS_METHODS[method], **({} if steps is None else {"steps": steps})})


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
    likelihood: str | None = None,
    likelihood_kwargs: dict | None = None,
    hidden: tuple[int, ...] | None = None,
    **bads_run_options: object,
) -> MethodResult:
    """Run ``method`` (one of :data:`METHODS`) on ``problem``. Each family takes its settings from
    its own config (``bads_config``: the base the BADS method's own fields go on, see
    :func:`method_config`; ``l2rw_config``, ``mwn_config``, ``sgd_config``); ``steps`` overrides their
    ``steps``. ``likelihood`` (a name, ``module:Class`` or ``file.py:Class``, with
    ``likelihood_kwargs``; default: the problem's, :func:`~pyrodps.models.problem.default_likelihood`)
    is the same for every method, and so is ``hidden`` (the MLP's layer widths for vector inputs; ``()``:
    a linear model; default: each config's own). ``bads_run_options`` go to :func:`~pyrodps.bads.fit.fit_bads`
    (``checkpoint_dir``, ``checkpoint_every``, ``guard``, ``memory_budget``); the other methods are
    short and restart from scratch."""
    check_choice("method", method, METHODS)
    if problem.task == "sequence" and method in SEQUENCE_UNSUPPORTED:
        raise ValidationError("method", f"{method!r} does not handle sequence problems (a language model's token "
                              f"sequences): {SEQUENCE_UNSUPPORTED[method]}; use a BADS method, {' or '.join(BLO_METHODS)}, or one of "
                              f"{', '.join(m for m in NAIVE_METHODS if m not in SEQUENCE_UNSUPPORTED)}")
    start = time.perf_counter()
    lik = None if likelihood is None else {"likelihood": likelihood, "likelihood_kwargs": dict(likelihood_kwargs or {})}
    net = {} if hidden is None else {"hidden": tuple(hidden)}
    overrides = {**net, **({} if steps is None else {"steps": steps})}  # what every baseline config takes
    if method in BADS_METHODS:
        config = method_config(method, bads_config, steps)
        if lik is not None or net:
            config = replace(config, **(lik or {}), **net)
        fit = fit_bads(problem, config, seed=seed, progress=progress, **bads_run_options)
        return MethodResult(method, seed, config.steps, time.perf_counter() - start, fit.test_probs,
                            fit.accuracy_trace, fit.weight_mean, fit.weight_std, fit.config.to_dict(), fit=fit)
    piece = default_likelihood(problem) if lik is None else \
        make_likelihood(likelihood, num_classes=problem.num_classes, **lik["likelihood_kwargs"])
    if method in CLEANLAB_METHODS:
        base = sgd_config or SGDConfig()
        sgd = replace(base, **overrides).resolved(problem)  # recorded as run, network width included
        cl_config = CleanlabConfig(oof_model=CLEANLAB_METHODS[method], steps=sgd.steps)
        cl = fit_cleanlab(problem, cl_config, seed=seed, progress=progress, likelihood=piece, sgd_config=sgd)
        return MethodResult(method, seed, cl_config.steps, time.perf_counter() - start, cl.test_probs,
                            cl.accuracy_trace, cl.weight_mean, np.zeros_like(cl.weight_mean),
                            {**cl.config, **sgd.to_dict(), "oof_seconds": cl.oof_seconds, "flagged": int(cl.issues.sum())})
    if method in BLO_METHODS:
        if method == "l2rw":
            blo_config, fit_blo = l2rw_config or L2RWConfig(), fit_l2rw
        else:
            blo_config, fit_blo = mwn_config or MWNConfig(), fit_mwn
        blo_config = replace(blo_config, **overrides)
        blo_config.validate()
        blo_fit: BLOFit = fit_blo(problem, blo_config, seed=seed, progress=progress, likelihood=piece)
        wall = time.perf_counter() - start
        return MethodResult(method, seed, blo_config.steps, wall, blo_fit.test_probs,
                            blo_fit.accuracy_trace, blo_fit.weight_mean, blo_fit.weight_std,
                            blo_fit.config)
    config = sgd_config or SGDConfig()
    config = replace(config, **overrides)
    config.validate()
    config = config.resolved(problem)
    fit = fit_sgd(problem, config, seed=seed, method=method, keep_fraction=keep_fraction, progress=progress,
                  likelihood=piece)
    weights = None if fit.example_weights is None else fit.example_weights[: problem.num_train]  # train first
    return MethodResult(method, seed, config.steps, time.perf_counter() - start, fit.test_probs, fit.accuracy_trace,
                        weight_mean=weights, weight_std=None if weights is None else np.zeros_like(weights),
                        config={**config.to_dict(), "keep_fraction": keep_fraction if method == "random-select" else None})
