"""The convergence verdict of a BADS run, judged where a network's posterior lets it be judged.

Chains of a network's posterior started apart settle in different modes, and no SGLD-type sampler
moves between them: pooled R-hat on θ (its norm, its projections) and on anything that depends on
which mode a chain sits in then reads "not converged" however long the run. The verdict is
therefore split (thresholds: :class:`~pyrodps.diagnostics.convergence.ConvergenceThresholds`):

**Function space (the verdict).**

* *Within each chain k* (stationarity): on ``train_nll``, ``meta_nll``, the per-draw
  ``test_accuracy`` and ``energy``, the rank-normalised split ``R̂_k`` of chain k alone (its first and
  second halves stand as two chains, ArviZ splits each again) ``< max_rhat`` and the bulk ESS of
  chain k alone ``>= min_ess_bulk_per_chain``; and the fraction of tracked weights ``w_i`` that meet
  both ``>= min_weight_pass_fraction``.
* *Across chains* (agreement on what the user acts on; with one chain: not assessed, the verdict
  rests on the within-chain part): the fraction of tracked weights whose pooled rank-normalised
  split ``R̂ < max_rhat_across`` is ``>= min_weight_pass_fraction``; for every pair of chains
  ``(j, k)`` the Spearman correlation ``ρ(w̄_j, w̄_k) >= min_weight_rank_correlation``, with
  ``w̄_k ∈ R^N`` chain k's posterior-mean weight of every training point; the spread
  ``max_k A_k - min_k A_k <= max_auroc_spread`` of the per-chain selection AUROC
  ``A_k = AUROC(-w̄_k, corrupted)`` (only when the ground-truth mask holds both classes); and the
  spread of the per-chain posterior-predictive test accuracy ``<= max_accuracy_spread``.

The function-space verdict passes when there is at least one within-chain check and every check it
could compute passes; a check that cannot be computed (absent input, one chain) is listed under
``not_assessed`` with the reason. A statistic that is undefined (constant draws, a chain too short
to split) fails its check.

**Parameter space (reported, never the verdict).** Pooled R-hat and ESS of ``param_norm`` and each
``theta_projection``, with per-chain means, and :data:`PARAMETER_SPACE_EXPLANATION`.

The pooled per-quantity table of :func:`~pyrodps.diagnostics.convergence.diagnose` is kept in the
report as well. :func:`assess_convergence` is pure (Datasets and arrays in, report out);
:mod:`pyrodps.diagnostics.run_verdict` feeds it from a fit or from a run folder.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import xarray as xr
from scipy.stats import rankdata

from pyrodps.diagnostics.arviz_adapter import convergence_statistics
from pyrodps.diagnostics.convergence import (
    WEIGHT_VARIABLE,
    ConvergenceReport,
    ConvergenceThresholds,
    diagnose,
)
from pyrodps.diagnostics.metrics import selection_auroc
from pyrodps.errors import ValidationError

WITHIN, ACROSS = "within-chain", "across-chains"
WITHIN_CHAIN_SCALARS = (("posterior", "train_nll"), ("posterior", "meta_nll"), ("posterior", "test_accuracy"),
                        ("sample_stats", "energy"))
# a regression run's draws carry test_rmse where a classifier's carry test_accuracy
ALTERNATIVES = {"test_accuracy": "test_rmse"}
PARAMETER_SPACE = ("param_norm", "theta_projection")
PARAMETER_SPACE_EXPLANATION = (
    "The norm of θ and its fixed random projections measure mixing in parameter space. A neural "
    "network's posterior has many modes (permutations of hidden units, and genuinely different "
    "solutions); chains started from different initialisations settle in different ones and an SGLD "
    "sampler does not move between them, so these pooled R-hats are expected to be large. That is not "
    "a failure of what the run reports (weights and predictions are functions of θ, judged above), and "
    "these numbers are never part of the verdict.")
_SOURCE = "source_chain"
_OPS = {"<": lambda v, t: v < t, ">=": lambda v, t: v >= t, "<=": lambda v, t: v <= t}


def _clean(v: object) -> object:
    """JSON-ready: NaN/inf as ``None``, numpy scalars as Python ones, recursively."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@dataclass
