"""What a BADS run keeps per draw for convergence diagnostics, and its ArviZ groups.

The full θ (10^4-10^5 numbers) and the full weight table (N numbers) per draw are too large to keep
in general, so :class:`PosteriorTracker` keeps, at every kept draw s of every chain:

* ``‖θ_s‖₂`` and ``K`` fixed random projections ``⟨θ_s, d_k⟩``, ``d_k = g_k / ‖g_k‖``,
  ``g_k ~ N(0, I_P)`` from a generator seeded with :data:`PROJECTION_SEED` (the same directions for
  every chain and every run of the same network);
* the weights ``w_i`` of a deterministic subset of training points (:func:`tracked_point_indices`);
* the step size ``η_t`` of the step that produced the draw, ``t`` itself, and the test accuracy of
  the single draw ``θ_s``.

:func:`bads_groups` turns a fit into the ``posterior`` and ``sample_stats`` Datasets.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import xarray as xr

from pyrodps.errors import ValidationError, check_positive_int
from pyrodps.run.draw_store import DrawStore

if TYPE_CHECKING:
    from pyrodps.bads.fit import BADSFit

PROJECTION_SEED = 20_241_105
TRACKED_POINTS_SEED = 1_105


def tracked_point_indices(num_points: int, limit: int | None) -> np.ndarray:
    """Sorted indices of the training points whose weights are kept per draw: all ``num_points``
    when ``limit`` is ``None`` or at least ``num_points``, else ``limit`` of them drawn without
    replacement by a generator with a fixed seed (the same points for every run on the same N)."""
    check_positive_int("num_points", num_points)
    if limit is None or limit >= num_points:
        return np.arange(num_points)
    check_positive_int("track_weights", limit, minimum=0)
    rng = np.random.default_rng(TRACKED_POINTS_SEED)
    return np.sort(rng.choice(num_points, size=limit, replace=False))


class PosteriorTracker:
    """Per-chain draws of the summaries described in the module docstring, kept in a
    :class:`~pyrodps.run.draw_store.DrawStore` per chain: in memory up to ``memory_budget``
    bytes per chain, spilled to ``spill_dir`` past it (so a long run's memory stays flat).

    Memory: ``chains × draws × (K + 4 + len(tracked_points))`` numbers, or the budget.
    """

    NAMES = ("param_norm", "theta_projection", "step", "step_size", "test_accuracy", "w")

    def __init__(self, num_params: int, tracked_points: np.ndarray, num_projections: int = 4, *,
                 memory_budget: int | None = None, spill_dir: str | Path | None = None) -> None:
        check_positive_int("num_params", num_params)
        check_positive_int("theta_projections", num_projections, minimum=0)
        gen = torch.Generator().manual_seed(PROJECTION_SEED)
        d = torch.randn(num_projections, num_params, generator=gen, dtype=torch.float64)
        self.directions = d / torch.linalg.vector_norm(d, dim=1, keepdim=True).clamp(min=1e-300)
        self._directions: torch.Tensor | None = None  # the directions in θ's dtype and device
        self.tracked_points = np.asarray(tracked_points, dtype=np.int64)
        self.memory_budget = memory_budget
        self.spill_dir = None if spill_dir is None else Path(spill_dir)
        self._stores: list[DrawStore] = []

    def _store(self, chain: int) -> DrawStore:
        while len(self._stores) <= chain:
            k = len(self._stores)
            self._stores.append(DrawStore(self.NAMES, self.memory_budget,
                                          None if self.spill_dir is None else self.spill_dir / f"chain{k}"))
        return self._stores[chain]

    def record(self, chain: int, theta: torch.Tensor, tracked_w: torch.Tensor | None, *, step: int,
               step_size: float, test_accuracy: float) -> None:
        """Keep one draw of ``chain`` (chains must be recorded in order 0, 1, ...)."""
        store = self._store(chain)
        # in θ's own precision: a float64 copy of θ per draw would churn the allocator on long runs
        flat = theta.detach().reshape(-1)
        if self._directions is None or self._directions.dtype != flat.dtype or self._directions.device != flat.device:
            self._directions = self.directions.to(flat.dtype).to(flat.device)
        store.append("param_norm", torch.linalg.vector_norm(flat).to(torch.float64))
        store.append("theta_projection", (self._directions @ flat).to(torch.float64))
        store.append("step", torch.tensor(step, dtype=torch.int64))
        store.append("step_size", torch.tensor(step_size, dtype=torch.float64))
        store.append("test_accuracy", torch.tensor(test_accuracy, dtype=torch.float64))
        w = torch.empty(0, dtype=torch.float64) if tracked_w is None else tracked_w.detach().to(torch.float64).cpu()
        store.append("w", w)

    def get(self) -> list[dict]:
        """The recorded draws (for a checkpoint: the driver's ``ExtraState`` protocol)."""
        return [store.state() for store in self._stores]

    def set(self, value: list[dict]) -> None:
        """Put back what :meth:`get` returned."""
        self._stores = []
        for chain, state in enumerate(value):
            self._store(chain).load_state(state)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every kept quantity stacked as ``(chains, draws, ...)``, plus ``tracked_points``."""
        if not self._stores or not all(store.count for store in self._stores):
            return {"tracked_points": self.tracked_points}
        draws = min(store.count for store in self._stores)
        out = {name: np.stack([store.stacked(name)[:draws].numpy() for store in self._stores]) for name in self.NAMES}
        if out["w"].shape[-1] == 0:
            del out["w"]
        out["tracked_points"] = self.tracked_points
        return out


def _chain_draw_array(value: np.ndarray, name: str, chains: int, draws: int) -> np.ndarray:
    value = np.asarray(value)
    if value.shape[:2] != (chains, draws):
        raise ValidationError(name, f"must have leading shape ({chains}, {draws}), got {value.shape}")
    return value


def bads_groups(fit: BADSFit) -> dict[str, xr.Dataset]:
    """``posterior`` and ``sample_stats`` Datasets of a fit, dims ``(chain, draw, ...)``.

    posterior: ``w`` (``point``: training-point index), ``train_nll``, ``meta_nll`` (per-example
    means on the draw's minibatch), ``param_norm``, ``theta_projection`` (``projection``),
    ``test_accuracy``. sample_stats: ``energy`` (minibatch ``Û``), ``grad_norm`` (``‖∇_θ Û‖``),
    ``step_size``, ``temperature``, ``step``. Attributes: the run's ``num_steps``, ``burn_in``,
    ``thin`` and the config's ``log_z`` and ``weights``.
    """
    tracked = fit.tracked
    if "param_norm" not in tracked:
        raise ValidationError("fit", "this fit kept no per-draw summaries (was it sampled by fit_bads?)")
    draws_kept = fit.samples.draws
    chains, draws = tracked["param_norm"].shape
    post: dict[str, tuple] = {}
    for name in ("train_nll", "meta_nll"):
        if name in draws_kept:
            post[name] = (("chain", "draw"), _chain_draw_array(draws_kept[name].double().numpy(), name, chains, draws))
    post["param_norm"] = (("chain", "draw"), tracked["param_norm"])
    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
    if tracked["theta_projection"].shape[2]:
        post["theta_projection"] = (("chain", "draw", "projection"), tracked["theta_projection"])
        coords["projection"] = np.arange(tracked["theta_projection"].shape[2])
    # the draw's test score: accuracy, RMSE for a regression likelihood, NLL per token for a language model
    score = fit.test_score_name
    post[score] = (("chain", "draw"), tracked["test_accuracy"])
    if "w" in tracked:
        post["w"] = (("chain", "draw", "point"), tracked["w"])
        coords["point"] = tracked["tracked_points"]
    stats: dict[str, tuple] = {}
    for name in ("energy", "grad_norm"):
        if name in draws_kept:
            stats[name] = (("chain", "draw"), _chain_draw_array(draws_kept[name].double().numpy(), name, chains, draws))
    stats["step_size"] = (("chain", "draw"), tracked["step_size"])
    stats["temperature"] = (("chain", "draw"), np.full((chains, draws), float(fit.config.temperature)))
    stats["step"] = (("chain", "draw"), tracked["step"])
    res = fit.samples
    attrs = {"num_steps": int(res.num_steps), "burn_in": int(res.burn_in), "thin": int(res.thin),
             "log_z": str(fit.config.log_z), "weights": str(fit.config.weights), "inference_library": "pyrodps"}
    stat_coords = {k: coords[k] for k in ("chain", "draw")}
    groups = {
        "posterior": xr.Dataset(post, coords=coords, attrs=attrs),
        "sample_stats": xr.Dataset(stats, coords=stat_coords, attrs=attrs),
    }
    groups.update(warmup_groups(res.warmup_draws, res.thin, attrs))
    return groups


def warmup_groups(warmup: dict, thin: int, attrs: dict) -> dict[str, xr.Dataset]:
    """ArviZ's ``warmup_posterior`` (``train_nll``, ``meta_nll``) and ``warmup_sample_stats``
    (``energy``, ``step``) from the draws the driver kept every ``thin`` steps of the burn-in (empty
    when it kept none)."""
    if not warmup or any(v.ndim != 2 or v.shape[1] == 0 for v in warmup.values()):
        return {}
    chains, draws = next(iter(warmup.values())).shape
    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
    dims = ("chain", "draw")
    post = {k: (dims, warmup[k].double().numpy()) for k in ("train_nll", "meta_nll") if k in warmup}
    stats = {k: (dims, warmup[k].double().numpy()) for k in ("energy",) if k in warmup}
    stats["step"] = (dims, np.broadcast_to(np.arange(draws) * thin, (chains, draws)).copy())
    return {"warmup_posterior": xr.Dataset(post, coords=coords, attrs=attrs),
            "warmup_sample_stats": xr.Dataset(stats, coords=coords, attrs=attrs)}
