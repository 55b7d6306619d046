"""pyrodps' samplers against Pyro's NUTS: ``--parts logistic,joint`` (default both).

**logistic**: the generic SGLD on Bayesian logistic regression (digits 3 vs 8, 4 PCA features
plus an intercept, 100 points, prior N(0, I)): both posteriors' summaries and the comparison.

SGLD: full batch, constant step η = 0.2 in the Laplace-whitened coordinates, 4 chains x 15,000 steps
(burn-in 500, thin 5), and 4 x 7,500 steps at 2η for the Richardson estimate of the O(η) mean bias.
NUTS: ``pyro.infer.MCMC(NUTS(model))``, 4 chains x (300 warm-up + 800 draws). Tolerances and the
step-bias allowance: :mod:`pyrodps.crosscheck.nuts`. Targets: means within 0.1
posterior sd, sds within 20 %. Results at the top level of the JSON.

**joint**: ``BADSKernel`` against NUTS on ``BADSModel.pyro_model`` (full batch), the problem and the
tolerances of :mod:`pyrodps.crosscheck.joint`: SGLD with table weights (and a Richardson
run at (2η, 2ε)), pSGLD (RMSprop α = 0.99), the weight network, minibatches 8/24 and 2/6 at η and
2η, and the power check (the sampler's ρ_m doubled: must fail). Results under the ``joint`` key.
A part not run keeps its previous results in the JSON.

    python benchmarks/nuts_crosscheck.py [--parts logistic,joint] [--out benchmarks/results/nuts_crosscheck.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyrodps.app.runner import machine_description
from pyrodps.crosscheck.joint import joint_crosscheck
from pyrodps.crosscheck.nuts import crosscheck, digits_logistic_regression
from pyrodps.io import write_json

SETTINGS = {"num_points": 100, "num_components": 4, "classes": [3, 8], "prior_scale": 1.0, "step_size": 0.2,
            "sgld_steps": 15_000, "burn_in": 500, "thin": 5, "nuts_samples": 800, "nuts_warmup": 300, "chains": 4,
            "seed": 0, "alpha": 0.01}
TARGET_MEAN_ERROR = 0.1  # in posterior sd
TARGET_SD_RATIO = 0.2


def as_json(value):
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.floating):
        return float(value)
    return value


def run_logistic() -> dict:
    """The logistic-regression part: prints its table, returns its top-level JSON keys."""
    s = SETTINGS
    problem = digits_logistic_regression(s["num_points"], s["num_components"], tuple(s["classes"]), s["seed"], s["prior_scale"])
    out = crosscheck(problem, step_size=s["step_size"], sgld_steps=s["sgld_steps"], burn_in=s["burn_in"],
                     nuts_samples=s["nuts_samples"], nuts_warmup=s["nuts_warmup"], chains=s["chains"], seed=s["seed"],
                     alpha=s["alpha"])
    c = out["comparison"]
    sd = out["nuts"]["sd"]
    names = ["intercept", *(f"pc{k + 1}" for k in range(problem.dim - 1))]
    bias_sd, bias_se_sd = out["richardson_bias"] / sd, out["richardson_se"] / sd
    summary = {
        "max_mean_error_sd": float(c["mean_error"].max()),
        "max_mean_tolerance_sd": float(c["mean_tolerance"].max()),
        "sd_ratio_min": float(c["sd_ratio"].min()),
        "sd_ratio_max": float(c["sd_ratio"].max()),
        "max_sd_tolerance": float(c["sd_tolerance"].max()),
        "max_richardson_bias_sd": float(np.abs(bias_sd).max()),
        "within_derived_tolerances": bool(np.all(c["mean_error"] <= c["mean_tolerance"])
                                          and np.all(np.abs(c["sd_ratio"] - 1) <= c["sd_tolerance"])),
        "tolerances_resolve_targets": bool(np.all(c["mean_tolerance"] <= TARGET_MEAN_ERROR)
                                           and np.all(c["sd_tolerance"] <= TARGET_SD_RATIO)),
        "meets_targets": bool(np.all(c["mean_error"] <= TARGET_MEAN_ERROR)
                              and np.all(np.abs(c["sd_ratio"] - 1) <= TARGET_SD_RATIO)),
    }
    print(f"{'coef':<10}{'NUTS mean':>10}{'SGLD mean':>10}{'NUTS sd':>9}{'SGLD sd':>9}{'|dm|/sd':>9}{'tol':>7}"
          f"{'sd ratio':>9}{'tol':>7}{'ESS N':>7}{'ESS S':>7}{'bias(η)/sd':>12}")
    for k, name in enumerate(names):
        n, g = out["nuts"], out["sgld"]
        print(f"{name:<10}{n['mean'][k]:>10.4f}{g['mean'][k]:>10.4f}{n['sd'][k]:>9.4f}{g['sd'][k]:>9.4f}"
              f"{c['mean_error'][k]:>9.4f}{c['mean_tolerance'][k]:>7.3f}{c['sd_ratio'][k]:>9.4f}{c['sd_tolerance'][k]:>7.3f}"
              f"{n['ess_bulk'][k]:>7.0f}{g['ess_bulk'][k]:>7.0f}{bias_sd[k]:>+8.4f}±{bias_se_sd[k]:.3f}")
    print(f"z = {c['z']:.3f} (Bonferroni, alpha {s['alpha']} over {2 * problem.dim} comparisons); "
          f"sd allowance r - 1 = {c['sd_inflation'] - 1:.4f}")
    print(f"max |dmean|/sd = {summary['max_mean_error_sd']:.4f} (target {TARGET_MEAN_ERROR}); sd ratio in "
          f"[{summary['sd_ratio_min']:.4f}, {summary['sd_ratio_max']:.4f}] (target ±{TARGET_SD_RATIO:.0%}); "
          f"within derived tolerances: {summary['within_derived_tolerances']}")
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in out["seconds"].items()))
    return {"settings": s, "coefficients": names, "targets": {"mean_error_sd": TARGET_MEAN_ERROR,
            "sd_ratio": TARGET_SD_RATIO}, "summary": summary, "richardson_bias_sd": bias_sd,
            "richardson_se_sd": bias_se_sd, **out}


def run_joint() -> dict:
    """The joint part: prints its table, returns the ``joint`` JSON value."""
    start = time.perf_counter()
    out = joint_crosscheck()
    out["seconds"]["total"] = time.perf_counter() - start
    for name, ref in out["nuts"].items():
        print(f"NUTS ({name}): bulk ESS min {min(ref['ess_bulk']):.0f}, R-hat max {max(ref['rhat']):.3f}")
    print(f"{'variant':<22}{'θ |dm|/sd':>10}{'w |dm|/sd':>10}{'mean tol':>13}{'sd ratio':>13}{'sd tol':>8}"
          f"{'r - 1':>7}{'ESS min':>8}{'passed':>7}")
    for name, v in out["variants"].items():
        h = v["summary"]
        print(f"{name:<22}{h['theta_max_mean_error_sd']:>10.3f}{h['w_max_mean_error_sd']:>10.3f}"
              f"{h['mean_tolerance_range'][0]:>7.3f}-{h['mean_tolerance_range'][1]:.3f}"
              f"{h['sd_ratio_range'][0]:>7.3f}-{h['sd_ratio_range'][1]:.3f}{h['max_sd_tolerance']:>8.3f}"
              f"{h['max_sd_allowance']:>7.3f}{min(v['sampler']['ess_bulk']):>8.0f}{h['passed']!s:>7}")
    ri = out["richardson"]
    print(f"Richardson (2η, 2ε) - (η, ε): max |Δmean|/sd {np.abs(ri['mean']).max():.3f}, max |Δsd|/sd "
          f"{np.abs(ri['sd']).max():.3f}; within z x MC error (z = {out['z']:.2f}): {ri['within_mc_error']}")
    for name in ("minibatch", "minibatch_double_step"):
        h = out["variants"][name]["summary"]
        print(f"{name}: extra over the full batch at the same steps: max |Δmean|/sd {h['extra_max_mean_sd']:.3f}, "
              f"max |Δsd|/sd {h['extra_max_sd']:.3f}")
    h = out["variants"]["psgld"]["summary"]
    print(f"pSGLD: first-order Γ tilt max {h['max_gamma_tilt_sd']:.4f} sd (bound sd(log det G) "
          f"{h['gamma_tilt_bound_sd']:.4f})")
    ok = all(v["summary"]["passed"] for n, v in out["variants"].items() if n != "power")
    print(f"joint: variants within derived tolerances: {ok}; power check (sampler's ρ_m x 2) fails: "
          f"{not out['variants']['power']['summary']['passed']}")
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in out["seconds"].items()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/nuts_crosscheck.json"))
    ap.add_argument("--parts", default="logistic,joint", help="comma-separated: logistic, joint")
    args = ap.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - {"logistic", "joint"}
    if unknown or not parts:
        ap.error(f"--parts takes logistic and/or joint, got {args.parts!r}")
    torch.set_num_threads(1)
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result.update({"benchmark": "nuts_crosscheck", "machine": machine_description()})
    if "logistic" in parts:
        result.update(as_json(run_logistic()))
    if "joint" in parts:
        result["joint"] = as_json(run_joint())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
