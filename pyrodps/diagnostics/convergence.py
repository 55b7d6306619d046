"""The per-quantity convergence table (:func:`diagnose`) and the thresholds of every verdict.

For every scalar quantity ``x`` of the ``posterior`` group (each element of a vector one, e.g.
``theta_projection[2]``, counts as a quantity) ArviZ gives the rank-normalised split R-hat, the bulk
and tail ESS and the Monte Carlo standard errors of the mean and sd
(:func:`~pyrodps.diagnostics.arviz_adapter.convergence_statistics`), **pooled over chains**. A quantity
meets the pooled thresholds when

    R̂ < max_rhat   and   ESS_bulk >= min_ess_bulk_per_chain × chains

(defaults 1.01 and 100, Vehtari et al. 2021). The weights ``w`` are many quantities: each tracked
point passes or not, and the **weight table** passes when the fraction of its points that pass is at
least ``min_weight_pass_fraction``. A quantity whose draws are constant within a chain has no R-hat
(NaN) and fails.

This pooled table is reported, but it is not the headline verdict of a BADS run: chains of a
network's posterior started apart settle in different modes, which pooled R-hat on θ-dependent
quantities reads as non-convergence. The headline is the function-space verdict of
:mod:`pyrodps.diagnostics.verdict` (within-chain stationarity and agreement across chains on the
weights and the predictive); :class:`ConvergenceThresholds` holds the thresholds of both.

With a single chain ArviZ computes no R-hat (it needs two chains); the chain is then cut into its two
halves, treated as two chains (ArviZ splits them again): a drift within the chain still shows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import xarray as xr

from pyrodps.diagnostics.arviz_adapter import STATISTICS, convergence_statistics, group
from pyrodps.errors import ValidationError, check_positive

WEIGHT_VARIABLE = "w"


@dataclass(frozen=True)
class ConvergenceThresholds:
    """What counts as converged (defaults in brackets).

    Within each chain (and for the pooled table): split ``R̂ < max_rhat`` [1.01] and bulk
    ``ESS >= min_ess_bulk_per_chain`` [100] per chain; at least ``min_weight_pass_fraction`` [0.9]
    of the tracked weights passing both. Across chains: pooled ``R̂ < max_rhat_across`` [1.05] for
    at least ``min_weight_pass_fraction`` of the tracked weights; Spearman correlation of the
    per-chain posterior-mean weights ``>= min_weight_rank_correlation`` [0.95] for every pair of
    chains; ``max - min`` of the per-chain selection AUROC ``<= max_auroc_spread`` [0.005] and of the
    per-chain posterior-predictive test accuracy ``<= max_accuracy_spread`` [0.01]."""

    max_rhat: float = 1.01
    min_ess_bulk_per_chain: float = 100.0
    min_weight_pass_fraction: float = 0.9
    max_rhat_across: float = 1.05
    min_weight_rank_correlation: float = 0.95
    max_auroc_spread: float = 0.005
    max_accuracy_spread: float = 0.01

    def validate(self) -> ConvergenceThresholds:
        for name in ("max_rhat", "max_rhat_across"):
            value = getattr(self, name)
            if check_positive(name, value) <= 1.0:
                raise ValidationError(name, f"must be > 1, got {value}")
        check_positive("min_ess_bulk_per_chain", self.min_ess_bulk_per_chain)
        if not 0.0 <= float(self.min_weight_pass_fraction) <= 1.0:
            raise ValidationError("min_weight_pass_fraction", f"must lie in [0, 1], got {self.min_weight_pass_fraction}")
        if not -1.0 <= float(self.min_weight_rank_correlation) <= 1.0:
            raise ValidationError("min_weight_rank_correlation",
                                  f"must lie in [-1, 1], got {self.min_weight_rank_correlation}")
        for name in ("max_auroc_spread", "max_accuracy_spread"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value >= 0.0):
                raise ValidationError(name, f"must be a finite number >= 0, got {value}")
        return self


@dataclass
class QuantityDiagnostics:
    """Statistics of one scalar quantity over all chains and draws."""

    name: str
    mean: float
    sd: float
    mcse_mean: float
    mcse_sd: float
    ess_bulk: float
    ess_tail: float
    rhat: float
    passed: bool
    reason: str  # "" when passed, else what failed


@dataclass
class WeightTableDiagnostics:
    """The tracked weights as one table: per-point R-hat and bulk ESS, and the fraction passing."""

    points: np.ndarray
    rhat: np.ndarray
    ess_bulk: np.ndarray
    point_passed: np.ndarray
    fraction_passed: float
    passed: bool

    def summary(self) -> dict:
        finite = lambda a: a[np.isfinite(a)]
        stat = lambda f, a: float(f(finite(a))) if finite(a).size else float("nan")
        return {
            "num_tracked": int(self.points.size),
            "fraction_passed": self.fraction_passed,
            "passed": self.passed,
            "rhat_median": stat(np.median, self.rhat),
            "rhat_max": stat(np.max, self.rhat),
            "ess_bulk_median": stat(np.median, self.ess_bulk),
            "ess_bulk_min": stat(np.min, self.ess_bulk),
            "num_rhat_undefined": int(np.sum(~np.isfinite(self.rhat))),
        }


@dataclass
class ConvergenceReport:
    """The verdict of :func:`diagnose`."""

    chains: int
    draws: int
    thresholds: ConvergenceThresholds
    quantities: list[QuantityDiagnostics] = field(default_factory=list)
    weights: WeightTableDiagnostics | None = None

    @property
    def min_ess_bulk(self) -> float:
        """The bulk ESS a quantity needs: ``min_ess_bulk_per_chain × chains``."""
        return self.thresholds.min_ess_bulk_per_chain * self.chains

    @property
    def passed(self) -> bool:
        return all(q.passed for q in self.quantities) and (self.weights is None or self.weights.passed)

    def failures(self) -> list[str]:
        """One line per failed quantity, and one for a failed weight table."""
        out = [f"{q.name}: {q.reason}" for q in self.quantities if not q.passed]
        if self.weights is not None and not self.weights.passed:
            out.append(f"w: {self.weights.fraction_passed:.1%} of {self.weights.points.size} tracked points pass, "
                       f"need {self.thresholds.min_weight_pass_fraction:.0%}")
        return out

    def verdict(self) -> str:
        """One sentence with the thresholds."""
        t = self.thresholds
        rule = (f"R-hat < {t.max_rhat:g} and bulk ESS >= {t.min_ess_bulk_per_chain:g} per chain "
                f"(= {self.min_ess_bulk:g} for {self.chains} chain{'s' if self.chains > 1 else ''})")
        if self.weights is not None:
            rule += f", and >= {t.min_weight_pass_fraction:.0%} of the tracked weights passing"
        if self.passed:
            return f"CONVERGED: every tracked quantity meets {rule}."
        return f"NOT CONVERGED: {len(self.failures())} check(s) fail {rule}."

    def to_dict(self) -> dict:
        """JSON-ready (NaN as ``None``)."""
        clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v
        return {
            "passed": self.passed,
            "verdict": self.verdict(),
            "chains": self.chains,
            "draws": self.draws,
            "thresholds": asdict(self.thresholds),
            "min_ess_bulk": self.min_ess_bulk,
            "quantities": [{k: clean(v) for k, v in asdict(q).items()} for q in self.quantities],
            "weights": None if self.weights is None else {k: clean(v) for k, v in self.weights.summary().items()},
            "failures": self.failures(),
        }


def _as_two_chains(ds: xr.Dataset) -> xr.Dataset:
    """One chain cut into halves that stand as two chains (ArviZ needs two for R-hat)."""
    half = ds.sizes["draw"] // 2
    first = ds.isel(chain=0, draw=slice(0, half)).assign_coords(draw=np.arange(half))
    second = ds.isel(chain=0, draw=slice(half, 2 * half)).assign_coords(draw=np.arange(half))
    return xr.concat([first, second], dim="chain").assign_coords(chain=[0, 1])


def _flat(ds: xr.Dataset, name: str) -> tuple[list[str], np.ndarray]:
    """Labels and values of every element of variable ``name`` after reducing ``(chain, draw)``."""
    da = ds[name]
    if da.ndim == 0:
        return [name], np.atleast_1d(da.values.astype(np.float64))
    dim = da.dims[0]
    labels = [f"{name}[{c}]" for c in da.coords[dim].values] if dim in da.coords else [f"{name}[{i}]" for i in range(da.size)]
    return labels, da.values.astype(np.float64).reshape(-1)


def _check(rhat: float, ess: float, t: ConvergenceThresholds, min_ess: float) -> str:
    problems = []
    if not math.isfinite(rhat):
        problems.append("R-hat undefined (constant draws)")
    elif rhat >= t.max_rhat:
        problems.append(f"R-hat {rhat:.3f} >= {t.max_rhat:g}")
    if not (math.isfinite(ess) and ess >= min_ess):
        problems.append(f"bulk ESS {ess:.0f} < {min_ess:g}")
    return "; ".join(problems)


def diagnose(data: object, thresholds: ConvergenceThresholds | None = None,
             var_names: list[str] | None = None) -> ConvergenceReport:
    """Diagnose the ``posterior`` group of ``data`` (``InferenceData``/``DataTree``, or the posterior
    ``Dataset`` itself) against ``thresholds``; ``var_names`` restricts the variables."""
    thresholds = (thresholds or ConvergenceThresholds()).validate()
    post = data if isinstance(data, xr.Dataset) else group(data, "posterior")
    for dim in ("chain", "draw"):
        if dim not in post.dims:
            raise ValidationError("posterior", f"has no {dim!r} dimension")
    names = list(post.data_vars) if var_names is None else list(var_names)
    for n in names:
        if n not in post:
            raise ValidationError("var_names", f"no variable {n!r} in the posterior")
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    if draws < 4:
        raise ValidationError("posterior", f"needs at least 4 draws per chain, got {draws}")
    post = post[names]
    # the weights are many: only R-hat and bulk ESS, which the verdict needs
    scalars = [n for n in names if n != WEIGHT_VARIABLE]
    stats = {k: xr.Dataset() for k in STATISTICS}
    for subset, which in ((scalars, STATISTICS), ([WEIGHT_VARIABLE] if WEIGHT_VARIABLE in names else [], ("rhat", "ess_bulk"))):
        if subset:
            part = post[subset]
            found = convergence_statistics(part, _as_two_chains(part) if chains == 1 else None, which)
            for k, v in found.items():
                stats[k] = stats[k].merge(v)
    report = ConvergenceReport(chains, draws, thresholds)
    min_ess = report.min_ess_bulk
    for name in names:
        labels, rhat = _flat(stats["rhat"], name)
        ess = _flat(stats["ess_bulk"], name)[1]
        if name == WEIGHT_VARIABLE:
            ok = np.array([_check(r, e, thresholds, min_ess) == "" for r, e in zip(rhat, ess)], dtype=bool)
            frac = float(ok.mean()) if ok.size else 0.0
            points = post[name].coords[post[name].dims[-1]].values
            report.weights = WeightTableDiagnostics(points, rhat, ess, ok, frac,
                                                    frac >= thresholds.min_weight_pass_fraction)
            continue
        da = post[name]
        mean = da.mean(("chain", "draw")).values.reshape(-1)
        sd = da.std(("chain", "draw"), ddof=1).values.reshape(-1)
        tail = _flat(stats["ess_tail"], name)[1]
        mc_mean = _flat(stats["mcse_mean"], name)[1]
        mc_sd = _flat(stats["mcse_sd"], name)[1]
        for k, label in enumerate(labels):
            reason = _check(float(rhat[k]), float(ess[k]), thresholds, min_ess)
            report.quantities.append(QuantityDiagnostics(
                label, float(mean[k]), float(sd[k]), float(mc_mean[k]), float(mc_sd[k]), float(ess[k]),
                float(tail[k]), float(rhat[k]), reason == "", reason))
    return report
