"""Fit BADS to a selection problem: build the model and kernel, sample, summarise.

This is the Python API behind ``pyrodps run --method bads``::

    from pyrodps import BADSConfig, fit_bads, make_scenario
    problem = make_scenario("digits-label-noise", noise_rate=0.4)
    fit = fit_bads(problem, BADSConfig(steps=3000), seed=0)
    fit.weight_mean, fit.weight_std, fit.test_accuracy
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pyrodps.bads.kernel import WEIGHT_UPDATES, BADSKernel, BADSState
from pyrodps.diagnostics.metrics import accuracy, selection_auroc
from pyrodps.diagnostics.posterior import PosteriorTracker, tracked_point_indices
from pyrodps.errors import (
    ValidationError,
    check_choice,
    check_fraction,
    check_positive,
    check_positive_int,
)
from pyrodps.models import BADSModel, Categorical, MinibatchStream, SelectionData, make_weight_prior
from pyrodps.models.bads import LOSS_REFERENCES
from pyrodps.models.data import check_batch_sizes
from pyrodps.models.networks import check_hidden_sizes, network_for
from pyrodps.models.priors import THETA_PRIORS, make_theta_prior
from pyrodps.models.problem import SelectionProblem
from pyrodps.models.weight_net import WeightNet
from pyrodps.run import Checkpointer, DivergenceGuard, SampleResult, sample
from pyrodps.sgmcmc import PolynomialDecay, RMSprop

# Defaults that depend on the kind of input (and so on the default network), chosen by measurement
# (benchmarks/long_run.py, 20,000-step runs, seeds 0-2; README "Choosing the defaults"): the MLP on vectors
# on digits label noise and imbalance, the 1-D CNN on sequences on MNIST-1D label noise and imbalance; the
# 2-D CNN takes the CNN values, untested. ``prior_weight_decay`` is λ of the "calibrated" θ prior.
TUNED_DEFAULTS = {
    "vector": {"step_size": 3e-3, "rho_theta": 120.0, "prior_weight_decay": 1e-4},
    "sequence": {"step_size": 5e-3, "rho_theta": 10.0, "prior_weight_decay": 1e-3},
    "image": {"step_size": 5e-3, "rho_theta": 10.0, "prior_weight_decay": 1e-3},
}
# The defaults of pyrodps 0.1 (tuned on label noise with the N(0, 1) prior and ρ_m = 1; runs decay after a
# few thousand steps): the input-kind values of the "v0.1" preset; the method ``bads-v0.1`` also sets its
# other fields (:data:`pyrodps.app.methods.BADS_METHODS`).
V01_TUNED_DEFAULTS = {
    "vector": {"step_size": 2e-4, "rho_theta": 80.0},
    "sequence": {"step_size": 2e-3, "rho_theta": 10.0},
    "image": {"step_size": 2e-3, "rho_theta": 10.0},
}
PRESETS = {"current": TUNED_DEFAULTS, "v0.1": V01_TUNED_DEFAULTS}
# every field of the v0.1 defaults that differs from today's (with ``preset="v0.1"`` for the input-kind values)
V01_OVERRIDES = {"preset": "v0.1", "theta_prior": "isotropic", "theta_prior_kwargs": {"scale": 1.0}, "rho_meta": 1.0,
                 "meta_share": None, "loss_reference": "none", "burn_in_fraction": 0.25, "steps": 3000,
                 "weight_update": "langevin", "weight_step_size": 1.0}


def input_family(problem: SelectionProblem) -> str:
    """``"vector"``, ``"sequence"`` or ``"image"`` from the shape of one training input."""
    return {1: "vector", 2: "sequence"}.get(problem.x_train.ndim - 1, "image")


@dataclass
class BADSConfig:
    """Settings of a BADS run. Fields left ``None`` are filled by :meth:`resolved` for the problem.

    The defaults (chosen by measurement, README "Choosing the defaults"; long-run stability first, then
    accuracy) sample a tempered posterior (``temperature=0.1``) with pSGLD for θ and an exact
    slice-sampling draw of each visited weight (``weight_update="slice"``):

    * θ prior ``"calibrated"``: ``N(0, s² I)`` with ``s = 1/sqrt(λ ρ_θ N)``, i.e. weight decay λ on the
      mean training loss (:func:`~pyrodps.models.priors.calibrated_scale`); λ, ``step_size`` and
      ``rho_theta`` by input kind from :data:`TUNED_DEFAULTS` (MLP: 1e-4, 3e-3, 120; CNN: 1e-3, 5e-3, 10).
      One line changes it: ``theta_prior="fan-in"`` (variance ``gain / fan_in`` per layer) or
      ``theta_prior="isotropic", theta_prior_kwargs={"scale": 0.3}``.
    * meta likelihood ``ρ_m = meta_share · ρ_θ N / M`` with ``meta_share=0.01`` (set ``rho_meta`` and
      ``meta_share=None`` for a fixed ρ_m);
    * weights measured against the likelihood's saturated loss (``loss_reference="saturated"``);
    * 5,000 steps, the first half burn-in, a draw every 10 steps; ``batch_size`` 128 or N if smaller.

    Runs do not need early stopping: accuracy and AUROC at 20,000 steps stay within a point of their
    best (``benchmarks/long_run.py``). ``preset="v0.1"`` with the method ``bads-v0.1`` restores the
    defaults of pyrodps 0.1 (which decay after a few thousand steps).
    """

    steps: int = 5000
    burn_in: int | None = None  # default: burn_in_fraction of the steps
    burn_in_fraction: float = 0.5
    thin: int = 10
    average_window: int | None = None  # S_avg; default: the last tenth of the steps
    chains: int = 1
    batch_size: int | None = None  # default: min(128, N)
    meta_batch_size: int | None = None  # default: the whole meta set
    step_size: float | None = None  # default: TUNED_DEFAULTS
    step_decay_gamma: float | None = None  # η_t = step_size (1 + t/100)^-γ when set
    weight_step_size: float = 3.0  # slice: initial width / sqrt(T); langevin: the step ε
    weight_update: str = "slice"  # or "langevin" (unadjusted; fused on Triton)
    temperature: float = 0.1
    rho_theta: float | None = None  # default: TUNED_DEFAULTS
    rho_meta: float | None = None  # default: from meta_share
    meta_share: float | None = 0.01  # ρ_m = meta_share · ρ_θ N / M when rho_meta is None
    theta_prior: str = "calibrated"
    theta_prior_kwargs: dict = field(default_factory=dict)
    loss_reference: str = "saturated"
    weight_prior: str = "uniform"
    weight_prior_kwargs: dict = field(default_factory=dict)
    psgld: bool = True
    clip_norm: float | None = None
    hidden: tuple[int, ...] = (256, 256)
    log_z: str = "ignore"
    weights: str = "table"  # or "network": w_i = sigmoid(g_φ(h_i))
    weight_net_features: tuple[str, ...] = ("loss", "label")
    weight_net_hidden: int = 16
    rho_phi: float = 1.0
    preset: str = "current"  # which input-kind defaults fill step_size and rho_theta: "current" or "v0.1"
    track_weights: int | None = 200  # weights kept per draw for diagnostics (posterior.nc); None: all N
    theta_projections: int = 4  # fixed random projections of θ kept per draw for diagnostics

    def validate(self) -> None:
        check_positive_int("steps", self.steps)
        if self.burn_in is not None:
            check_positive_int("burn_in", self.burn_in, minimum=0)
            if self.burn_in >= self.steps:
                raise ValidationError("burn_in", f"must be smaller than steps ({self.steps})")
        check_positive_int("thin", self.thin)
        check_fraction("burn_in_fraction", self.burn_in_fraction, open_high=True)
        if self.average_window is not None:
            check_positive_int("average_window", self.average_window)
            if self.average_window > self.steps:
                raise ValidationError("average_window", f"must be at most steps ({self.steps}), got {self.average_window}")
        check_positive_int("chains", self.chains)
        for name in ("step_size", "weight_step_size", "temperature", "rho_theta", "rho_meta", "meta_share"):
            if getattr(self, name) is not None or name not in ("step_size", "rho_theta", "rho_meta", "meta_share"):
                check_positive(name, getattr(self, name))
        if self.rho_meta is not None and self.meta_share is not None:
            raise ValidationError("rho_meta", "give rho_meta or meta_share, not both (set meta_share=None)")
        if self.rho_meta is None and self.meta_share is None:
            raise ValidationError("meta_share", "give rho_meta or meta_share")
        check_choice("theta_prior", self.theta_prior, THETA_PRIORS)
        if not isinstance(self.theta_prior_kwargs, dict):
            raise ValidationError("theta_prior_kwargs", f"must be a dict, got {type(self.theta_prior_kwargs).__name__}")
        make_theta_prior(self.theta_prior, rho_theta=1.0, num_train=1, **self.theta_prior_kwargs)  # checks the options
        check_choice("loss_reference", self.loss_reference, LOSS_REFERENCES)
        check_choice("preset", self.preset, tuple(PRESETS))
        check_choice("weight_update", self.weight_update, WEIGHT_UPDATES)
        if self.batch_size is not None:
            check_positive_int("batch_size", self.batch_size)
        check_choice("weights", self.weights, ("table", "network"))
        check_positive("rho_phi", self.rho_phi)
        if self.track_weights is not None:
            check_positive_int("track_weights", self.track_weights, minimum=0)
        check_positive_int("theta_projections", self.theta_projections, minimum=0)
        check_positive_int("weight_net_hidden", self.weight_net_hidden)
        check_hidden_sizes("hidden", self.hidden)
        if self.meta_batch_size is not None:
            check_positive_int("meta_batch_size", self.meta_batch_size)
        if self.step_decay_gamma is not None and not 0.5 < self.step_decay_gamma <= 1.0:
            raise ValidationError("step_decay_gamma", f"must lie in (0.5, 1], got {self.step_decay_gamma}")

    def resolved(self, problem: SelectionProblem) -> BADSConfig:
        """A copy with every ``None`` default filled in for ``problem``."""
        return self.resolved_for(input_family(problem), problem.num_train, int(problem.x_meta.shape[0]))

    def resolved_for(self, family: str, num_train: int, num_meta: int) -> BADSConfig:
        """A copy with every ``None`` default filled in for inputs of kind ``family`` (``"vector"``,
        ``"sequence"``, ``"image"``) and train / meta sets of ``num_train`` / ``num_meta`` points."""
        tuned = PRESETS[self.preset][family]
        rho_theta = tuned["rho_theta"] if self.rho_theta is None else self.rho_theta
        prior_kwargs = dict(self.theta_prior_kwargs)
        if self.theta_prior == "calibrated" and "weight_decay" not in prior_kwargs and "prior_weight_decay" in tuned:
            prior_kwargs["weight_decay"] = tuned["prior_weight_decay"]
        rho_meta = self.rho_meta
        if rho_meta is None:
            rho_meta = self.meta_share * rho_theta * num_train / num_meta
        return replace(
            self,
            batch_size=min(128, num_train) if self.batch_size is None else self.batch_size,
            step_size=tuned["step_size"] if self.step_size is None else self.step_size,
            rho_theta=rho_theta,
            rho_meta=rho_meta,
            meta_share=None,
            theta_prior_kwargs=prior_kwargs,
            average_window=max(1, self.steps // 10) if self.average_window is None else self.average_window,
        )

    @property
    def effective_burn_in(self) -> int:
        return int(self.steps * self.burn_in_fraction) if self.burn_in is None else self.burn_in

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BADSFit:
    """Result of :func:`fit_bads`: posterior weight summaries and the model-averaged test predictions.

    ``weight_mean``/``weight_std``: over all steps after burn-in; ``weight_window_mean``: over the last
    ``config.average_window`` steps (``S_avg``), the paper's running average of the reported weights.
    ``tracked``: per-draw summaries for diagnostics (:mod:`pyrodps.diagnostics.posterior`);
    ``train_loss``: ``l_i(θ)`` of every training point at the last draw of each chain, averaged over
    chains. :meth:`to_arviz` gives ArviZ groups.
    """

    weight_mean: np.ndarray
    weight_std: np.ndarray
    test_probs: np.ndarray
    test_accuracy: float
    selection_auroc: float | None
    samples: SampleResult
    accuracy_trace: list[tuple[int, float]]
    config: BADSConfig
    weight_window_mean: np.ndarray | None = None
    tracked: dict[str, np.ndarray] = field(default_factory=dict)
    train_loss: np.ndarray | None = None
    chain_test_probs: np.ndarray | None = None  # (chains, n_test, classes): each chain's own predictive

    def to_arviz(self) -> object:
        """``posterior`` (tracked weights ``w`` over ``point``, ``train_nll``, ``meta_nll``,
        ``param_norm``, ``theta_projection``, ``test_accuracy``) and ``sample_stats`` (``energy``,
        ``grad_norm``, ``step_size``, ``temperature``, ``step``) with dims ``(chain, draw, ...)``:
        an ``InferenceData`` under ArviZ 0.x, a ``DataTree`` under 1.x."""
        from pyrodps.diagnostics.arviz_adapter import make_inference_data
        from pyrodps.diagnostics.posterior import bads_groups

        return make_inference_data(bads_groups(self))


def to_selection_data(problem: SelectionProblem, device: torch.device | str = "cpu") -> SelectionData:
    """Tensors of the train and meta sets."""
    f = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)
    i = lambda a: torch.as_tensor(a, dtype=torch.long, device=device)
    return SelectionData(f(problem.x_train), i(problem.y_train), f(problem.x_meta), i(problem.y_meta))


def default_network(problem: SelectionProblem, hidden: tuple[int, ...], seed: int) -> nn.Module:
    """The network chosen from the input shape (:func:`~pyrodps.models.networks.network_for`: MLP for
    vectors, small CNN for sequences and images), initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return network_for(tuple(problem.x_train.shape[1:]), problem.num_classes, hidden)
        except ValueError as e:
            raise ValidationError("x_train", str(e)) from None


