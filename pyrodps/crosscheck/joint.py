"""The joint BADS sampler (:class:`~pyrodps.inference.BADSKernel`) against Pyro's NUTS on
:meth:`BADSModel.pyro_model` itself.

**Problem** (:class:`JointProblem`, float64, one seeded generator). Two classes in 2-D centred at
``±s μ`` plus N(0, I) noise: ``N`` train points along ``μ_t = (1, 0)``, ``num_flipped`` of their labels
flipped; ``M`` meta points along ``μ_t`` rotated by ``meta_angle`` (a domain shift the meta term pulls
θ towards). ``nn.Linear(2, 2)``, ``Categorical(2)``, ``θ ~ N(0, σ_0² I)``, uniform ``p(w)``, ``T = 1``;
the amortised variant uses a :class:`WeightNet` on ``("input", "label")``.

**Samplers.** NUTS: ``MCMC(NUTS(model.pyro_model))`` on ``Batch.gather(data, arange(N), arange(M))``
(plates subsampled at the whole range: scale ``N/N = 1``), chains one after another. BADSKernel:
:func:`pyrodps.inference.sample` with ``MinibatchStream(data, B, B_m)`` (``B = N``, ``B_m = M``: full
batches). Compared: every coordinate of θ and every ``w_i`` (the table's ``sigmoid(u_i)``, or the
implied ``sigmoid(g_φ(h_i))`` of a weight network, from the φ draws).

**Tolerances** (:func:`compare_joint`), coordinate ``k``, NUTS-sd units, ArviZ MCSEs, Bonferroni
``z = Φ⁻¹(1 - α/(4K))`` over the ``2K`` comparisons:

    |Δmean_k| / sd_k     <= z sqrt(MCSE_S(mean)² + MCSE_N(mean)²) / sd_k
    |sd_S,k / sd_k - 1|  <= z sqrt(MCSE_S(sd)² + MCSE_N(sd)²) / sd_k + |r_k - 1|

**The O(step) allowance** ``r_k`` (:func:`linearised_sd_ratio`). At the mode ``x*`` of the energy
``U`` (``x = (θ, u)`` or ``(θ, φ)``, Hessian ``H``) a kernel step is, linearised,
``x' - x* = (I - ½ R D H)(x - x*) + R (D^½ ξ - ½ D ζ)``: ``D`` the steps (``η G`` for θ, φ with ``G``
pSGLD's preconditioner at the runs' end, or 1; ``ε`` for u); ``R`` the 0/1 diagonal of moved
coordinates (θ, φ always, ``u_i`` when ``i`` is in the batch: ``P = E[R]``, ``Π = E[r rᵀ]``, sampling
without replacement); ``ζ`` the θ/φ minibatch gradient noise, covariance ``C`` from per-example
gradients at ``x*``. The stationary covariance ``S`` solves

    ½ (P D H S + S H D P) - ¼ Π ∘ (D H S H D) = P D + ¼ D C D

and ``r_k = sqrt((J S Jᵀ)_kk / (J H⁻¹ Jᵀ)_kk)``, ``J`` the Jacobian of the compared coordinates. For a
Gaussian target this is the chain's exact stationary law: means unbiased, sds inflated by ``r``.
The non-Gaussian O(step) remainder is estimated by Richardson extrapolation, ``mean(2η) - mean(η)``.
With minibatches ``¼ D C D = η² C / 4`` adds variance growing like η relative to ``D``: the stated
minibatch allowance (an upper estimate: epoch-wise reshuffling anticorrelates successive batches).
pSGLD (RMSprop, the default preconditioner) drops the ``Γ`` term; :func:`gamma_tilt` measures what
that costs on this target, whose curvature varies with θ and w.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import pyro
import torch
from pyro.infer import MCMC, NUTS
from torch import nn

from pyrodps.bads.kernel import BADSKernel
from pyrodps.crosscheck.nuts import family_z, summarise
from pyrodps.models.bads import BADSModel
from pyrodps.models.data import Batch, MinibatchStream, SelectionData
from pyrodps.models.likelihoods import Categorical
from pyrodps.models.priors import IsotropicGaussian
from pyrodps.models.weight_net import WeightNet
from pyrodps.run import sample
from pyrodps.run.observers import Callback
from pyrodps.sgmcmc.integrators import RMSprop


@contextmanager
def float64() -> Iterator[None]:
    """``torch.float64`` as the default dtype (priors built from Python floats follow it)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@dataclass(frozen=True)
