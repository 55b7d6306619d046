"""The posterior predictive of a causal language model, kept online: a running log-sum-exp over the
kept draws per test sequence.

For test sequences ``(x_n, y_n)``, ``n = 1..n_test``, and kept draws ``θ_1..θ_S`` the posterior
predictive probability of a whole sequence is the average of its probability under each draw,

    p̂(y_n | x_n) = (1/S) Σ_s p(y_n | x_n, θ_s),
    log p(y_n | x_n, θ_s) = Σ_{t ∈ T_n} log softmax(f_{θ_s}(x_n)_t)_{y_{n,t}}

(:func:`~pyrodps.models.sequence_problem.sequence_log_prob`; ``T_n`` the scored positions). It is
the average of *products* over the tokens, not a product of per-token averages: a sequence's tokens
are scored jointly under each draw. The score is the **test NLL per response token of the posterior
predictive** and its perplexity,

    NLL/token = -Σ_n log p̂(y_n | x_n) / Σ_n |T_n|,      perplexity = exp(NLL/token).

``p(y_n | x_n, θ_s)`` underflows (``e^{-100}`` and less), so the sum is kept in log space: after draw
``s`` of chain ``c``, ``A_{c,n} ← logaddexp(A_{c,n}, log p(y_n | x_n, θ_s))`` from ``A_{c,n} = -∞``,
so ``A_{c,n} = log Σ_{s in chain c} p(y_n | x_n, θ_s)`` exactly (up to rounding, in float64) with
``O(chains · n_test)`` memory, however many draws and tokens. Then

    log p̂(y_n | x_n) = logsumexp_c A_{c,n} − log S,       chain c's own: A_{c,n} − log S_c.

:class:`SequencePredictiveRecorder` has the interface of
:class:`~pyrodps.bads.observers.PredictiveRecorder`, so :func:`~pyrodps.bads.fit.fit_bads` takes it for a
sequence problem; its :meth:`~SequencePredictiveRecorder.prediction` is the ``(n_test,)`` vector of
``log p̂(y_n | x_n)`` that :func:`~pyrodps.diagnostics.metrics.predictive_scores` scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch.func import functional_call

from pyrodps.bads.observers import tracked_weights
from pyrodps.diagnostics.metrics import nll_per_token
from pyrodps.diagnostics.posterior import PosteriorTracker
from pyrodps.models.bads import BADSModel
from pyrodps.models.data import SelectionData
from pyrodps.models.sequence import IGNORE_INDEX
from pyrodps.models.sequence_problem import sequence_log_prob

EVAL_BATCH = 256  # test sequences per forward pass


def draw_log_prob(model: BADSModel, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                  ignore_index: int = IGNORE_INDEX, batch: int = EVAL_BATCH) -> torch.Tensor:
    """``log p(y_n | x_n, θ)`` of every sequence (float64, shape ``(n,)``) at the flat parameters
    ``theta``, ``batch`` sequences per forward pass."""
    params = model.layout.unflatten(theta)
    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch):
            logits = functional_call(model.net, params, (x[start:start + batch],))
            out.append(sequence_log_prob(logits.double(), y[start:start + batch], ignore_index))
    return torch.cat(out)


class SequencePredictiveRecorder:
    """At every kept draw of a BADS run on a sequence problem: the running log-sum-exp
    ``A_{c,n}`` of ``log p(y_n | x_n, θ_s)`` per chain and test sequence (module docstring), the
    tracker's summaries (its test score: the draw's own NLL per token), every tenth draw of chain 0's
    NLL per token as a trace, and ``on_draw(chain, state, log_p)`` with the draw's ``(n_test,)``
    log-likelihoods. Arguments as :class:`~pyrodps.bads.observers.PredictiveRecorder`'s."""

    def __init__(self, model: BADSModel, data: SelectionData, x_test: torch.Tensor, y_test: np.ndarray,
                 tracker: PosteriorTracker, tracked_idx: torch.Tensor, step_size: Callable[[int], float],
                 chains: int, on_draw: Callable | None = None) -> None:
        self.model, self.data, self.x_test = model, data, x_test.long()
        self.y_test = np.asarray(y_test)
        self.y_test_tensor = torch.as_tensor(self.y_test, dtype=torch.long, device=self.x_test.device)
        self.ignore_index = int(getattr(model.likelihood, "ignore_index", IGNORE_INDEX))
        self.tracker, self.tracked_idx, self.step_size, self.on_draw = tracker, tracked_idx, step_size, on_draw
        self.log_sum = torch.full((chains, self.x_test.shape[0]), -math.inf, dtype=torch.float64)
        self.draws = torch.zeros(chains, dtype=torch.int64)
        self.trace: list[tuple[int, float]] = []

    @property
    def num_draws(self) -> int:
        return int(self.draws.sum())

    def begin_chain(self, chain: int) -> None:
        pass

    def observe(self, chain: int, t: int, state, info: dict[str, torch.Tensor], kept: bool) -> None:
        if not kept:
            return
        log_p = draw_log_prob(self.model, state.theta, self.x_test, self.y_test_tensor, self.ignore_index).cpu()
        with torch.no_grad():
            tracked_w = (tracked_weights(self.model, self.data, state, self.tracked_idx)
                         if self.tracked_idx.numel() else None)
        torch.logaddexp(self.log_sum[chain], log_p, out=self.log_sum[chain])
        self.draws[chain] += 1
        if self.on_draw is not None:
            self.on_draw(chain, state, log_p)
        score = nll_per_token(log_p.numpy(), self.y_test, self.ignore_index)
        if chain == 0 and int(self.draws[0]) % 10 == 1:
            self.trace.append((state.step, score))
        self.tracker.record(chain, state.theta, tracked_w, step=state.step - 1, step_size=self.step_size(state.step - 1),
                            test_accuracy=score)

    def state_dict(self) -> dict:
        return {"log_sum": self.log_sum, "draws": self.draws, "trace": list(self.trace), "tracker": self.tracker.get()}

    def load_state_dict(self, state: dict) -> None:
        self.log_sum.copy_(state["log_sum"])
        self.draws.copy_(state["draws"])
        self.trace[:] = [tuple(x) for x in state["trace"]]
        self.tracker.set(state["tracker"])

    def prediction(self) -> np.ndarray:
        """``log p̂(y_n | x_n)`` over all kept draws of all chains, ``(n_test,)``."""
        kept = self.draws > 0
        if not bool(kept.any()):
            return np.full(self.log_sum.shape[1], -np.inf)
        return (torch.logsumexp(self.log_sum[kept], 0) - math.log(self.num_draws)).numpy()

    def chain_predictions(self) -> np.ndarray:
        """Each chain's own ``log p̂(y_n | x_n)``, ``(chains, n_test)``."""
        return (self.log_sum - self.draws.clamp(min=1).double().log()[:, None]).numpy()
