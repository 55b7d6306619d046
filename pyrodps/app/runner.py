"""``pyrodps run``: one method on one scenario (or on your own arrays), results written atomically.

Everything the user passed is checked before any work starts; nothing is written when a check fails.
Files: ``metrics.json`` (scenario, method, seed, steps, wall_seconds, test_accuracy, balanced_accuracy,
selection_auroc, ...), ``weights.npz`` for weighting methods (``mean``, ``std``, ``corrupted``, ``label``:
the given label or target; per training point; BADS adds ``loss``, the training loss at the last
draws, and ``predicted``, the class or mean predicted there) and ``config.json``; the BADS
methods also write ``posterior.nc`` (ArviZ groups ``posterior`` and ``sample_stats`` per chain and draw,
see :meth:`pyrodps.bads.fit.BADSFit.to_arviz`), read by ``pyrodps report``, and the per-chain results
the convergence verdict compares: ``weights.npz["chain_mean"]`` (``(chains, N)``: each chain's
posterior-mean weight of every training point), ``metrics.json["chain_test_accuracy"]`` (test accuracy
of each chain's own posterior predictive) and ``metrics.json["chain_selection_auroc"]`` (each chain's
selection AUROC, ``null`` without a corrupted mask holding both classes). Last, they write
``convergence.json``: the function-space and parameter-space verdict with the default thresholds
(:mod:`pyrodps.diagnostics.verdict`), the same that ``pyrodps report`` recomputes from these files.
On a problem with ``weight_groups`` (a mixture of sources) a weighting method also writes ``sources.json``
(per source: size, mean weight and its posterior sd, ...), and BADS ``source_trace.npz`` and ``sources.png``
(every source's mean weight against the step, per chain): :mod:`pyrodps.diagnostics.sources`.
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pyrodps.app.methods import BADS_METHODS, METHODS, check_method_overrides, run_method
from pyrodps.app.source_files import write_run_sources
from pyrodps.bads import BADSConfig
from pyrodps.bads.fit import CHECKPOINT_FILE
from pyrodps.data import SCENARIOS, load_npz_problem, make_scenario, scenario_options
from pyrodps.data.scaling import STANDARDISE_MODES, standardise_inputs
from pyrodps.errors import (
    OutputExistsError,
    ValidationError,
    WriteError,
    check_choice,
    check_positive,
    check_positive_int,
)
from pyrodps.io import read_json, write_json, write_npz
from pyrodps.models.likelihoods import make_likelihood
from pyrodps.models.problem import SelectionProblem
from pyrodps.parallel import current_data_parallel
from pyrodps.run.checkpoint import remove_checkpoint
from pyrodps.run.guard import GUARD_ACTIONS, DivergenceGuard
from pyrodps.run.lock import check_unlocked, folder_lock
from pyrodps.run.stop import graceful_stop
from pyrodps.version import __version__

REQUEST_FILE = "request.json"
# BADSConfig fields the command line sets (``--step-size`` ...); ``likelihood`` also reaches the baselines
CONFIG_FLAGS = ("hidden", "likelihood", "likelihood_kwargs", "weight_prior", "weight_prior_kwargs", "theta_prior",
                "theta_prior_kwargs", "sampler", "sampler_kwargs", "temperature", "step_size", "rho_theta", "rho_meta",
                "companion_step_size", "companion_temperature", "companion_window", "weight_net_features",
                "weight_net_hidden")
SHARED_FLAGS = ("hidden", "likelihood", "likelihood_kwargs")


@dataclass
class ProblemSpec:
    """Where a problem comes from: a named scenario with options, or three ``.npz`` files."""

    scenario: str | None = None
    options: dict = field(default_factory=dict)
    train: Path | None = None
    meta: Path | None = None
    test: Path | None = None
    standardise: str = "auto"  # vector inputs: :func:`~pyrodps.data.scaling.standardise_inputs`

    def validate(self) -> None:
        check_choice("standardise", self.standardise, STANDARDISE_MODES)
        files = [self.train, self.meta, self.test]
        if self.scenario is None:
            if any(f is None for f in files):
                raise ValidationError("scenario", "give --scenario, or all of --train, --meta and --test")
            if self.options:
                raise ValidationError(next(iter(self.options)), "scenario options need --scenario")
            return
        if any(f is not None for f in files):
            raise ValidationError("scenario", "give either --scenario or --train/--meta/--test, not both")
        check_choice("scenario", self.scenario, tuple(SCENARIOS))
        known = scenario_options(self.scenario)
        for k in self.options:
            if k not in known:
                raise ValidationError(k, f"scenario {self.scenario!r} takes no option {k!r}; it takes {', '.join(known)}")

    @property
    def name(self) -> str:
        return self.scenario or "custom"

    def prepare(self, seed: int) -> tuple[SelectionProblem, dict]:
        """The problem, its vector inputs standardised as :attr:`standardise` says, and the record of it."""
        if self.scenario is None:
            problem = load_npz_problem(self.train, self.meta, self.test)
        else:
            problem = make_scenario(self.scenario, seed=seed, **self.options)
        return standardise_inputs(problem, self.standardise, user_data=self.scenario is None)

    def build(self, seed: int) -> SelectionProblem:
        return self.prepare(seed)[0]


@dataclass
class RunRequest:
    """A validated ``pyrodps run`` invocation."""

    problem: ProblemSpec
    method: str
    out: Path
    steps: int | None = None
    seed: int = 0
    force: bool = False
    chains: int = 1  # BADS methods: chains run one after another
    track_weights: int | str | None = None  # BADS: weights kept per draw; None: the default, "all": every point
    checkpoint_every: int = 500  # BADS: steps between checkpoints in out/checkpoint.pt
    on_divergence: str = "raise"  # BADS: "raise" or "backoff" (halve the step size and go on)
    resume: bool = False  # continue the run whose request.json and checkpoint.pt are in out
    memory_budget_mib: float | None = None  # BADS: kept draws in memory before spilling to out/draws
    config: dict = field(default_factory=dict)  # BADSConfig fields from the command line (CONFIG_FLAGS)

    def validate(self) -> None:
        self.problem.validate()
        check_positive_int("checkpoint_every", self.checkpoint_every)
        check_choice("on_divergence", self.on_divergence, GUARD_ACTIONS)
        if self.memory_budget_mib is not None:
            check_positive("memory_budget_mib", self.memory_budget_mib)
        check_choice("method", self.method, METHODS)
        if self.steps is not None:
            check_positive_int("steps", self.steps)
        check_positive_int("seed", self.seed, minimum=0)
        check_positive_int("chains", self.chains)
        if self.chains > 1 and self.method not in BADS_METHODS:
            raise ValidationError("chains", f"only the BADS methods ({', '.join(BADS_METHODS)}) run chains, not {self.method!r}")
        if self.track_weights is not None:
            if self.method not in BADS_METHODS:
                raise ValidationError("track_weights", f"only the BADS methods track weights, not {self.method!r}")
            if self.track_weights != "all":
                check_positive_int("track_weights", self.track_weights, minimum=0)
        for name in self.config:
            check_choice("config", name, CONFIG_FLAGS)
            if name not in SHARED_FLAGS and self.method not in BADS_METHODS:
                raise ValidationError(name, f"only the BADS methods ({', '.join(BADS_METHODS)}) take it, "
                                      f"not {self.method!r}")
        if self.method in BADS_METHODS:
            check_method_overrides(self.method, self.bads_config())  # the base config is checked as it is made
        elif self.config.get("likelihood") is not None:
            make_likelihood(self.config["likelihood"], num_classes=2, **self.config.get("likelihood_kwargs", {}))
        check_unlocked(self.out)  # before the emptiness check: "in use by pid N" says more than "not empty"
        if not self.resume:
            check_output_dir(self.out, self.force)

    def to_dict(self) -> dict:
        """What ``request.json`` holds: enough to rebuild the request for ``--resume``."""
        spec = {k: (None if v is None else str(v)) if k in ("train", "meta", "test") else v
                for k, v in self.problem.__dict__.items()}
        return {"problem": spec, "method": self.method, "steps": self.steps, "seed": self.seed, "chains": self.chains,
                "track_weights": self.track_weights, "checkpoint_every": self.checkpoint_every,
                "on_divergence": self.on_divergence, "memory_budget_mib": self.memory_budget_mib,
                "config": self.config}

    def bads_config(self) -> BADSConfig:
        """The base :class:`BADSConfig` of a BADS method: the command line's fields (the method's own
        settings and ``steps`` are applied once, by :func:`~pyrodps.app.methods.run_method`)."""
        fields: dict = {"chains": self.chains, **self.config}
        if self.track_weights is not None:
            fields["track_weights"] = None if self.track_weights == "all" else self.track_weights
        return BADSConfig.from_flags(**fields)


def resume_request(out: Path) -> RunRequest:
    """The request of the unfinished run in ``out`` (from its ``request.json``), marked to resume."""
    out = Path(out)
    path = out / REQUEST_FILE
    if not path.is_file():
        raise ValidationError("resume", f"{out} holds no {REQUEST_FILE}: it is not a pyrodps run folder")
    if (out / "metrics.json").is_file():
        raise ValidationError("resume", f"the run in {out} has finished already (metrics.json exists)")
    d = read_json(path, "resume")
    files = {k: None if d["problem"].get(k) is None else Path(d["problem"][k]) for k in ("train", "meta", "test")}
    spec = ProblemSpec(d["problem"]["scenario"], d["problem"]["options"], **files,
                       standardise=d["problem"].get("standardise", "auto"))
    return RunRequest(spec, d["method"], out, d["steps"], d["seed"], chains=d["chains"], track_weights=d["track_weights"],
                      checkpoint_every=d["checkpoint_every"], on_divergence=d["on_divergence"], resume=True,
                      memory_budget_mib=d.get("memory_budget_mib"), config=d.get("config", {}))

def check_output_dir(out: Path, force: bool) -> None:
    """Refuse a non-empty output folder unless ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"out: {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"out: {out} is not empty; pass --force to overwrite")