class Check:
    """One check: ``value <comparison> threshold`` (a NaN value fails)."""

    name: str
    scope: str  # WITHIN or ACROSS
    chain: int | None
    value: float
    threshold: float
    comparison: str  # "<", ">=" or "<="
    quantity: str
    detail: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(math.isfinite(self.value) and _OPS[self.comparison](self.value, self.threshold))

    def describe(self) -> str:
        where = f"chain {self.chain}: " if self.chain is not None else ""
        value = "undefined" if not math.isfinite(self.value) else f"{self.value:.4g}"
        return f"{where}{self.name} = {value} (needs {self.comparison} {self.threshold:g})"

    def to_dict(self) -> dict:
        return _clean({"name": self.name, "scope": self.scope, "chain": self.chain, "quantity": self.quantity,
                       "value": float(self.value), "comparison": self.comparison, "threshold": float(self.threshold),
                       "passed": self.passed, "detail": self.detail})


@dataclass
class NotAssessed:
    """A check that could not be computed, and why."""

    name: str
    scope: str
    reason: str


@dataclass
class FunctionSpaceReport:
    """Within-chain and across-chain checks; see the module docstring."""

    chains: int
    thresholds: ConvergenceThresholds
    checks: list[Check] = field(default_factory=list)
    not_assessed: list[NotAssessed] = field(default_factory=list)
    chain_test_accuracy: list[float] | None = None
    chain_selection_auroc: list[float] | None = None
    rank_correlation: np.ndarray | None = None  # (chains, chains) Spearman ρ of the per-chain mean weights

    def scope(self, scope: str) -> list[Check]:
        return [c for c in self.checks if c.scope == scope]

    @property
    def within_passed(self) -> bool:
        return bool(self.scope(WITHIN)) and all(c.passed for c in self.scope(WITHIN))

    @property
    def across_passed(self) -> bool | None:
        """``None`` when no across-chain check could be computed."""
        checks = self.scope(ACROSS)
        return None if not checks else all(c.passed for c in checks)

    @property
    def passed(self) -> bool:
        return self.within_passed and self.across_passed is not False

    def failures(self) -> list[str]:
        return [c.describe() for c in self.checks if not c.passed]

    def verdict(self) -> str:
        t = self.thresholds
        within = f"within each chain split R-hat < {t.max_rhat:g} and bulk ESS >= {t.min_ess_bulk_per_chain:g}"
        if self.across_passed is None:
            why = "one chain" if self.chains == 1 else "inputs missing"
            across = f"across chains not assessed ({why}): the verdict rests on the within-chain checks"
        else:
            across = "the chains agree on the weights and the predictive"
            if self.not_assessed:
                across += f" ({len(self.not_assessed)} check(s) not assessed)"
        if self.passed:
            return f"CONVERGED in function space: {within}; {across}."
        failed = [c for c in self.checks if not c.passed]
        n_within = sum(c.scope == WITHIN for c in failed)
        tail = f"; {across}" if self.across_passed is None else ""
        if self.across_passed is not None and self.not_assessed:
            tail = f"; {len(self.not_assessed)} check(s) not assessed"
        return (f"NOT CONVERGED in function space: {len(failed)} of {len(self.checks)} checks fail "
                f"({n_within} within-chain, {len(failed) - n_within} across-chains){tail}.")

    def to_dict(self) -> dict:
        return _clean({
            "passed": self.passed,
            "verdict": self.verdict(),
            "within_chain": {"passed": self.within_passed},
            "across_chains": {"assessed": self.across_passed is not None, "passed": self.across_passed},
            "checks": [c.to_dict() for c in self.checks],
            "not_assessed": [asdict(n) for n in self.not_assessed],
            "chain_test_accuracy": self.chain_test_accuracy,
            "chain_selection_auroc": self.chain_selection_auroc,
            "weight_rank_correlation": None if self.rank_correlation is None else self.rank_correlation.tolist(),
        })


