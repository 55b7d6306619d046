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

from typing import TYPE_CHECKING

import numpy as np
import torch
import xarray as xr

from pyrodps.errors import ValidationError, check_positive_int

if TYPE_CHECKING:
    from pyrodps.selection import BADSFit

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
    """Per-chain lists of the per-draw summaries described in the module docstring.

    Memory: ``chains × draws × (K + 4 + len(tracked_points))`` numbers.
    """

    def __init__(self, num_params: int, tracked_points: np.ndarray, num_projections: int = 4) -> None:
        check_positive_int("num_params", num_params)
        check_positive_int("theta_projections", num_projections, minimum=0)
        gen = torch.Generator().manual_seed(PROJECTION_SEED)
        d = torch.randn(num_projections, num_params, generator=gen, dtype=torch.float64)
        self.directions = d / torch.linalg.vector_norm(d, dim=1, keepdim=True).clamp(min=1e-300)
        self.tracked_points = np.asarray(tracked_points, dtype=np.int64)
        self._rows: list[list[dict[str, np.ndarray]]] = []

    def record(self, chain: int, theta: torch.Tensor, tracked_w: torch.Tensor | None, *, step: int,
               step_size: float, test_accuracy: float) -> None:
        """Keep one draw of ``chain`` (chains must be recorded in order 0, 1, ...)."""
        while len(self._rows) <= chain:
            self._rows.append([])
        theta64 = theta.detach().to(torch.float64).reshape(-1).cpu()
        row = {
            "param_norm": np.float64(torch.linalg.vector_norm(theta64)),
            "theta_projection": (self.directions @ theta64).numpy(),
            "step": np.int64(step),
            "step_size": np.float64(step_size),
            "test_accuracy": np.float64(test_accuracy),
        }
        if tracked_w is not None:
            row["w"] = tracked_w.detach().to(torch.float64).cpu().numpy()
        self._rows[chain].append(row)

    def get(self) -> list[list[dict[str, np.ndarray]]]:
        """The recorded draws (for a checkpoint: the driver's ``ExtraState`` protocol)."""
        return self._rows

    def set(self, value: list[list[dict[str, np.ndarray]]]) -> None:
        """Put back what :meth:`get` returned."""
        self._rows = [list(rows) for rows in value]

    def arrays(self) -> dict[str, np.ndarray]:
        """Every kept quantity stacked as ``(chains, draws, ...)``, plus ``tracked_points``."""
        if not self._rows or not all(self._rows):
            return {"tracked_points": self.tracked_points}
        draws = min(len(rows) for rows in self._rows)
        out = {name: np.stack([np.stack([r[name] for r in rows[:draws]]) for rows in self._rows])
               for name in self._rows[0][0]}
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
    post["test_accuracy"] = (("chain", "draw"), tracked["test_accuracy"])
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
    return {
        "posterior": xr.Dataset(post, coords=coords, attrs=attrs),
        "sample_stats": xr.Dataset(stats, coords=stat_coords, attrs=attrs),
    }