class JointProblem:
    """The check's posterior (module docstring); ``meta_angle`` in degrees, ``prior_scale`` is ``σ_0``."""

    num_train: int = 24
    num_meta: int = 6
    num_flipped: int = 4
    separation: float = 2.0
    meta_angle: float = 90.0
    rho_theta: float = 5.0
    rho_meta: float = 2.0
    prior_scale: float = 0.5
    weight_net_hidden: int = 4
    seed: int = 0

    def data(self) -> SelectionData:
        g = torch.Generator().manual_seed(self.seed)

        def draw(n: int, angle: float) -> tuple[torch.Tensor, torch.Tensor]:
            y = torch.arange(n) % 2
            mu = torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64)
            return torch.randn(n, 2, generator=g, dtype=torch.float64) + self.separation * (2.0 * y - 1.0)[:, None] * mu, y

        x_t, y_t = draw(self.num_train, 0.0)
        x_m, y_m = draw(self.num_meta, math.radians(self.meta_angle))
        flip = torch.randperm(self.num_train, generator=g)[: self.num_flipped]
        y_t[flip] = 1 - y_t[flip]
        return SelectionData(x_t, y_t, x_m, y_m)

    def model(self, *, weight_net: bool = False, rho_meta_factor: float = 1.0) -> BADSModel:
        """The float64 model; ``rho_meta_factor`` scales ``ρ_m`` (the power check's wrong model)."""
        with float64(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            wn = WeightNet((2,), 2, features=("input", "label"), hidden=self.weight_net_hidden, seed=self.seed)
            return BADSModel(nn.Linear(2, 2), Categorical(2), self.num_train, self.num_meta,
                             theta_prior=IsotropicGaussian(self.prior_scale), rho_theta=self.rho_theta,
                             rho_meta=self.rho_meta * rho_meta_factor, weight_net=wn if weight_net else None)


def full_batch(data: SelectionData) -> Batch:
    return Batch.gather(data, torch.arange(data.num_train), torch.arange(data.num_meta))


def implied_weights(model: BADSModel, data: SelectionData, phi: torch.Tensor) -> torch.Tensor:
    """``w_i = sigmoid(g_φ(h_i))`` of every training point for draws ``phi`` of shape ``(..., dim φ)``."""
    wn = model.weight_net
    h = wn.features(data.x_train, data.y_train, torch.zeros(data.num_train, dtype=data.x_train.dtype),
                    torch.arange(data.num_train))
    w = [torch.sigmoid(wn.u(p, h)) for p in phi.reshape(-1, phi.shape[-1])]
    return torch.stack(w).reshape(*phi.shape[:-1], data.num_train)


def run_nuts(problem: JointProblem, *, num_samples: int, warmup: int, chains: int, weight_net: bool = False,
             seed: int = 0) -> dict[str, np.ndarray]:
    """NUTS draws ``{"theta": (C, S, P), "w": (C, S, N)}``; chain ``k`` seeded ``seed + k``, Pyro's init."""
    model, data = problem.model(weight_net=weight_net), problem.data()
    out = {"theta": [], "w": []}
    with float64(), pyro.validation_enabled(False):
        for chain in range(chains):
            pyro.set_rng_seed(seed + chain)
            mcmc = MCMC(NUTS(model.pyro_model), num_samples=num_samples, warmup_steps=warmup, disable_progbar=True)
            mcmc.run(full_batch(data))
            s = mcmc.get_samples()
            out["theta"].append(s["theta"])
            out["w"].append(implied_weights(model, data, s["phi"]) if weight_net else torch.sigmoid(s["u"]))
    return {k: torch.stack(v).numpy() for k, v in out.items()}


def run_bads(problem: JointProblem, *, step_size: float, weight_step_size: float, num_steps: int, burn_in: int,
             chains: int, weight_net: bool = False, preconditioner: RMSprop | None = None,
             batch_size: int | None = None, meta_batch_size: int | None = None, rho_meta_factor: float = 1.0,
             thin: int = 10, seed: int = 0, weight_update: str = "langevin") -> dict[str, np.ndarray]:
    """BADSKernel draws as :func:`run_nuts`; with pSGLD also ``"precond"`` (``G = 1/(λ + sqrt(V))`` of
    θ then φ, mean over the chains' final states) and ``"log_det_g"`` (``log det G`` at every draw)."""
    model, data = problem.model(weight_net=weight_net, rho_meta_factor=rho_meta_factor), problem.data()
    b, log_det = batch_size or data.num_train, []

    with float64():
        kernel = BADSKernel(model, step_size=step_size, weight_step_size=weight_step_size, temperature=1.0,
                            preconditioner=preconditioner, backend="torch", weight_update=weight_update)

        def inv_g(state) -> torch.Tensor:  # φ's λ is the kernel's own (BADSKernel._phi_sampler)
            parts = [state.theta_aux.sqrt() + preconditioner.eps]
            if weight_net:
                parts.append(state.phi_aux.sqrt() + kernel.phi_sampler.preconditioner.eps)
            return torch.cat(parts)

        on_draw = (lambda c, state, info: log_det.append(-inv_g(state).log().sum().item())) if preconditioner else None
        res = sample(kernel, lambda g: MinibatchStream(data, b, meta_batch_size, g), num_steps=num_steps,
                     burn_in=burn_in, thin=thin, num_chains=chains, seed=seed,
                     observers={"log_det": Callback(on_draw)} if on_draw else None,
                     track=("theta", "phi" if weight_net else "w"), progress=False)
        w = implied_weights(model, data, res.draws["phi"]) if weight_net else res.draws["w"]
    out = {"theta": res.draws["theta"].numpy(), "w": w.numpy()}
    if preconditioner is not None:
        out["precond"] = torch.stack([1.0 / inv_g(s) for s in res.states]).mean(0).numpy()
        out["log_det_g"] = np.asarray(log_det).reshape(chains, -1)
    return out


def summarise_joint(draws: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """:func:`~pyrodps.crosscheck.nuts.summarise` of θ's coordinates, then the weights."""
    return summarise(np.concatenate([draws["theta"], draws["w"]], axis=-1).astype(np.float64))


def stationary_covariance(hess: np.ndarray, step: np.ndarray, prob: np.ndarray | None = None,
                          pair: np.ndarray | None = None, noise: np.ndarray | None = None) -> np.ndarray:
    """``S`` solving ``½ (P D H S + S H D P) - ¼ Π ∘ (D H S H D) = P D + ¼ D C D`` with ``D = diag(step)``,
    ``P = diag(prob)``, ``Π = pair``, ``C = noise``; by default every coordinate moves every step
    without gradient noise, and then ``S = A S Aᵀ + D``, ``A = I - ½ D H``."""
    k = step.size
    prob = np.ones(k) if prob is None else prob
    pair = np.ones((k, k)) if pair is None else pair
    dh, eye = step[:, None] * hess, np.eye(k)
    pdh = prob[:, None] * dh
    op = 0.5 * (np.kron(eye, pdh) + np.kron(pdh, eye)) - 0.25 * pair.reshape(-1, order="F")[:, None] * np.kron(dh, dh)
    rhs = np.diag(prob * step) + (0.0 if noise is None else 0.25 * step[:, None] * noise * step[None, :])
    s = np.linalg.solve(op, rhs.reshape(-1, order="F")).reshape(k, k, order="F")
    return 0.5 * (s + s.T)


def linearised_sd_ratio(problem: JointProblem, *, step_size: float, weight_step_size: float,
                        weight_net: bool = False, precond: np.ndarray | None = None,
                        batch_size: int | None = None, meta_batch_size: int | None = None) -> np.ndarray:
    """``r_k`` (module docstring) for θ's coordinates, then the weights; ``precond`` is pSGLD's ``G``."""
    model, data = problem.model(weight_net=weight_net), problem.data()
    n, m, p = data.num_train, data.num_meta, model.layout.size
    b, bm = batch_size or n, meta_batch_size or m
    table = not weight_net

    def energy(x: torch.Tensor, batch: Batch) -> torch.Tensor:
        return -model.log_joint(x[:p], x[p:][batch.idx_train] if table else x[p:], batch).value

    with float64():  # the mode (L-BFGS from θ_0 and u = 0 or φ_0) and the Hessian there
        x = torch.cat([model.initial_theta(), torch.zeros(n) if table else model.weight_net.initial_phi()])
        x.requires_grad_(True)
        opt = torch.optim.LBFGS([x], max_iter=500, tolerance_grad=1e-10, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            value = energy(x, full_batch(data))
            value.backward()
            return value

        opt.step(closure)
        x = x.detach()
        h = torch.autograd.functional.hessian(lambda z: energy(z, full_batch(data)), x).numpy()
        k = x.numel()
        d, prob, pair, cov = np.full(k, step_size), np.ones(k), np.ones((k, k)), np.zeros((k, k))
        if precond is not None:
            d[: precond.size] *= precond
        if table:
            d[p:], prob[p:] = weight_step_size, b / n
            pair[:p, p:] = pair[p:, :p] = b / n
            pair[p:, p:] = b * (b - 1) / (n * (n - 1))
            np.fill_diagonal(pair[p:, p:], b / n)
        for size, full, one in ((b, n, lambda i: Batch.gather(data, torch.tensor([i]), torch.arange(m))),
                                (bm, m, lambda j: Batch.gather(data, torch.arange(n), torch.tensor([j])))):
            if size < full:  # Cov of the estimate = Cov_pop(∇U(x; one example)) (full - size) / (size (full - 1))
                rows = torch.stack([torch.func.grad(energy)(x, one(i)) for i in range(full)]).numpy()
                rows[:, p:] *= 0.0 if table else 1.0  # table weights: exact conditionals, no gradient noise
                cov += np.cov(rows, rowvar=False, bias=True) * (full - size) / (size * (full - 1))
        s = stationary_covariance(h, d, prob, pair, cov)

        def outputs(z: torch.Tensor) -> torch.Tensor:
            return torch.cat([z[:p], implied_weights(model, data, z[p:]) if weight_net else torch.sigmoid(z[p:])])

        jac = torch.autograd.functional.jacobian(outputs, x).numpy()
    return np.sqrt(np.diag(jac @ s @ jac.T) / np.diag(jac @ np.linalg.inv(h) @ jac.T))


def compare_joint(sampler: dict[str, np.ndarray], nuts: dict[str, np.ndarray],
                  sd_allowance: np.ndarray | float = 1.0, alpha: float = 0.01) -> dict:
    """The module docstring's tolerances (``sd_allowance``: ``r_k``): per coordinate ``mean_error``,
    ``mean_tolerance``, ``sd_ratio``, ``sd_tolerance`` (NUTS-sd units); ``z``; ``passed``."""
    z, sd = family_z(2 * nuts["mean"].size, alpha), nuts["sd"]
    allowance = np.abs(np.asarray(sd_allowance) - 1.0)
    c = {"z": z, "mean_error": np.abs(sampler["mean"] - nuts["mean"]) / sd,
         "mean_tolerance": z * np.hypot(sampler["mcse_mean"], nuts["mcse_mean"]) / sd, "sd_ratio": sampler["sd"] / sd,
         "sd_tolerance": z * np.hypot(sampler["mcse_sd"], nuts["mcse_sd"]) / sd + allowance}
    c["passed"] = bool(np.all(c["mean_error"] <= c["mean_tolerance"])
                       and np.all(np.abs(c["sd_ratio"] - 1.0) <= c["sd_tolerance"]))
    return c


def gamma_tilt(draws: dict[str, np.ndarray]) -> np.ndarray:
    """First-order effect of pSGLD's dropped ``Γ`` term on each compared mean, in posterior sds.

    With a position-dependent diagonal ``G`` and no ``Γ``, ``dx = -½ G ∇U dt + G^½ dW`` leaves
    ``exp(-U) / det G`` invariant: the target tilted by ``exp(f)``, ``f = -log det G``, which moves the
    mean of ``x_k`` by ``Cov(x_k, f)`` to first order, ``corr(x_k, f) sd(f)`` posterior sds. Estimated
    from the draws and ``log det G`` along the chain (RMSprop's ``V`` lags the position: this is the
    tilt the chain carried)."""
    x = np.concatenate([draws["theta"], draws["w"]], axis=-1)
    x = x.reshape(-1, x.shape[-1])
    f = -draws["log_det_g"].reshape(-1)
    return ((x - x.mean(0)) * (f - f.mean())[:, None]).mean(0) / x.std(0)


SGLD = {"step_size": 0.015, "weight_step_size": 0.2, "num_steps": 10_000, "burn_in": 1_000, "chains": 4}
VARIANTS = {  # name: run_bads arguments on top of SGLD's
    "sgld": {},
    "psgld": {"step_size": 0.05, "preconditioner": RMSprop(alpha=0.99)},
    # the weight block as exact slice-sampling draws (fit_bads' default); weight_step_size is the width
    "slice": {"weight_update": "slice", "weight_step_size": 3.0},
    "weight_net": {"weight_net": True},
    "minibatch": {"batch_size": 8, "meta_batch_size": 2},
    "minibatch_double_step": {"batch_size": 8, "meta_batch_size": 2, "step_size": 0.03, "weight_step_size": 0.4},
    "power": {"rho_meta_factor": 2.0},
}
NUTS_RUNS = {"table": {"num_samples": 300, "warmup": 150, "chains": 3},
             "weight_net": {"num_samples": 300, "warmup": 150, "chains": 2}}


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return repr(value) if isinstance(value, RMSprop) else value


def _difference(a: dict, b: dict, sd: np.ndarray) -> dict[str, np.ndarray]:
    """``a - b`` for means and sds in NUTS-sd units, with standard errors from the MCSEs."""
    return {"mean": (a["mean"] - b["mean"]) / sd, "mean_se": np.hypot(a["mcse_mean"], b["mcse_mean"]) / sd,
            "sd": (a["sd"] - b["sd"]) / sd, "sd_se": np.hypot(a["mcse_sd"], b["mcse_sd"]) / sd}


def joint_crosscheck(problem: JointProblem | None = None, *, variants: tuple[str, ...] = tuple(VARIANTS),
                     sgld: dict | None = None, nuts_runs: dict | None = None, alpha: float = 0.01,
                     seed: int = 0) -> dict:
    """NUTS (:data:`NUTS_RUNS`) and the ``variants`` (:data:`SGLD` updated by :data:`VARIANTS`), each
    compared with its NUTS reference (:func:`compare_joint` with :func:`linearised_sd_ratio`); ``power``
    must fail. With ``"sgld"``: a run at ``(2η, 2ε)`` with half the steps, ``richardson`` =
    ``mean(2η) - mean(η)`` (and sds); minibatch variants get ``extra``, their difference from the
    full-batch run at the same steps; pSGLD its :func:`gamma_tilt`. Returns a JSON-ready dict."""
    problem, base = problem or JointProblem(), {**SGLD, **(sgld or {})}
    runs = {k: {**v, **(nuts_runs or {}).get(k, {})} for k, v in NUTS_RUNS.items()}
    p = problem.model().layout.size
    out: dict = {"problem": asdict(problem), "alpha": alpha, "z": family_z(2 * (p + problem.num_train), alpha),
                 "nuts_runs": runs, "nuts": {}, "variants": {}, "seconds": {}}

    def timed(key: str, fn, **kw) -> dict:
        start = time.perf_counter()
        result = fn(problem, seed=seed, **kw)
        out["seconds"][key] = time.perf_counter() - start
        return result

    for kind in ("table", "weight_net") if "weight_net" in variants else ("table",):
        out["nuts"][kind] = summarise_joint(timed(f"nuts_{kind}", run_nuts, weight_net=kind == "weight_net", **runs[kind]))
    sd, full = out["nuts"]["table"]["sd"], {}
    if "sgld" in variants:  # full-batch reference at (2η, 2ε) for Richardson and the minibatch comparison
        kw = {**base, "step_size": 2 * base["step_size"], "weight_step_size": 2 * base["weight_step_size"],
              "num_steps": base["num_steps"] // 2, "burn_in": base["burn_in"] // 2}
        full[kw["step_size"]] = summarise_joint(timed("sgld_double_step", run_bads, **kw))
        out["sgld_double_step"] = {"settings": kw, "sampler": full[kw["step_size"]]}
    for name in variants:
        kw = {**base, **VARIANTS[name]}
        draws = timed(name, run_bads, **kw)
        summ = summarise_joint(draws)
        keys = ("step_size", "weight_step_size", "weight_net", "batch_size", "meta_batch_size")
        lin = {k: kw[k] for k in keys if k in kw}
        if kw.get("weight_update") == "slice":  # exact weight draws: the Langevin allowance of SGLD's ε bounds them
            lin["weight_step_size"] = base["weight_step_size"]
        r = linearised_sd_ratio(problem, precond=draws.get("precond"), **lin)
        c = compare_joint(summ, out["nuts"]["weight_net" if kw.get("weight_net") else "table"], r, alpha)
        v = out["variants"][name] = {"settings": kw, "sampler": summ, "sd_allowance": r, "comparison": c, "summary": {
            "theta_max_mean_error_sd": c["mean_error"][:p].max(), "w_max_mean_error_sd": c["mean_error"][p:].max(),
            "mean_tolerance_range": [c["mean_tolerance"].min(), c["mean_tolerance"].max()],
            "sd_ratio_range": [c["sd_ratio"].min(), c["sd_ratio"].max()], "max_sd_tolerance": c["sd_tolerance"].max(),
            "max_sd_allowance": np.max(r - 1.0), "passed": c["passed"]}}
        if name == "sgld":
            full[kw["step_size"]] = summ
        if "precond" in draws:
            v["preconditioner_mean"], v["gamma_tilt_sd"] = draws["precond"], gamma_tilt(draws)
            v["summary"].update(max_gamma_tilt_sd=np.abs(v["gamma_tilt_sd"]).max(),
                                gamma_tilt_bound_sd=draws["log_det_g"].std())  # |corr| <= 1
        if kw.get("batch_size") and kw["step_size"] in full:
            e = v["extra"] = _difference(summ, full[kw["step_size"]], sd)
            v["summary"].update(extra_max_mean_sd=np.abs(e["mean"]).max(), extra_max_sd=np.abs(e["sd"]).max())
    if "sgld" in variants:
        d = out["richardson"] = _difference(out["sgld_double_step"]["sampler"], full[base["step_size"]], sd)
        d["within_mc_error"] = bool(np.all(np.abs(d["mean"]) <= out["z"] * d["mean_se"])
                                    and np.all(np.abs(d["sd"]) <= out["z"] * d["sd_se"]))
    return _jsonable(out)