@dataclass
class ParameterSpaceReport:
    """Pooled R-hat and ESS of the θ summaries, per-chain means; never part of the verdict."""

    quantities: list[dict] = field(default_factory=list)  # name, rhat, ess_bulk, ess_tail, chain_means
    explanation: str = PARAMETER_SPACE_EXPLANATION

    def to_dict(self) -> dict:
        return _clean({"in_verdict": False, "explanation": self.explanation, "quantities": self.quantities})


@dataclass
class SplitConvergenceReport:
    """What :func:`assess_convergence` returns; ``passed`` is the function-space verdict."""

    chains: int
    draws: int
    thresholds: ConvergenceThresholds
    function_space: FunctionSpaceReport
    parameter_space: ParameterSpaceReport
    table: ConvergenceReport | None  # the pooled per-quantity table (None with fewer than 4 draws)

    @property
    def passed(self) -> bool:
        return self.function_space.passed

    def verdict(self) -> str:
        return self.function_space.verdict()

    def failures(self) -> list[str]:
        return self.function_space.failures()

    def to_dict(self) -> dict:
        table = None
        if self.table is not None:
            t = self.table.to_dict()
            table = {"note": "pooled over chains; reported, not the verdict",
                     **{k: t[k] for k in ("min_ess_bulk", "quantities", "weights")}}
        return {"passed": self.passed, "verdict": self.verdict(), "chains": self.chains, "draws": self.draws,
                "thresholds": asdict(self.thresholds), "function_space": self.function_space.to_dict(),
                "parameter_space": self.parameter_space.to_dict(), "pooled_table": table,
                "failures": self.failures()}


def per_chain_statistics(ds: xr.Dataset) -> tuple[xr.Dataset, xr.Dataset]:
    """Split R-hat and bulk ESS of every variable of ``ds`` for each chain alone, dims ``(chain, ...)``.

    R-hat of chain k: its first ``⌊D/2⌋`` and next ``⌊D/2⌋`` draws stand as two chains (rank-normalised
    split R-hat, so ArviZ splits each again); NaN with fewer than 8 draws. Bulk ESS of chain k: ArviZ's
    bulk ESS of that one chain; NaN with fewer than 4 draws. The chains are an extra dimension of one
    ArviZ call, not a loop."""
    draws = ds.sizes["draw"]
    src = ds.rename({"chain": _SOURCE})
    nan = xr.full_like(src.isel(draw=0, drop=True), np.nan, dtype=np.float64)
    back = lambda out: out.rename({_SOURCE: "chain"})
    if draws >= 4:
        ess = convergence_statistics(src.expand_dims(chain=[0]), statistics=("ess_bulk",))["ess_bulk"]
    else:
        ess = nan
    half = draws // 2
    if half >= 4:
        first = src.isel(draw=slice(0, half)).assign_coords(draw=np.arange(half))
        second = src.isel(draw=slice(half, 2 * half)).assign_coords(draw=np.arange(half))
        rhat = convergence_statistics(xr.concat([first, second], dim="chain"), statistics=("rhat",))["rhat"]
    else:
        rhat = nan
    return back(rhat), back(ess)


def _fraction_check(name: str, scope: str, chain: int | None, ok: np.ndarray, t: ConvergenceThresholds,
                    detail: dict) -> Check:
    frac = float(ok.mean()) if ok.size else float("nan")
    return Check(name, scope, chain, frac, t.min_weight_pass_fraction, ">=", WEIGHT_VARIABLE,
                 {"num_tracked": int(ok.size), "num_passed": int(ok.sum()), **detail})


