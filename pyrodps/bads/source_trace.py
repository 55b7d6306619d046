"""The mean weight of every source (``SelectionProblem.weight_groups``) against steps, per chain, as an
observer of the driver (:mod:`pyrodps.run.observers`), checkpointed with the run.

For a source ``g`` of ``N_g`` training points the observer follows

    m_g(t) = (1 / N_g) Σ_{i ∈ g} w_i(t),

``w_i(t)`` being point ``i``'s weight as of step ``t``: the value ``info["w"]`` gave it at its latest
visit up to ``t`` (before its first visit: its weight in the chain's first state). For a weight
table this *is* the chain's state ``sigmoid(u_i)`` at step ``t`` (an entry moves only when its point
is in the batch), so ``m_g(t)`` is a function of the draw and its values after burn-in are draws of
the posterior of the source mean. With a weight network (or product weights) the weights of points
outside the batch move with φ between visits; ``w_i(t)`` is then their value at the last visit, the
same convention as the per-point statistics (:class:`~pyrodps.bads.observers.WeightStatistics`).

Why a running view and not the chain state at thinned steps: the view is updated from ``info["idx"]``
and ``info["w"]`` in O(B) per step (read the batch's old values, write the new ones, add the
differences to ``G`` float64 per-source sums) for every kind of weights, where recomputing the
source means from the state costs O(N) per recorded step (a forward pass over the whole training set
for a weight network). Its price is one float32 copy of the weights of the live chain (``4 N``
bytes, also in the checkpoint) and one O(N) pass when a chain starts. The view holds float32 values
exactly, so the sums drift only by float64 rounding (a test checks them against a recount).

``m_g`` is recorded at the steps ``t`` with ``(t - burn_in) % record_every == 0`` (``record_every``:
the run's ``thin``), so after burn-in the recorded steps are the driver's kept draws.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from pyrodps.errors import ValidationError, check_positive_int

InitialWeights = Callable[[object], torch.Tensor]  # chain state -> the weight of every training point


class SourceTrace:
    """Per chain, the trace of every source's mean weight ``m_g(t)`` (see the module docstring).

    Args:
        groups: the source of every training point (non-negative integers, shape ``(N,)``); the
            distinct values, sorted, are :attr:`sources`.
        burn_in: first step after burn-in (the recording grid is aligned to it).
        record_every: record ``m`` every this many steps.
        initial_weights: ``fn(state)``, every training point's weight in a chain's first state
            (called once per chain, at its first step).
    """

    def __init__(self, groups: np.ndarray, burn_in: int, record_every: int, initial_weights: InitialWeights) -> None:
        g = np.asarray(groups)
        if g.ndim != 1 or g.size == 0 or not np.issubdtype(g.dtype, np.integer) or g.min() < 0:
            raise ValidationError("groups", f"must be non-negative integers, one per training point, got {g.dtype} "
                                  f"of shape {g.shape}")
        self.burn_in = check_positive_int("burn_in", burn_in, minimum=0)
        self.record_every = check_positive_int("record_every", record_every)
        self.initial_weights = initial_weights
        sources, codes = np.unique(g, return_inverse=True)
        self.sources = sources.astype(np.int64)
        self.codes = torch.as_tensor(codes.reshape(-1), dtype=torch.long)
        self.sizes = torch.as_tensor(np.bincount(codes.reshape(-1), minlength=sources.size), dtype=torch.float64)
        self.view: torch.Tensor | None = None  # the live chain's w_i(t)
        self.sums: torch.Tensor | None = None  # Σ_{i∈g} w_i(t), float64
        self.steps: list[list[int]] = []  # per chain: recorded steps
        self.means: list[list[torch.Tensor]] = []  # per chain: m(t) at those steps, (G,) each

    @property
    def num_points(self) -> int:
        return int(self.codes.shape[0])

    def begin_chain(self, chain: int) -> None:
        self.view = self.sums = None
        self.steps.append([])
        self.means.append([])

    def observe(self, chain: int, t: int, state: object, info: dict[str, torch.Tensor], kept: bool) -> None:
        idx, w = info["idx"], info["w"].detach()
        if self.view is None:
            self._start(state, idx.device)
        if self.view.device != idx.device:  # a checkpoint is loaded on the CPU
            self.view, self.sums = self.view.to(idx.device), self.sums.to(idx.device)
        if self.codes.device != idx.device:
            self.codes, self.sizes = self.codes.to(idx.device), self.sizes.to(idx.device)
        codes = self.codes
        w = w.to(self.view.dtype)
        old = self.view.index_select(0, idx)
        self.view.index_copy_(0, idx, w)
        self.sums.index_add_(0, codes.index_select(0, idx), (w.double() - old.double()))
        if (t - self.burn_in) % self.record_every == 0:
            self.steps[chain].append(int(t))
            self.means[chain].append(self.sums / self.sizes)

    def _start(self, state: object, device: torch.device) -> None:
        """The view and sums of a chain's first state (O(N), once per chain)."""
        with torch.no_grad():
            w0 = self.initial_weights(state).detach().reshape(-1)
        if w0.shape[0] != self.num_points:
            raise ValidationError("initial_weights", f"returned {w0.shape[0]} weights for {self.num_points} points")
        self.view = w0.to(device=device, dtype=torch.float32).clone()
        self.sums = self.recount()

    def recount(self) -> torch.Tensor:
        """``Σ_{i∈g} w_i`` of the live chain summed afresh from the view (O(N)); equals :attr:`sums` up to
        float64 rounding."""
        if self.view is None:
            raise ValidationError("chain", "no chain is live")
        return torch.zeros(self.sizes.shape[0], dtype=torch.float64, device=self.view.device).index_add_(
            0, self.codes.to(self.view.device), self.view.double())

    def state_dict(self) -> dict:
        return {"view": None if self.view is None else self.view.clone(),
                "sums": None if self.sums is None else self.sums.clone(),
                "steps": [list(s) for s in self.steps],
                "means": [torch.stack(m) if m else torch.zeros(0, self.sizes.shape[0], dtype=torch.float64)
                          for m in self.means]}

    def load_state_dict(self, state: dict) -> None:
        self.steps = [[int(t) for t in s] for s in state["steps"]]
        self.means = [list(m.unbind(0)) for m in state["means"]]
        # copies: a back-off restores the same snapshot again, so nothing here may alias it
        self.view = None if state["view"] is None else state["view"].clone()
        self.sums = None if state["sums"] is None else state["sums"].clone()

    def arrays(self) -> dict[str, np.ndarray]:
        """``steps`` (``(R,)``: the recorded steps, the same for every chain), ``means`` (``(chains, R, G)``:
        ``m_g`` of every chain at them), ``sources`` (``(G,)``: the source ids), ``sizes`` (``(G,)``),
        ``burn_in`` and ``record_every`` (scalars). Chains cut short keep their first ``R`` records."""
        length = min((len(s) for s in self.steps), default=0)
        steps = np.asarray(self.steps[0][:length] if self.steps else [], dtype=np.int64)
        means = np.stack([torch.stack(m[:length]).cpu().numpy() if length else np.zeros((0, self.sources.size))
                          for m in self.means]) if self.means else np.zeros((0, 0, self.sources.size))
        return {"steps": steps, "means": means.astype(np.float64), "sources": self.sources.copy(),
                "sizes": self.sizes.cpu().numpy().astype(np.int64), "burn_in": np.int64(self.burn_in),
                "record_every": np.int64(self.record_every)}


