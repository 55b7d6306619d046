"""Fit BADS to a selection problem: build the model and kernel, sample, summarise.

This is the Python API behind ``pyrodps run --method bads``::

    from pyrodps import BADSConfig, fit_bads, make_scenario
    problem = make_scenario("digits-label-noise", noise_rate=0.4)
    fit = fit_bads(problem, BADSConfig(steps=3000), seed=0)
    fit.weight_mean, fit.weight_std, fit.test_accuracy
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pyrodps.bads.build import build
from pyrodps.bads.config import BADSConfig
from pyrodps.bads.kernel import BADSState
from pyrodps.bads.observers import (
    PredictiveRecorder,
    WeightStatistics,
    train_nll,
    train_prediction,
)
from pyrodps.bads.sequence_predictive import SequencePredictiveRecorder
from pyrodps.bads.source_trace import source_observers
from pyrodps.diagnostics.metrics import selection_auroc, trace_score
from pyrodps.diagnostics.posterior import PosteriorTracker, tracked_point_indices
from pyrodps.errors import check_positive_int
from pyrodps.models.problem import SelectionProblem
from pyrodps.models.sequence_problem import SEQUENCE_TASK, input_dtype
from pyrodps.run import Checkpointer, DivergenceGuard, SampleResult, folder_lock, sample

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class BADSFit:
    """Result of :func:`fit_bads`: posterior weight summaries and the model-averaged test predictions.

    ``weight_mean``/``weight_std``: over all steps after burn-in; ``weight_window_mean``: over the last
    ``config.average_window`` steps (``S_avg``), the paper's running average of the reported weights.
    ``tracked``: per-draw summaries for diagnostics (:mod:`pyrodps.diagnostics.posterior`);
    ``train_loss``: ``l_i(θ)`` of every training point at the last draw of each chain, averaged over
    chains; ``train_predicted``: the predicted class (or mean) of every training input from the same
    draws (class probabilities averaged over chains, then the most probable class). :meth:`to_arviz` gives ArviZ groups.
    """

    weight_mean: np.ndarray
    weight_std: np.ndarray
    test_probs: np.ndarray  # class probabilities, predictive means (regression), log p̂(y_n | x_n) (sequence)
    test_accuracy: float  # accuracy, RMSE for regression, NLL per token for sequences (``test_score_name``)
    selection_auroc: float | None
    samples: SampleResult
    accuracy_trace: list[tuple[int, float]]
    config: BADSConfig
    weight_window_mean: np.ndarray | None = None
    tracked: dict[str, np.ndarray] = field(default_factory=dict)
    train_loss: np.ndarray | None = None
    chain_test_probs: np.ndarray | None = None  # (chains, n_test, ...): each chain's own predictive
    chain_weight_mean: np.ndarray | None = None  # (chains, N): each chain's posterior-mean weights
    task: str = "classification"
    train_predicted: np.ndarray | None = None

    @property
    def test_score_name(self) -> str:
        return {"classification": "test_accuracy", "sequence": "test_nll_per_token"}.get(self.task, "test_rmse")

    def to_arviz(self) -> object:
        """``posterior`` (tracked weights ``w`` over ``point``, ``train_nll``, ``meta_nll``,
        ``param_norm``, ``theta_projection``, ``test_accuracy``) and ``sample_stats`` (``energy``,
        ``grad_norm``, ``step_size``, ``temperature``, ``step``) with dims ``(chain, draw, ...)``:
        an ``InferenceData`` under ArviZ 0.x, a ``DataTree`` under 1.x."""
        from pyrodps.diagnostics.arviz_adapter import make_inference_data
        from pyrodps.diagnostics.posterior import bads_groups

        return make_inference_data(bads_groups(self))


def fit_bads(
    problem: SelectionProblem,
    config: BADSConfig | None = None,
    *,
    seed: int = 0,
    net: nn.Module | None = None,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 500,
    guard: DivergenceGuard | None = None,
    memory_budget: int | None = None,
    spill_dir: str | Path | None = None,
    on_draw: Callable[[int, BADSState, torch.Tensor], None] | None = None,
    parallel: object | None = None,
) -> BADSFit:
    """Sample the BADS posterior of ``problem`` and summarise it.

    The test predictions are the posterior predictive ``(1/S) Σ_s p(y | x, θ_s)`` over the kept
    draws of all chains (for regression, the mean of the predictive means); the weights are the
    posterior means and standard deviations.

    Long runs: with ``checkpoint_dir`` the run is checkpointed to ``checkpoint_dir/checkpoint.pt``
    every ``checkpoint_every`` steps (two generations with checksums, :class:`~pyrodps.run.Checkpointer`)
    and, if a checkpoint exists, **resumed** from it (the result equals an uninterrupted run's bit for
    bit on CPU; a checkpoint of another configuration, seed or data set is refused). The folder is
    locked while the fit runs (:func:`~pyrodps.run.folder_lock`), and SIGINT/SIGTERM end the fit with a
    final checkpoint (:class:`~pyrodps.run.RunInterrupted`). ``guard`` sets the divergence guard (default: raise on a non-finite value).
    ``memory_budget`` (bytes) spills kept draws to ``spill_dir`` (default ``checkpoint_dir/draws``;
    else a temporary folder removed when the fit returns). ``on_draw(chain, state, prediction)`` is called at
    every kept draw with the chain's state (θ, the weight table ``u``) and the draw's test prediction.
    ``parallel``: this process's :class:`pyrodps.parallel.DataParallel` when several processes sample one
    chain together (every rank calls ``fit_bads`` alike; rank 0 alone writes checkpoints).
    """
    check_positive_int("checkpoint_every", checkpoint_every)
    setup = build(problem, config, seed=seed, net=net)
    if parallel is not None:  # data-parallel: the kernel wrapped, the progress bar and the run folder rank 0's
        setup, progress, checkpoint_dir = parallel.prepare_fit(setup, progress=progress, checkpoint_dir=checkpoint_dir,
                                                               memory_budget=memory_budget)
    with contextlib.ExitStack() as cleanup:
        if checkpoint_dir is not None:
            cleanup.enter_context(folder_lock(checkpoint_dir))
        if memory_budget is not None and spill_dir is None:  # a folder of the run's, or a temporary one
            spill_dir = Path(checkpoint_dir) / "draws" if checkpoint_dir is not None else Path(
                cleanup.enter_context(tempfile.TemporaryDirectory(prefix="pyrodps-draws-")))
        return _fit(problem, setup, seed, net, progress, checkpoint_dir, checkpoint_every, guard, memory_budget,
                    spill_dir, on_draw, parallel)


def _fit(problem: SelectionProblem, setup, seed: int, net, progress: bool, checkpoint_dir, checkpoint_every: int,
         guard, memory_budget, spill_dir, on_draw, parallel=None) -> BADSFit:
    config, model, data = setup.config, setup.model, setup.data
    tracked_points = tracked_point_indices(data.num_train, config.track_weights)
    tracker = PosteriorTracker(model.layout.size, tracked_points, config.theta_projections, memory_budget=memory_budget,
                               spill_dir=None if spill_dir is None else Path(spill_dir) / "tracked")
    x_test = torch.as_tensor(problem.x_test, dtype=input_dtype(problem))
    weights = WeightStatistics(data.num_train, config.effective_burn_in, config.steps - config.average_window)
    sequence = model.likelihood.task == SEQUENCE_TASK  # a language model: log-sum-exp of sequence likelihoods
    recorder_type = SequencePredictiveRecorder if sequence else PredictiveRecorder
    recorder = recorder_type(model, data, x_test, problem.y_test, tracker, torch.as_tensor(tracked_points),
                             lambda t: setup.kernel.step_size(t), config.chains, on_draw)
    checkpoint = None
    if checkpoint_dir is not None:
        identity = {"config": config.to_dict(), "seed": seed, "data": problem_fingerprint(problem),
                    "net": None if net is None else repr(net)}
        checkpoint = Checkpointer(Path(checkpoint_dir) / CHECKPOINT_FILE, checkpoint_every, identity)
        if parallel is not None:  # written by rank 0, read by every rank through it
            checkpoint = parallel.checkpointer(checkpoint)
    result = sample(
        setup.kernel,
        setup.batches,
        num_steps=config.steps,
        burn_in=config.effective_burn_in,
        thin=config.thin,
        num_chains=config.chains,
        seed=seed,
        track=("energy", "train_nll", "meta_nll", "grad_norm"),
        observers={"weights": weights, "predictive": recorder, **source_observers(problem, setup)},
        progress=progress,
        checkpoint=checkpoint,
        guard=guard,
        memory_budget=memory_budget,
        spill_dir=spill_dir,
        warmup_track=("energy", "train_nll", "meta_nll"),
    )
    mean, std = weights.mean_std()
    pred = recorder.prediction()
    mean_np = mean.numpy()
    auroc = selection_auroc(mean_np, problem.corrupted) if problem.corrupted is not None else None
    window_mean = weights.window_mean()
    loss = np.mean([train_nll(model, data, s).numpy() for s in result.states], axis=0)
    predicted = None if sequence else np.mean([train_prediction(model, data, s).numpy() for s in result.states], axis=0)
    task = model.likelihood.task
    return BADSFit(mean_np, std.numpy(), pred, trace_score(pred, problem.y_test, task), auroc, result,
                   recorder.trace, config, None if window_mean is None else window_mean.numpy(), tracker.arrays(),
                   loss, recorder.chain_predictions(), weights.chain_means(), task,
                   predicted.argmax(axis=1) if task == "classification" else predicted)


def problem_fingerprint(problem: SelectionProblem) -> str:
    """A hash of the arrays the sampler sees (train and meta sets, number of classes)."""
    h = hashlib.sha256()
    for a in (problem.x_train, problem.y_train, problem.x_meta, problem.y_meta):
        arr = np.ascontiguousarray(a)
        h.update(str((arr.shape, arr.dtype)).encode())
        h.update(arr.tobytes())
    h.update(str(problem.num_classes).encode())
    return h.hexdigest()[:16]