def build_kernel(net: nn.Module, num_classes: int, data: SelectionData, config: BADSConfig, *,
                 weight_net: WeightNet | None = None, init_theta: Callable[[int], torch.Tensor] | None = None,
                 path: str = "fused") -> tuple[BADSModel, BADSKernel]:
    """The model and kernel of a **resolved** ``config`` (:meth:`BADSConfig.resolved_for`) for ``net`` on
    ``data``, as :func:`fit_bads` samples them (the benchmarks build theirs here too)."""
    model = BADSModel(
        net,
        Categorical(num_classes),
        data.num_train,
        data.num_meta,
        theta_prior=make_theta_prior(config.theta_prior, rho_theta=config.rho_theta, num_train=data.num_train,
                                     **config.theta_prior_kwargs),
        weight_prior=make_weight_prior(config.weight_prior, **dict(config.weight_prior_kwargs)),
        rho_theta=config.rho_theta,
        rho_meta=config.rho_meta,
        log_z=config.log_z,
        loss_reference=config.loss_reference,
        weight_net=weight_net,
    )
    step = (
        PolynomialDecay(config.step_size * 100**config.step_decay_gamma, 100.0, config.step_decay_gamma)
        if config.step_decay_gamma
        else config.step_size
    )
    kernel = BADSKernel(
        model,
        step_size=step,
        weight_step_size=config.weight_step_size,
        weight_update=config.weight_update,
        temperature=config.temperature,
        preconditioner=RMSprop() if config.psgld else None,
        clip_norm=config.clip_norm,
        init_theta=init_theta,
        path=path,
    )
    return model, kernel


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
) -> BADSFit:
    """Sample the BADS posterior of ``problem`` and summarise it.

    The test predictions are the posterior predictive ``(1/S) Σ_s p(y | x, θ_s)`` over the kept
    draws of all chains; the weights are the posterior means and standard deviations.

    Long runs: with ``checkpoint_dir`` the run is checkpointed to ``checkpoint_dir/checkpoint.pt``
    every ``checkpoint_every`` steps and, if that file exists, **resumed** from it (the result equals
    an uninterrupted run's bit for bit on CPU; a checkpoint of another configuration, seed or data
    set is refused). ``guard`` sets the divergence guard (default: raise on a non-finite value).
    ``memory_budget`` (bytes) spills kept draws to ``spill_dir`` (default ``checkpoint_dir/draws``).
    ``on_draw(chain, state, test_probs)`` is called at every kept draw with the chain's state (θ, the
    weight table ``u``) and the draw's class probabilities on the test set (for monitoring).
    """
    config = config or BADSConfig()
    config.validate()
    check_positive_int("checkpoint_every", checkpoint_every)
    config = config.resolved(problem)
    data = to_selection_data(problem)
    check_batch_sizes(data, config.batch_size, config.meta_batch_size)
    weight_net = None
    if config.weights == "network":
        weight_net = WeightNet(tuple(problem.x_train.shape[1:]), problem.num_classes, features=config.weight_net_features,
                               hidden=config.weight_net_hidden, rho_phi=config.rho_phi, seed=seed)

    def init_theta(chain: int) -> torch.Tensor:
        if chain == 0 or net is not None:
            return model.initial_theta()
        return model.layout.flatten(default_network(problem, config.hidden, seed * 1000 + chain))

    model, kernel = build_kernel(net if net is not None else default_network(problem, config.hidden, seed),
                                 problem.num_classes, data, config, weight_net=weight_net, init_theta=init_theta)
    x_test = torch.as_tensor(problem.x_test, dtype=torch.float32)
    prob_sum = torch.zeros(config.chains, x_test.shape[0], problem.num_classes, dtype=torch.float64)
    n_draws = [0]
    trace: list[tuple[int, float]] = []
    tracked_points = tracked_point_indices(data.num_train, config.track_weights)
    if memory_budget is not None and spill_dir is None:
        spill_dir = Path(checkpoint_dir) / "draws" if checkpoint_dir is not None else Path(tempfile.mkdtemp(prefix="pyrodps-draws-"))
    tracker = PosteriorTracker(model.layout.size, tracked_points, config.theta_projections, memory_budget=memory_budget,
                               spill_dir=None if spill_dir is None else Path(spill_dir) / "tracked")
    tracked_idx = torch.as_tensor(tracked_points)

    def record_draw(chain: int, state, info) -> None:
        with torch.no_grad():
            params = model.layout.unflatten(state.theta)
            probs = torch.softmax(torch.func.functional_call(model.net, params, (x_test,)), -1)
            tracked_w = _tracked_weights(model, data, state, tracked_idx) if tracked_idx.numel() else None
        prob_sum[chain].add_(probs.double())
        n_draws[0] += 1
        if on_draw is not None:
            on_draw(chain, state, probs)
        draw_accuracy = accuracy(probs.numpy(), problem.y_test)
        if chain == 0 and n_draws[0] % 10 == 1:
            trace.append((state.step, draw_accuracy))
        tracker.record(chain, state.theta, tracked_w, step=state.step - 1, step_size=kernel.step_size(state.step - 1),
                       test_accuracy=draw_accuracy)

    checkpoint = None
    if checkpoint_dir is not None:
        identity = {"config": config.to_dict(), "seed": seed, "data": problem_fingerprint(problem),
                    "net": None if net is None else repr(net)}
        checkpoint = Checkpointer(Path(checkpoint_dir) / "checkpoint.pt", checkpoint_every, identity)

    class FitState:  # what on_draw accumulates, checkpointed with the run
        def get(self) -> dict:
            return {"prob_sum": prob_sum, "n_draws": n_draws[0], "trace": list(trace), "tracker": tracker.get()}

        def set(self, value: dict) -> None:
            prob_sum.copy_(value["prob_sum"])
            n_draws[0] = value["n_draws"]
            trace[:] = [tuple(x) for x in value["trace"]]
            tracker.set(value["tracker"])

    result = sample(
        kernel,
        lambda gen: MinibatchStream(data, config.batch_size, config.meta_batch_size, gen),
        num_steps=config.steps,
        burn_in=config.effective_burn_in,
        thin=config.thin,
        num_chains=config.chains,
        seed=seed,
        track=("energy", "train_nll", "meta_nll", "grad_norm"),
        num_points=data.num_train,
        on_draw=record_draw,
        progress=progress,
        average_window=config.average_window,
        checkpoint=checkpoint,
        extra_state=FitState(),
        guard=guard,
        memory_budget=memory_budget,
        spill_dir=spill_dir,
        warmup_track=("energy", "train_nll", "meta_nll"),
    )
    mean, std = result.weight_mean_std()
    probs = (prob_sum.sum(0) / max(n_draws[0], 1)).numpy()
    chain_probs = (prob_sum / prob_sum.sum(-1, keepdim=True).clamp(min=1e-300)).numpy()
    mean_np = mean.numpy()
    auroc = selection_auroc(mean_np, problem.corrupted) if problem.corrupted is not None else None
    window_mean = result.weight_window_mean()
    train_loss = np.mean([_train_nll(model, data, s).numpy() for s in result.states], axis=0)
    return BADSFit(mean_np, std.numpy(), probs, accuracy(probs, problem.y_test), auroc, result, trace, config,
                   None if window_mean is None else window_mean.numpy(), tracker.arrays(), train_loss, chain_probs)