def _median(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else float("nan")


def _within_chain(post: xr.Dataset, stats: xr.Dataset, report: FunctionSpaceReport) -> None:
    t = report.thresholds
    parts = {"posterior": post, "sample_stats": stats}
    names = []
    for grp, name in WITHIN_CHAIN_SCALARS:
        if name not in parts[grp] and ALTERNATIVES.get(name) in parts[grp]:
            name = ALTERNATIVES[name]
        if name in parts[grp]:
            names.append((grp, name))
        else:
            report.not_assessed.append(NotAssessed(name, WITHIN, f"{name!r} is not among the draws"))
    ds = xr.Dataset({name: parts[grp][name] for grp, name in names})
    if WEIGHT_VARIABLE in post and post.sizes.get("point", 0):
        ds[WEIGHT_VARIABLE] = post[WEIGHT_VARIABLE]
    else:
        report.not_assessed.append(NotAssessed(WEIGHT_VARIABLE, WITHIN, "no tracked weights among the draws"))
    if not ds.data_vars:
        return
    rhat, ess = per_chain_statistics(ds)
    for k in range(report.chains):
        for _, name in names:
            r, e = float(rhat[name].values[k]), float(ess[name].values[k])
            report.checks.append(Check(f"{name} split R-hat", WITHIN, k, r, t.max_rhat, "<", name))
            report.checks.append(Check(f"{name} bulk ESS", WITHIN, k, e, t.min_ess_bulk_per_chain, ">=", name))
        if WEIGHT_VARIABLE in ds:
            r, e = rhat[WEIGHT_VARIABLE].values[k], ess[WEIGHT_VARIABLE].values[k]
            with np.errstate(invalid="ignore"):
                ok = np.isfinite(r) & (r < t.max_rhat) & np.isfinite(e) & (e >= t.min_ess_bulk_per_chain)
            report.checks.append(_fraction_check(
                f"fraction of tracked weights with split R-hat < {t.max_rhat:g} and bulk ESS >= "
                f"{t.min_ess_bulk_per_chain:g}", WITHIN, k, ok, t,
                {"rhat_median": _median(r), "ess_bulk_median": _median(e)}))


def _across_chains(post: xr.Dataset, chain_mean: np.ndarray | None, corrupted: np.ndarray | None,
                   chain_accuracy: np.ndarray | None, report: FunctionSpaceReport) -> None:
    t, chains = report.thresholds, report.chains
    names = ("pooled weight R-hat", "weight rank correlation", "selection AUROC spread", "test accuracy spread")
    if chains < 2:
        report.not_assessed += [NotAssessed(n, ACROSS, "one chain: nothing to compare") for n in names]
        return
    if WEIGHT_VARIABLE in post and post.sizes.get("point", 0) and post.sizes["draw"] >= 4:
        r = convergence_statistics(post[[WEIGHT_VARIABLE]], statistics=("rhat",))["rhat"][WEIGHT_VARIABLE].values
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(r) & (r < t.max_rhat_across)
        report.checks.append(_fraction_check(f"fraction of tracked weights with pooled R-hat < {t.max_rhat_across:g}",
                                             ACROSS, None, ok, t, {"rhat_median": _median(r)}))
    else:
        report.not_assessed.append(NotAssessed(names[0], ACROSS, "no tracked weights, or fewer than 4 draws"))
    if chain_mean is None:
        reason = "no per-chain posterior-mean weights (weights.npz without chain_mean: an older run folder)"
        report.not_assessed += [NotAssessed(n, ACROSS, reason) for n in names[1:3]]
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = np.corrcoef(rankdata(chain_mean, axis=1))
        report.rank_correlation = rho
        for j in range(chains):
            for k in range(j + 1, chains):
                report.checks.append(Check("Spearman correlation of posterior-mean weights", ACROSS, None,
                                           float(rho[j, k]), t.min_weight_rank_correlation, ">=", WEIGHT_VARIABLE,
                                           {"chains": [j, k]}))
        mask = None if corrupted is None else np.asarray(corrupted, dtype=bool)
        if mask is None or mask.all() or not mask.any():
            report.not_assessed.append(NotAssessed(names[2], ACROSS, "no ground-truth corrupted mask with both classes"))
        else:
            auroc = [float(selection_auroc(m, mask)) for m in chain_mean]
            report.chain_selection_auroc = auroc
            report.checks.append(Check("selection AUROC spread (max - min over chains)", ACROSS, None,
                                       max(auroc) - min(auroc), t.max_auroc_spread, "<=", "selection_auroc",
                                       {"per_chain": auroc}))
    if chain_accuracy is None:
        report.not_assessed.append(NotAssessed(names[3], ACROSS, "no per-chain posterior-predictive accuracy "
                                               "(metrics.json without chain_test_accuracy: an older run folder)"))
    else:
        acc = [float(a) for a in chain_accuracy]
        report.chain_test_accuracy = acc
        report.checks.append(Check("test accuracy spread (max - min over chains)", ACROSS, None,
                                   max(acc) - min(acc), t.max_accuracy_spread, "<=", "test_accuracy",
                                   {"per_chain": acc}))


def _parameter_space(post: xr.Dataset, table: ConvergenceReport | None) -> ParameterSpaceReport:
    out = ParameterSpaceReport()
    if table is None:
        return out
    for q in table.quantities:
        base = q.name.split("[")[0]
        if base not in PARAMETER_SPACE:
            continue
        da = post[base]
        if "[" in q.name:
            dim = da.dims[-1]
            da = da.isel({dim: int(np.flatnonzero(da.coords[dim].values.astype(str) == q.name[:-1].split("[")[1])[0])})
        out.quantities.append({"name": q.name, "rhat": q.rhat, "ess_bulk": q.ess_bulk, "ess_tail": q.ess_tail,
                               "chain_means": [float(v) for v in da.mean("draw").values]})
    return out


def assess_convergence(posterior: xr.Dataset, sample_stats: xr.Dataset | None = None,
                       chain_mean: np.ndarray | None = None, corrupted: np.ndarray | None = None,
                       chain_accuracy: np.ndarray | list[float] | None = None,
                       thresholds: ConvergenceThresholds | None = None) -> SplitConvergenceReport:
    """The split verdict of the module docstring.

    ``posterior``/``sample_stats``: the ArviZ groups as Datasets (dims ``chain``, ``draw`` first);
    ``chain_mean``: ``(chains, N)`` posterior-mean weight of every training point per chain;
    ``corrupted``: ``(N,)`` ground-truth mask; ``chain_accuracy``: ``(chains,)`` test accuracy of
    each chain's posterior predictive. Any of the last four may be ``None`` (not assessed)."""
    thresholds = (thresholds or ConvergenceThresholds()).validate()
    for dim in ("chain", "draw"):
        if dim not in posterior.dims:
            raise ValidationError("posterior", f"has no {dim!r} dimension")
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    stats = sample_stats if sample_stats is not None else xr.Dataset()
    if chain_mean is not None:
        chain_mean = np.asarray(chain_mean, dtype=np.float64)
        if chain_mean.ndim != 2 or chain_mean.shape[0] != chains:
            raise ValidationError("chain_mean", f"must have shape ({chains}, N), got {chain_mean.shape}")
        if corrupted is not None and np.shape(corrupted) != chain_mean.shape[1:]:
            raise ValidationError("corrupted", f"must have shape {chain_mean.shape[1:]}, got {np.shape(corrupted)}")
    if chain_accuracy is not None and len(chain_accuracy) != chains:
        raise ValidationError("chain_accuracy", f"must hold {chains} values, got {len(chain_accuracy)}")
    fs = FunctionSpaceReport(chains, thresholds)
    _within_chain(posterior, stats, fs)
    _across_chains(posterior, chain_mean, corrupted, chain_accuracy, fs)
    table = diagnose(posterior, thresholds) if draws >= 4 else None
    return SplitConvergenceReport(chains, draws, thresholds, fs, _parameter_space(posterior, table), table)
