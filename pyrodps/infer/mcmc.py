"""``MCMC`` for the SG-MCMC kernels of :mod:`pyrodps.infer`, in the shape of ``pyro.infer.MCMC``.

    from pyrodps.infer import MCMC, SGLD
    mcmc = MCMC(SGLD(model), num_samples=2000, warmup_steps=2000, num_chains=2)
    mcmc.run(x, y)                      # the model's arguments
    mcmc.get_samples()["beta"]          # (chains * draws, ...) constrained values
    mcmc.summary()                      # mean, sd, quantiles, ESS, R-hat per coordinate

What comes from pyrodps' driver (:func:`pyrodps.run.sample`): chains one after another (chain ``k``
seeded from ``(seed, k)``), warm-up and thinning, progress bars, the divergence guard, checkpoints that
resume a run exactly (``checkpoint_dir``). ``az.from_pyro`` reads only Pyro's own kernels;
:meth:`MCMC.to_arviz` builds the ArviZ object through pyrodps' adapter instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import xarray as xr

from pyrodps.diagnostics.arviz_adapter import convergence_statistics, make_inference_data
from pyrodps.errors import ValidationError, check_positive_int
from pyrodps.infer.kernels import _PyroKernel
from pyrodps.run import Checkpointer, DivergenceGuard, SampleResult, sample

LOCAL_DRAWS_LIMIT = 100_000  # a local table of more elements is not kept per draw


class MCMC:
    """Run an SG-MCMC kernel of :mod:`pyrodps.infer` (:class:`~pyrodps.infer.SGLD`,
    :class:`~pyrodps.infer.pSGLD`) on a Pyro model.

    Args:
        kernel: the kernel, built from the model.
        num_samples: draws kept per chain (after thinning).
        warmup_steps: steps discarded first, in which the kernel adapts (default ``num_samples``).
        num_chains: chains, run one after another.
        thinning: keep every ``thinning``-th step after the warm-up.
        seed: the run's seed (chains, subsamples and noise all derive from it).
        progress: show a progress bar.
        checkpoint_dir: checkpoint there every ``checkpoint_every`` steps, and resume from it.
        guard: the divergence guard (default: raise on a non-finite value).
    """

    def __init__(self, kernel: _PyroKernel, num_samples: int, warmup_steps: int | None = None, num_chains: int = 1,
                 thinning: int = 1, *, seed: int = 0, progress: bool = True, checkpoint_dir: str | Path | None = None,
                 checkpoint_every: int = 1000, guard: DivergenceGuard | None = None) -> None:
        if not isinstance(kernel, _PyroKernel):
            raise ValidationError("kernel", f"must be a pyrodps.infer kernel (SGLD, pSGLD), got {type(kernel).__name__}")
        self.kernel = kernel
        self.num_samples = check_positive_int("num_samples", num_samples)
        self.warmup_steps = check_positive_int("warmup_steps", num_samples if warmup_steps is None else warmup_steps,
                                               minimum=0)
        self.num_chains = check_positive_int("num_chains", num_chains)
        self.thinning = check_positive_int("thinning", thinning)
        self.seed, self.progress = int(seed), bool(progress)
        self.checkpoint_dir, self.checkpoint_every, self.guard = checkpoint_dir, checkpoint_every, guard
        self.result: SampleResult | None = None
        self.sites: tuple[str, ...] = ()

    def run(self, *args, **kwargs) -> MCMC:
        """Sample the model at these arguments; returns ``self``."""
        kernel = self.kernel
        kernel.setup(args, kwargs, self.warmup_steps)
        program = kernel.program
        self.sites = tuple(s.name for s in program.latents
                           if not s.is_local or s.shape.numel() <= LOCAL_DRAWS_LIMIT)
        checkpoint = None
        if self.checkpoint_dir is not None:
            identity = {"sites": [(s.name, list(s.shape)) for s in program.latents], "seed": self.seed,
                        "kernel": type(kernel).__name__, "warmup": self.warmup_steps}
            checkpoint = Checkpointer(Path(self.checkpoint_dir) / "mcmc.pt", self.checkpoint_every, identity)
        self.result = sample(kernel, kernel.make_batches, num_steps=self.warmup_steps + self.num_samples * self.thinning,
                             burn_in=self.warmup_steps, thin=self.thinning, num_chains=self.num_chains, seed=self.seed,
                             track=(*self.sites, "energy", "step_size"), progress=self.progress,
                             checkpoint=checkpoint, guard=self.guard, warmup_track=("energy",) if self.warmup_steps else ())
        return self

    def _result(self) -> SampleResult:
        if self.result is None:
            raise ValidationError("mcmc", "has not run: call run(...) first")
        return self.result

    def get_samples(self, group_by_chain: bool = False) -> dict[str, torch.Tensor]:
        """Kept draws of every latent site (constrained values): ``(chains * draws, ...)``, or
        ``(chains, draws, ...)`` with ``group_by_chain``. Local tables of more than 10^5 elements are not
        kept per draw."""
        draws = self._result().draws
        out = {name: draws[name] for name in self.sites}
        if group_by_chain:
            return out
        return {name: v.reshape(-1, *v.shape[2:]) for name, v in out.items()}

    def _posterior(self) -> xr.Dataset:
        data = {}
        for name, v in self.get_samples(group_by_chain=True).items():
            arr = v.detach().to(torch.float64).numpy()
            data[name] = (("chain", "draw", *[f"{name}_dim_{k}" for k in range(arr.ndim - 2)]), arr)
        return xr.Dataset(data)

    def diagnostics(self) -> dict[str, dict[str, np.ndarray]]:
        """Per site: ``n_eff`` (bulk ESS), ``r_hat`` (rank-normalised split R-hat), ``mcse_mean`` (ArviZ
        through pyrodps' adapter); and ``run``: the guard's back-offs and the final step size."""
        stats = convergence_statistics(self._posterior(), statistics=("ess_bulk", "rhat", "mcse_mean"))
        out = {name: {"n_eff": stats["ess_bulk"][name].values, "r_hat": stats["rhat"][name].values,
                      "mcse_mean": stats["mcse_mean"][name].values} for name in self.sites}
        res = self._result()
        out["run"] = {"backoffs": res.extras.get("backoffs", []),
                      "step_size": res.draws["step_size"][:, -1].numpy()}
        return out

    def summary(self, prob: float = 0.9, print_table: bool = True) -> dict[str, dict[str, np.ndarray]]:
        """Per site and coordinate: ``mean``, ``std``, ``median``, the ``prob`` interval's ends, ``n_eff``
        and ``r_hat``; printed as a table like ``pyro.infer.MCMC.summary``."""
        if not 0 < prob < 1:
            raise ValidationError("prob", f"must be in (0, 1), got {prob}")
        diag = self.diagnostics()
        lo, hi = (1 - prob) / 2, (1 + prob) / 2
        out = {}
        for name, v in self.get_samples().items():
            x = v.detach().to(torch.float64).numpy()
            out[name] = {"mean": x.mean(0), "std": x.std(0, ddof=1), "median": np.median(x, 0),
                         f"{lo:.1%}": np.quantile(x, lo, axis=0), f"{hi:.1%}": np.quantile(x, hi, axis=0),
                         "n_eff": diag[name]["n_eff"], "r_hat": diag[name]["r_hat"]}
        if print_table:
            print(format_summary(out))
        return out

    def to_arviz(self) -> object:
        """``posterior`` (every kept site) and ``sample_stats`` (``energy``, ``step_size``) as an
        ``InferenceData`` (ArviZ 0.x) or ``DataTree`` (1.x)."""
        res = self._result()
        stats = xr.Dataset({name: (("chain", "draw"), res.draws[name].to(torch.float64).numpy())
                            for name in ("energy", "step_size")})
        return make_inference_data({"posterior": self._posterior(), "sample_stats": stats})


def format_summary(summary: dict[str, dict[str, np.ndarray]]) -> str:
    """The table :meth:`MCMC.summary` prints: one row per coordinate of every site."""
    columns = list(next(iter(summary.values())))
    lines = [f"{'':>16}" + "".join(f"{c:>10}" for c in columns)]
    for name, stats in summary.items():
        flat = {c: np.atleast_1d(np.asarray(v)).reshape(-1) for c, v in stats.items()}
        size = flat["mean"].size
        for k in range(size):
            label = name if size == 1 else f"{name}[{k}]"
            lines.append(f"{label:>16}" + "".join(f"{flat[c][k]:>10.3f}" for c in columns))
    return "\n".join(lines)