def machine_description() -> dict:
    """Where a result was computed."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyrodps": __version__,
    }


def run(request: RunRequest, *, progress: bool = True) -> dict:
    """Run the request and write its results; returns the metrics.

    The folder is locked for the whole run (:func:`~pyrodps.run.folder_lock`: a second process is
    refused with this one's pid). A failure to write a result file raises
    :class:`~pyrodps.errors.WriteError`; the checkpoint of a BADS run is removed only after every
    result is written, so ``--resume`` then finishes the run without sampling again. For the BADS
    methods, SIGINT/SIGTERM stop the run at a checkpoint (:class:`~pyrodps.run.RunInterrupted`), also
    when they arrive before sampling has begun.
    """
    request.validate()
    with contextlib.ExitStack() as stack:
        if request.method in BADS_METHODS:  # a signal from here on stops at a checkpoint (the driver's check)
            stack.enter_context(graceful_stop())
        return _run(request, progress)


def _run(request: RunRequest, progress: bool) -> dict:
    problem, scaling = request.problem.prepare(request.seed)  # validates the arrays before any training
    out = Path(request.out)
    with folder_lock(out):
        if not request.resume:
            remove_checkpoint(out / CHECKPOINT_FILE)  # --force: never resume someone else's run
            write_json(out / REQUEST_FILE, request.to_dict())
        options: dict = {k: request.config[k] for k in SHARED_FLAGS if k in request.config}
        if request.method in BADS_METHODS:
            options = {"bads_config": request.bads_config(), "checkpoint_dir": out,
                       "checkpoint_every": request.checkpoint_every,
                       "guard": DivergenceGuard(action=request.on_divergence),
                       "memory_budget": None if request.memory_budget_mib is None
                       else max(1, int(request.memory_budget_mib * 2**20)),
                       "parallel": current_data_parallel()}  # under torchrun: pyrodps.app.data_parallel
        res = run_method(problem, request.method, seed=request.seed, steps=request.steps, progress=progress, **options)
        try:
            metrics = _write_results(request, problem, res, out, scaling)
        except WriteError as e:
            hint = ("The run's checkpoint is intact: free the space and finish it with "
                    f"`pyrodps run --resume {out}`" if request.method in BADS_METHODS else "Free the space and run again")
            raise WriteError(e.path, e, hint) from e
        remove_checkpoint(out / CHECKPOINT_FILE)  # every result is written: the checkpoint is spent
    return metrics


def _write_results(request: RunRequest, problem: SelectionProblem, res, out: Path, scaling: dict) -> dict:
    fit = res.fit
    metrics = {
        "scenario": request.problem.name,
        "scenario_options": request.problem.options,
        **res.metrics(problem),
        "num_train": problem.num_train,
        "num_meta": int(problem.x_meta.shape[0]),
        "num_test": int(problem.x_test.shape[0]),
        "machine": machine_description(),
    }
    corrupted = problem.corrupted if problem.corrupted is not None else np.zeros(problem.num_train, bool)
    chain_mean = None
    if fit is not None:
        from pyrodps.diagnostics import run_verdict  # ArviZ takes a second to import

        metrics["sampler_events"] = fit.samples.extras  # step-size back-offs, resumptions
        chain_mean = run_verdict.chain_mean_weights(fit)
        metrics["chain_test_accuracy"] = run_verdict.chain_test_accuracy(fit, problem.y_test)
        metrics["chain_selection_auroc"] = run_verdict.chain_selection_auroc(chain_mean, corrupted)
    write_json(out / "config.json", {"problem": request.to_dict()["problem"], "method": request.method,
                                     "seed": request.seed, "config": res.config, "standardise": scaling})
    if res.weight_mean is not None:
        arrays = {"mean": res.weight_mean, "std": res.weight_std, "corrupted": corrupted,
                  "label": np.asarray(problem.y_train)}
        if chain_mean is not None:
            arrays["chain_mean"] = chain_mean
        if problem.minority is not None:
            arrays["minority"] = problem.minority
        if fit is not None and fit.train_loss is not None:
            arrays["loss"] = fit.train_loss
        if fit is not None and fit.train_predicted is not None:
            arrays["predicted"] = fit.train_predicted
        write_npz(out / "weights.npz", **arrays)
    if fit is not None:
        from pyrodps.diagnostics.arviz_adapter import write_netcdf

        data = fit.to_arviz()
        write_netcdf(data, out / "posterior.nc")
        # the verdict from the very inputs written above: `pyrodps report` recomputes the same
        verdict = run_verdict.assess_data(data, chain_mean, corrupted, metrics["chain_test_accuracy"])
        write_json(out / "convergence.json", verdict.to_dict())
    write_run_sources(out, problem, res)  # with weight_groups: sources.json, source_trace.npz, sources.png
    write_json(out / "metrics.json", metrics)  # last: its presence marks a finished run
    return metrics