def full_weights(model: object, data: object, state: object, chunk: int = 65_536) -> torch.Tensor:
    """Every training point's weight at ``state`` (the table, the weight network or their product;
    :func:`~pyrodps.bads.observers.tracked_weights`), ``chunk`` points at a time. A table sharded over
    ranks is gathered first (a collective: every rank's observer calls this at the same step)."""
    from pyrodps.bads.observers import tracked_weights

    if hasattr(getattr(state, "u", None), "full"):  # a table sharded over ranks (pyrodps.parallel): gather it
        state = dataclasses.replace(state, u=state.u.full())
    n = int(data.num_train)
    device = data.x_train.device
    parts = [tracked_weights(model, data, state, torch.arange(s, min(s + chunk, n), device=device))
             for s in range(0, n, chunk)]
    return torch.cat(parts)


def source_observers(problem: object, setup: object) -> dict[str, SourceTrace]:
    """``{"sources": SourceTrace}`` for a problem with ``weight_groups`` (recording every ``thin``-th
    step of the run's config), else ``{}``: the observers :func:`~pyrodps.bads.fit.fit_bads` adds."""
    groups = getattr(problem, "weight_groups", None)
    if groups is None:
        return {}
    config, model, data = setup.config, setup.model, setup.data
    return {"sources": SourceTrace(np.asarray(groups), config.effective_burn_in, config.thin,
                                   lambda state: full_weights(model, data, state))}
