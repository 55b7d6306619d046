"""What a BADS run accumulates besides the kept draws, as observers of the driver
(:mod:`pyrodps.run.observers`), each checkpointed with the run.

* :class:`WeightStatistics`: per chain, the online mean and variance of every weight over its visits
  after burn-in, and over the last ``S_avg`` steps (the spec's running-average window);
* :class:`PredictiveRecorder`: at every kept draw, the posterior-predictive sum on the test set (per
  chain), the diagnostics tracker's per-draw summaries, the accuracy trace, and a user callback.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.func import functional_call

from pyrodps.diagnostics.metrics import trace_score
from pyrodps.diagnostics.posterior import PosteriorTracker
from pyrodps.models.bads import BADSModel
from pyrodps.models.data import SelectionData
from pyrodps.models.networks import penultimate
from pyrodps.run.weight_stats import OnlineWeightStats, WindowMean


class WeightStatistics:
    """Online statistics of the weights ``info["w"]`` at ``info["idx"]``: mean and variance over every
    step from ``burn_in`` on (:class:`~pyrodps.run.weight_stats.OnlineWeightStats`, 12 bytes per point), and
    the mean over the steps from ``window_start`` on (:class:`~pyrodps.run.weight_stats.WindowMean`, a
    sparse log of the window's visits; ``None``: no window)."""

    def __init__(self, num_points: int, burn_in: int, window_start: int | None = None) -> None:
        self.num_points, self.burn_in, self.window_start = num_points, burn_in, window_start
        self.chains: list[OnlineWeightStats] = []
        self.windows: list[WindowMean] = []

    def begin_chain(self, chain: int) -> None:
        self.chains.append(OnlineWeightStats(self.num_points))
        if self.window_start is not None:
            self.windows.append(WindowMean(self.num_points))

    def observe(self, chain: int, t: int, state: object, info: dict[str, torch.Tensor], kept: bool) -> None:
        if t >= self.burn_in:
            self.chains[chain].update(info["idx"], info["w"])
        if self.window_start is not None and t >= self.window_start:
            self.windows[chain].update(info["idx"], info["w"])

    def state_dict(self) -> dict:
        return {"chains": [s.state_dict() for s in self.chains], "windows": [s.state_dict() for s in self.windows]}

    def load_state_dict(self, state: dict) -> None:
        self.chains = [OnlineWeightStats(self.num_points) for _ in state["chains"]]
        self.windows = [WindowMean(self.num_points) for _ in state["windows"]]
        for stats, saved in zip(self.chains + self.windows, state["chains"] + state["windows"]):
            stats.load_state_dict(saved)

    def nbytes(self) -> int:
        """Bytes held by the statistics of all chains."""
        return sum(s.nbytes() for s in self.chains + self.windows)

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation of every weight, pooled over chains."""
        mean, var = OnlineWeightStats.pool(self.chains)
        return mean, var.sqrt()

    def chain_means(self) -> np.ndarray:
        """``(chains, N)``: each chain's posterior-mean weight of every point."""
        return np.stack([s.mean.numpy() for s in self.chains])

    def window_mean(self) -> torch.Tensor | None:
        """Mean of every weight over the window, pooled over chains (``None`` without a window). A
        point never visited in the window keeps its overall mean."""
        if not self.windows:
            return None
        sums = [s.sums() for s in self.windows]
        count = sum(c for c, _ in sums)
        total = sum(t for _, t in sums)
        overall, _ = OnlineWeightStats.pool(self.chains)
        return torch.where(count > 0, total / count.clamp(min=1), overall)


class PredictiveRecorder:
    """At every kept draw of a BADS run: ``p̂(y | x_test)`` summed per chain
    (:meth:`~pyrodps.models.likelihoods.Likelihood.predict`: class probabilities, or predictive means),
    the tracker's summaries (θ norm and projections, tracked weights, step size, test score), every
    tenth draw of chain 0's test score as a trace, and ``on_draw(chain, state, prediction)``."""

    def __init__(self, model: BADSModel, data: SelectionData, x_test: torch.Tensor, y_test: np.ndarray,
                 tracker: PosteriorTracker, tracked_idx: torch.Tensor, step_size: Callable[[int], float],
                 chains: int, on_draw: Callable | None = None) -> None:
        self.model, self.data, self.x_test, self.y_test = model, data, x_test, y_test
        self.tracker, self.tracked_idx, self.step_size, self.on_draw = tracker, tracked_idx, step_size, on_draw
        self.task = model.likelihood.task
        with torch.no_grad():
            width = model.likelihood.predict(functional_call(model.net, model.layout.unflatten(
                model.initial_theta()), (x_test[:1],))).shape[1:]
        self.pred_sum = torch.zeros(chains, x_test.shape[0], *width, dtype=torch.float64)
        self.num_draws = 0
        self.trace: list[tuple[int, float]] = []

    def begin_chain(self, chain: int) -> None:
        pass

    def observe(self, chain: int, t: int, state, info: dict[str, torch.Tensor], kept: bool) -> None:
        if not kept:
            return
        model = self.model
        with torch.no_grad():
            out = functional_call(model.net, model.layout.unflatten(state.theta), (self.x_test,))
            pred = model.likelihood.predict(out)
            tracked_w = tracked_weights(model, self.data, state, self.tracked_idx) if self.tracked_idx.numel() else None
        self.pred_sum[chain].add_(pred.double())
        self.num_draws += 1
        if self.on_draw is not None:
            self.on_draw(chain, state, pred)
        score = trace_score(pred.numpy(), self.y_test, self.task)
        if chain == 0 and self.num_draws % 10 == 1:
            self.trace.append((state.step, score))
        self.tracker.record(chain, state.theta, tracked_w, step=state.step - 1, step_size=self.step_size(state.step - 1),
                            test_accuracy=score)

    def state_dict(self) -> dict:
        return {"pred_sum": self.pred_sum, "num_draws": self.num_draws, "trace": list(self.trace),
                "tracker": self.tracker.get()}

    def load_state_dict(self, state: dict) -> None:
        self.pred_sum.copy_(state["pred_sum"])
        self.num_draws = state["num_draws"]
        self.trace[:] = [tuple(x) for x in state["trace"]]
        self.tracker.set(state["tracker"])

    def prediction(self) -> np.ndarray:
        """The posterior predictive over all kept draws of all chains."""
        return (self.pred_sum.sum(0) / max(self.num_draws, 1)).numpy()

    def chain_predictions(self) -> np.ndarray:
        """Each chain's own posterior predictive, ``(chains, n_test, ...)``."""
        if self.task == "classification":
            return (self.pred_sum / self.pred_sum.sum(-1, keepdim=True).clamp(min=1e-300)).numpy()
        draws_per_chain = max(self.num_draws // max(self.pred_sum.shape[0], 1), 1)
        return (self.pred_sum / draws_per_chain).numpy()


def train_nll(model: BADSModel, data: SelectionData, state, idx: torch.Tensor | None = None) -> torch.Tensor:
    """``l_i(θ)`` of the training points ``idx`` (all when ``None``) at the state's θ."""
    x, y = (data.x_train, data.y_train) if idx is None else (data.x_train[idx], data.y_train[idx])
    with torch.no_grad():
        out = functional_call(model.net, model.layout.unflatten(state.theta), (x,))
        return model.likelihood.nll(out, y)


def train_prediction(model: BADSModel, data: SelectionData, state) -> torch.Tensor:
    """The likelihood's prediction for every training input at the state's θ: class probabilities
    ``(N, C)`` for classification, predictive means ``(N,)`` for regression."""
    with torch.no_grad():
        out = functional_call(model.net, model.layout.unflatten(state.theta), (data.x_train,))
        return model.likelihood.predict(out)


def tracked_weights(model: BADSModel, data: SelectionData, state, idx: torch.Tensor) -> torch.Tensor:
    """``w_i`` of the points ``idx``: the table entries, ``sigmoid(g_φ(h_i))`` of the weight network, or
    their product."""
    table = None if state.u is None else torch.sigmoid(state.u.index_select(0, idx))
    if state.phi is None:
        return table
    wn = model.weight_net
    x = data.x_train[idx]
    emb = penultimate(model.net, x, model.layout.unflatten(state.theta)) if wn.needs_embedding else None
    deviance = train_nll(model, data, state, idx) - model.reference_nll(data.y_train[idx])
    h = wn.features(x, data.y_train[idx], deviance, idx, emb)
    v = torch.sigmoid(wn.u(state.phi, h))
    return v if table is None else table * v