def problem_fingerprint(problem: SelectionProblem) -> str:
    """A hash of the arrays the sampler sees (train and meta sets, number of classes)."""
    h = hashlib.sha256()
    for a in (problem.x_train, problem.y_train, problem.x_meta, problem.y_meta):
        arr = np.ascontiguousarray(a)
        h.update(str((arr.shape, arr.dtype)).encode())
        h.update(arr.tobytes())
    h.update(str(problem.num_classes).encode())
    return h.hexdigest()[:16]


def _train_nll(model: BADSModel, data: SelectionData, state, idx: torch.Tensor | None = None) -> torch.Tensor:
    """``l_i(θ)`` of the training points ``idx`` (all when ``None``) at the state's θ."""
    x, y = (data.x_train, data.y_train) if idx is None else (data.x_train[idx], data.y_train[idx])
    with torch.no_grad():
        out = torch.func.functional_call(model.net, model.layout.unflatten(state.theta), (x,))
        return model.likelihood.nll(out, y)


def _tracked_weights(model: BADSModel, data: SelectionData, state, idx: torch.Tensor) -> torch.Tensor:
    """``w_i`` of the points ``idx``: the table entries, or ``sigmoid(g_φ(h_i))`` of the weight network."""
    if state.u is not None:
        return torch.sigmoid(state.u.index_select(0, idx))
    wn = model.weight_net
    h = wn.features(data.x_train[idx], data.y_train[idx], _train_nll(model, data, state, idx))
    return torch.sigmoid(wn.u(state.phi, h))
