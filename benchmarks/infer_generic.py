"""The generic SG-MCMC interface (:mod:`pyrodps.infer`, issue #16) measured against references.

Parts (``--parts``, comma-separated):

* ``nuts``: Bayesian logistic regression on two digit classes (4 principal components and an intercept,
  :func:`pyrodps.crosscheck.nuts.digits_logistic_regression`), subsampled ``B = N/10``, sampled by
  ``MCMC(SGLD(model))`` at its defaults, against Pyro's NUTS on the full batch. Per coordinate:
  ``|Δmean| / sd`` and the sd ratio, with the tolerances of
  :func:`pyrodps.crosscheck.nuts.compare_posteriors` (z times the combined Monte Carlo standard errors).
* ``hierarchical``: the Seattle temperatures model of ``examples/sgmcmc_hierarchical.py`` (120 days, a local
  level per day, 12 days per step; a global mean and two ``HalfCauchy`` scales), written centred and with
  offsets (the same posterior of the globals), each against NUTS on the full centred model, compared as
  ``nuts`` is.
* ``door``: the BADS model's Pyro program (:meth:`pyrodps.models.BADSModel.pyro_model`) sampled by the
  generic interface against the BADS kernel, on a small full-batch problem (digits, 60 training points
  with 40 % flipped labels, 20 meta points, a linear network, T = 0.1): per-point weight means, their
  difference in units of the combined MCSE.
* ``overhead``: one step of the generic interface on the BADS program against one step of the fused BADS
  kernel, on the default digits MLP (batch 128), interleaved, and where the generic step's time goes.

    OMP_NUM_THREADS=1 python benchmarks/infer_generic.py [--parts nuts,hierarchical,door,overhead] [--out benchmarks/results/infer_generic.json]
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
from pyrodps.io import write_json


def door(steps: int = 60_000, seed: int = 0) -> dict:
    """Weight means of the BADS kernel and of the generic SGLD on the same model, full batch."""
    import xarray as xr
    from pyro.infer.autoguide.initialization import init_to_value
    from torch import nn

    from pyrodps import BADSConfig, fit_bads, make_scenario
    from pyrodps.bads.build import build
    from pyrodps.diagnostics.arviz_adapter import convergence_statistics
    from pyrodps.infer import MCMC, SGLD

    problem = make_scenario("digits-label-noise", seed=seed, noise_rate=0.4)
    problem = problem.train_subset(np.arange(60))
    problem.x_meta, problem.y_meta = problem.x_meta[:20], problem.y_meta[:20]
    config = BADSConfig(steps=steps, batch_size=60, meta_batch_size=20, thin=10, track_weights=60, chains=2)
    torch.manual_seed(seed)
    net = nn.Linear(problem.x_train.shape[1], problem.num_classes)
    t0 = time.perf_counter()
    fit = fit_bads(problem, config, seed=seed, net=net, progress=False)
    t_kernel = time.perf_counter() - t0
    w_kernel = fit.tracked["w"]  # (chains, draws, 60)
    setup = build(problem, config, seed=seed, net=nn.Linear(problem.x_train.shape[1], problem.num_classes))
    model = setup.model
    torch.manual_seed(seed)
    theta0 = model.initial_theta()
    kernel = SGLD(model.pyro_model, temperature=setup.config.temperature,
                  init_strategy=init_to_value(values={"theta": theta0, "u": torch.zeros(60)}))
    t0 = time.perf_counter()
    mcmc = MCMC(kernel, num_samples=steps // 20, warmup_steps=steps // 2, thinning=10, num_chains=2,
                progress=False).run(setup.data, subsample_sizes=(60, 20))
    t_generic = time.perf_counter() - t0
    w_generic = torch.sigmoid(mcmc.get_samples(group_by_chain=True)["u"]).double().numpy()

    def summary(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        stats = convergence_statistics(xr.Dataset({"w": (("chain", "draw", "point"), w)}), statistics=("mcse_mean",))
        return w.mean(axis=(0, 1)), stats["mcse_mean"]["w"].values

    (m_k, se_k), (m_g, se_g) = summary(w_kernel), summary(w_generic)
    z = np.abs(m_k - m_g) / np.hypot(se_k, se_g)
    return {"num_points": 60, "steps": steps, "kernel_seconds": t_kernel, "generic_seconds": t_generic,
            "max_abs_difference": float(np.abs(m_k - m_g).max()), "z": z.tolist(),
            "fraction_within_3_mcse": float((z <= 3).mean()), "max_z": float(z.max()),
            "corr": float(np.corrcoef(m_k, m_g)[0, 1]), "kernel_mean": m_k.tolist(), "generic_mean": m_g.tolist()}


def _compare(sgld_draws: np.ndarray, nuts_draws: np.ndarray, names: list[str]) -> dict:
    """Per coordinate (draws ``(chains, draws, k)``): ``|Δmean| / sd_NUTS`` and its MCSE tolerance, the sd
    ratio and its tolerance (:func:`pyrodps.crosscheck.nuts.compare_posteriors`, step-size allowance 0)."""
    from pyrodps.crosscheck.nuts import compare_posteriors, summarise

    sg, nu = summarise(sgld_draws), summarise(nuts_draws)
    c = compare_posteriors(sg, nu, step_size=0.0)
    return {"names": names, "mean_error_sd": c["mean_error"].tolist(), "mean_tolerance_sd": c["mean_tolerance"].tolist(),
            "sd_ratio": c["sd_ratio"].tolist(), "sd_tolerance": c["sd_tolerance"].tolist(),
            "ess_sgld": sg["ess_bulk"].tolist(), "ess_nuts": nu["ess_bulk"].tolist(),
            "within_0.1_sd": bool((c["mean_error"] <= 0.1).all()),
            "within_tolerance": bool((c["mean_error"] <= c["mean_tolerance"]).all()
                                     and (np.abs(c["sd_ratio"] - 1) <= c["sd_tolerance"]).all()),
            "sd_within_20pct": bool((np.abs(c["sd_ratio"] - 1) <= 0.2).all())}


def nuts(samples: int = 40_000, warmup: int = 2000, seed: int = 0) -> dict:
    """SGLD on the subsampled logistic regression against NUTS on the full batch (module docstring)."""
    import pyro
    import pyro.distributions as dist

    from pyrodps.crosscheck.nuts import digits_logistic_regression, run_nuts
    from pyrodps.infer import MCMC, SGLD

    out = {}
    problem = digits_logistic_regression(num_points=300, num_components=4)
    x, y = problem.x.float(), problem.y.float()

    def logistic(x, y, batch):
        beta = pyro.sample("beta", dist.Normal(0.0, problem.prior_scale).expand([x.shape[1]]).to_event(1))
        with pyro.plate("data", x.shape[0], subsample_size=batch) as idx:
            pyro.sample("y", dist.Bernoulli(logits=x[idx] @ beta), obs=y[idx])

    t0 = time.perf_counter()
    mcmc = MCMC(SGLD(logistic), num_samples=samples, warmup_steps=warmup, num_chains=2, seed=seed,
                progress=False).run(x, y, x.shape[0] // 10)
    t_sgld = time.perf_counter() - t0
    t0 = time.perf_counter()
    nuts_draws = run_nuts(problem, num_samples=1000, warmup=300, chains=2, seed=seed)
    t_nuts = time.perf_counter() - t0
    out["logistic"] = {"num_points": int(x.shape[0]), "batch": int(x.shape[0]) // 10, "sgld_seconds": t_sgld,
                       "nuts_seconds": t_nuts,
                       **_compare(mcmc.get_samples(group_by_chain=True)["beta"].double().numpy(), nuts_draws,
                                  [f"beta[{k}]" for k in range(x.shape[1])])}
    return out


def hierarchical(samples: int = 60_000, warmup: int = 15_000, seed: int = 0,
                 forms: tuple[str, ...] = ("centred", "offset")) -> dict:
    """The hierarchical model of ``examples/sgmcmc_hierarchical.py`` on 120 days (12 per step) against
    NUTS on the full (centred) model, on the global sites; written centred (the example's ``model``) and
    with offsets (``offset_model``: the same posterior of the globals)."""
    import pyro
    from pyro.infer import MCMC as PyroMCMC
    from pyro.infer import NUTS

    from pyrodps.infer import MCMC, SGLD

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from sgmcmc_hierarchical import data, model, offset_model

    names = ["mu", "tau", "sigma"]
    temps = data()[:120]
    runs = []
    t0 = time.perf_counter()
    for chain in range(2):
        pyro.set_rng_seed(seed + chain)
        full = PyroMCMC(NUTS(model), num_samples=1000, warmup_steps=300, disable_progbar=True)
        full.run(temps, temps.shape[0])
        s = full.get_samples()
        runs.append(np.stack([s[k].double().numpy() for k in names], -1))
    t_nuts = time.perf_counter() - t0
    nuts_draws = np.stack(runs)
    out = {"days": int(temps.shape[0]), "days_per_step": 12, "sgld_steps": warmup + samples, "nuts_seconds": t_nuts,
           "nuts_mean": nuts_draws.reshape(-1, 3).mean(0).tolist()}
    for form, fn in [(f, {"centred": model, "offset": offset_model}[f]) for f in forms]:
        t0 = time.perf_counter()
        mcmc = MCMC(SGLD(fn), num_samples=samples, warmup_steps=warmup, num_chains=2, seed=seed,
                    progress=False).run(temps, 12)
        draws = mcmc.get_samples(group_by_chain=True)
        sgld = np.stack([draws[k].double().numpy() for k in names], -1)
        out[form] = {"sgld_seconds": time.perf_counter() - t0, "nuts_seconds": t_nuts, **_compare(sgld, nuts_draws, names),
                     "sgld_mean": sgld.reshape(-1, 3).mean(0).tolist()}
    return out


class _Stepper:
    """One kernel, its state and its batches; ``step()`` advances one step."""

    def __init__(self, kernel, batches) -> None:
        self.kernel, self.batches = kernel, batches
        self.state = kernel.init(0)

    def step(self) -> None:
        self.state, _ = self.kernel.step(self.state, self.batches.next(), False)


def overhead(steps: int = 400) -> dict:
    """Median step times, interleaved: the fused BADS kernel and the generic SGLD on the same program."""
    from benchmarks.step_cost import interleaved_medians
    from pyrodps import BADSConfig, make_scenario
    from pyrodps.bads.build import build
    from pyrodps.infer import SGLD
    from pyrodps.models import MinibatchStream

    problem = make_scenario("digits-label-noise", seed=0)
    setup = build(problem, BADSConfig(), seed=0)
    cfg, model, data = setup.config, setup.model, setup.data
    fused = _Stepper(setup.kernel, MinibatchStream(data, cfg.batch_size, cfg.meta_batch_size,
                                                   torch.Generator().manual_seed(1)))
    from pyro.infer.autoguide.initialization import init_to_value

    # timed in the Langevin part of a long warm-up (the step's cost is the same after it)
    generic_kernel = SGLD(model.pyro_model, temperature=cfg.temperature, mode_fraction=1e-4,
                          init_strategy=init_to_value(values={"theta": model.initial_theta()}))
    generic_kernel.setup((data,), {"subsample_sizes": (cfg.batch_size, cfg.meta_batch_size)}, warmup_steps=10**6)
    generic = _Stepper(generic_kernel, generic_kernel.make_batches(torch.Generator().manual_seed(1)))
    for _ in range(150):  # past the mode-finding phase, into Langevin steps
        generic.step()
    times = interleaved_medians({"fused": fused, "generic": generic}, steps)
    # where the generic step's time goes: the Pyro trace (model + log_prob_sum), the backward pass, the rest
    program, state = generic_kernel.program, generic.state
    parts = {"trace": [], "backward": []}
    for _ in range(60):
        batch = generic.batches.next()
        z = state.z.detach().requires_grad_(True)
        local = {s.name: state.tables[s.name].index_select(s.dim, batch[s.plate]).requires_grad_(True)
                 for s in program.locals}
        t0 = time.perf_counter()
        views = program.global_values(z)
        log_p, _ = program.log_density(views, local, batch)
        t1 = time.perf_counter()
        torch.autograd.grad(log_p, [z, *local.values()])
        t2 = time.perf_counter()
        parts["trace"].append(t1 - t0)
        parts["backward"].append(t2 - t1)
    trace, backward = (float(np.median(parts[k])) for k in ("trace", "backward"))
    return {"batch_size": cfg.batch_size, "meta_batch_size": cfg.meta_batch_size, "theta_size": model.layout.size,
            "fused_ms": times["fused"] * 1e3, "generic_ms": times["generic"] * 1e3,
            "ratio": times["generic"] / times["fused"], "generic_trace_ms": trace * 1e3,
            "generic_backward_ms": backward * 1e3,
            "generic_update_ms": (times["generic"] - trace - backward) * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="nuts,hierarchical,door,overhead")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/infer_generic.json"))
    ap.add_argument("--hierarchical-samples", type=int, default=60_000,
                    help="draws per chain of the hierarchical part; other than 60,000 the result is kept under "
                         "'hierarchical_<samples>'")
    ap.add_argument("--hierarchical-forms", default="centred,offset")
    args = ap.parse_args()
    # the parts not run keep their last results
    out = json.loads(args.out.read_text()) if args.out.exists() else {}
    out.update({"benchmark": "infer_generic", "machine": machine_description()})
    parts = args.parts.split(",")
    if not set(args.hierarchical_forms.split(",")) <= {"centred", "offset"}:
        ap.error(f"--hierarchical-forms: 'centred', 'offset' or both, got {args.hierarchical_forms!r}")
    if "nuts" in parts or "hierarchical" in parts:
        n = out.setdefault("nuts", {})
        if "nuts" in parts:
            n.update(nuts())
        if "hierarchical" in parts:
            key = "hierarchical" if args.hierarchical_samples == 60_000 else f"hierarchical_{args.hierarchical_samples}"
            n[key] = hierarchical(args.hierarchical_samples, forms=tuple(args.hierarchical_forms.split(",")))
        for name, r in [(k, v) for k, v in n.items() if k == "logistic"] + [
                (f"{key} ({form})", n[key][form]) for key in n if key.startswith("hierarchical")
                for form in ("centred", "offset") if form in n[key]]:
            print(f"{name}: |Δmean|/sd {np.round(r['mean_error_sd'], 3).tolist()} (tolerance "
                  f"{np.round(r['mean_tolerance_sd'], 3).tolist()}), sd ratio {np.round(r['sd_ratio'], 3).tolist()}; "
                  f"within 0.1 sd: {r['within_0.1_sd']}, sds within 20 %: {r['sd_within_20pct']}; "
                  f"SGLD {r['sgld_seconds']:.0f} s, NUTS {r['nuts_seconds']:.0f} s")
    if "door" in parts:
        out["door"] = d = door()
        print(f"door: {d['fraction_within_3_mcse']:.0%} of the 60 weight means within 3 MCSE (max z {d['max_z']:.2f}, "
              f"max |Δ| {d['max_abs_difference']:.3f}, corr {d['corr']:.3f}); kernel {d['kernel_seconds']:.0f} s, "
              f"generic {d['generic_seconds']:.0f} s")
    if "overhead" in parts:
        out["overhead"] = o = overhead()
        print(f"overhead: generic {o['generic_ms']:.2f} ms vs fused {o['fused_ms']:.2f} ms per step: "
              f"{o['ratio']:.2f}x (target <= 1.5x: {'met' if o['ratio'] <= 1.5 else 'MISSED'}); generic = Pyro trace "
              f"{o['generic_trace_ms']:.2f} + backward {o['generic_backward_ms']:.2f} + updates {o['generic_update_ms']:.2f} ms")
    write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
