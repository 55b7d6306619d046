"""The settings of a BADS run: one dataclass, validated when it is made, resolved once for a problem.

A :class:`BADSConfig` cannot exist with a bad field: ``__post_init__`` checks every field (also after
``dataclasses.replace``) and names the offending one. Fields left ``None`` depend on the problem;
:meth:`BADSConfig.resolved` fills them, once, in :func:`pyrodps.bads.build.build`.

Priors, the likelihood and the θ-block sampler are named by a registry name or a plug-in
(``module:Class`` or ``path/file.py:Class``) with keyword arguments (:mod:`pyrodps.plugins`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from pyrodps.errors import (
    ValidationError,
    check_choice,
    check_fraction,
    check_positive,
    check_positive_int,
)
from pyrodps.models.bads import LOSS_REFERENCES
from pyrodps.models.likelihoods import make_likelihood
from pyrodps.models.networks import check_hidden_sizes, default_hidden
from pyrodps.models.normaliser import check_log_z
from pyrodps.models.priors import make_theta_prior, make_weight_prior
from pyrodps.plugins import build as build_plugin
from pyrodps.plugins import parse_kwargs
from pyrodps.sgmcmc.integrators import SAMPLERS, Integrator

WEIGHT_UPDATES = ("langevin", "slice")
# how the weights are parametrised: a table of u_i, a weight network g_φ, or both multiplied
# (per-point times group weights with weight_net_features=("group",), weight_net_hidden=0)
WEIGHT_KINDS = ("table", "network", "product")

# Defaults that depend on the kind of input (and so on the default network), chosen by measurement
# (benchmarks/long_run.py, 20,000-step runs, seeds 0-2; README "Choosing the defaults"): the MLP on vectors
# on digits label noise and imbalance, the 1-D CNN on sequences on MNIST-1D label noise and imbalance; the
# 2-D CNN takes the CNN values, untested. ``prior_weight_decay`` is λ of the "calibrated" θ prior.
TUNED_DEFAULTS = {
    "vector": {"step_size": 3e-3, "rho_theta": 120.0, "prior_weight_decay": 1e-4},
    "sequence": {"step_size": 5e-3, "rho_theta": 10.0, "prior_weight_decay": 1e-3},
    "image": {"step_size": 5e-3, "rho_theta": 10.0, "prior_weight_decay": 1e-3},
    # token ids (a sequence problem and its tiny GPT-2), with a smaller default batch: lm-mixture, seed 0, test NLL
    # per token at 5,000 steps for step sizes 1e-3 / 2e-3 / 3e-3 / 5e-3: 2.142 / 2.064 / 2.010 / 1.976 (ρ_θ = 0.1
    # at 1e-3: 2.331; batch 64 at 1e-3: 2.091); ρ_θ = 1 because the summed token NLL is the likelihood itself
    "tokens": {"step_size": 5e-3, "rho_theta": 1.0, "prior_weight_decay": 1e-3, "batch_size": 32},
}
# The defaults of pyrodps 0.1 (tuned on label noise with the N(0, 1) prior and ρ_m = 1; runs decay after a
# few thousand steps): the input-kind values of the "v0.1" preset; the method ``bads-v0.1`` also sets its
# other fields (:data:`V01_OVERRIDES`).
V01_TUNED_DEFAULTS = {
    "vector": {"step_size": 2e-4, "rho_theta": 80.0},
    "sequence": {"step_size": 2e-3, "rho_theta": 10.0},
    "image": {"step_size": 2e-3, "rho_theta": 10.0},
    "tokens": {"step_size": 5e-3, "rho_theta": 1.0, "batch_size": 32},  # not in 0.1: today's values
}
PRESETS = {"current": TUNED_DEFAULTS, "v0.1": V01_TUNED_DEFAULTS}
# every field of the v0.1 defaults that differs from today's (with ``preset="v0.1"`` for the input-kind values)
V01_OVERRIDES = {"preset": "v0.1", "theta_prior": "isotropic", "theta_prior_kwargs": {"scale": 1.0}, "rho_meta": 1.0,
                 "meta_share": None, "loss_reference": "none", "burn_in_fraction": 0.25, "steps": 3000,
                 "weight_update": "langevin", "weight_step_size": 1.0}


def make_sampler(spec: str, **kwargs: object) -> Integrator:
    """The θ-block sampler named ``spec`` (``"sgld"``, ``"psgld"``, ``module:Class`` or
    ``path/file.py:Class``, a subclass of :class:`~pyrodps.sgmcmc.integrators.Integrator`)."""
    return build_plugin(spec, kwargs, SAMPLERS, Integrator, "sampler")


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
      ``theta_prior="isotropic", theta_prior_kwargs={"scale": 0.3}``, or a class of your own,
      ``theta_prior="my_module:MyPrior"``.
    * meta likelihood ``ρ_m = meta_share · ρ_θ N / M`` with ``meta_share=0.01`` (set ``rho_meta`` and
      ``meta_share=None`` for a fixed ρ_m);
    * the likelihood from the problem (categorical for class labels, Gaussian for regression;
      :func:`~pyrodps.models.problem.default_likelihood`) unless ``likelihood`` names one;
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
    likelihood: str | None = None  # default: from the problem
    likelihood_kwargs: dict = field(default_factory=dict)
    sampler: str = "psgld"  # the θ-block sampler: "sgld", "psgld" or a plug-in
    sampler_kwargs: dict = field(default_factory=dict)
    clip_norm: float | None = None
    hidden: tuple[int, ...] | None = None  # default: models.networks.default_hidden (16 on a small table, else 256-256)
    log_z: str = "ignore"
    weights: str = "table"  # "network": w_i = sigmoid(g_φ(h_i)); "product": sigmoid(u_i) sigmoid(g_φ(h_i))
    # h_i: any of "input", "label", "group", "embedding" (the main network's penultimate features), "loss"
    weight_net_features: tuple[str, ...] = ("loss", "label")
    weight_net_hidden: int = 16  # 0: the linear map φ · h_i (grouped weights with features ("label",) or ("group",))
    rho_phi: float = 1.0
    companion_window: int = 1  # log_z="companion": l_i(θ') averaged over a point's last visits (1: one draw)
    companion_step_size: float | None = None  # θ' step size (default: θ's)
    companion_temperature: float | None = None  # θ' temperature (default: temperature)
    preset: str = "current"  # which input-kind defaults fill step_size and rho_theta: "current" or "v0.1"
    track_weights: int | None = 200  # weights kept per draw for diagnostics (posterior.nc); None: all N
    theta_projections: int = 4  # fixed random projections of θ kept per draw for diagnostics

    def __post_init__(self) -> None:
        """Check every field; raise :class:`ValidationError` naming the first bad one."""
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
        for name in ("weight_step_size", "temperature", "rho_phi"):
            check_positive(name, getattr(self, name))
        for name in ("step_size", "rho_theta", "rho_meta", "meta_share", "clip_norm", "companion_step_size",
                     "companion_temperature"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name))
        if self.rho_meta is not None and self.meta_share is not None:
            raise ValidationError("rho_meta", "give rho_meta or meta_share, not both (set meta_share=None)")
        if self.rho_meta is None and self.meta_share is None:
            raise ValidationError("meta_share", "give rho_meta or meta_share")
        for piece in ("theta_prior", "weight_prior", "likelihood", "sampler"):
            kwargs = f"{piece}_kwargs"
            setattr(self, kwargs, parse_kwargs(getattr(self, kwargs), kwargs))
        make_theta_prior(self.theta_prior, rho_theta=1.0, num_train=1, **self.theta_prior_kwargs)  # checks the options
        make_weight_prior(self.weight_prior, **self.weight_prior_kwargs)
        if self.likelihood is not None:
            make_likelihood(self.likelihood, num_classes=2, **self.likelihood_kwargs)  # checks the options
        elif self.likelihood_kwargs:
            raise ValidationError("likelihood_kwargs", "name the likelihood to give it options")
        make_sampler(self.sampler, **self.sampler_kwargs)
        check_choice("loss_reference", self.loss_reference, LOSS_REFERENCES)
        check_choice("preset", self.preset, tuple(PRESETS))
        check_choice("weight_update", self.weight_update, WEIGHT_UPDATES)
        check_log_z(self.log_z)
        if self.log_z == "companion-groups" and self.weights == "table":
            raise ValidationError("log_z", "'companion-groups' keeps log Z(w) for the weight network's φ; "
                                  "set weights='network' or 'product'")
        if self.batch_size is not None:
            check_positive_int("batch_size", self.batch_size)
        check_choice("weights", self.weights, WEIGHT_KINDS)
        check_positive_int("companion_window", self.companion_window)
        self.weight_net_features = tuple(self.weight_net_features)
        if self.track_weights is not None:
            check_positive_int("track_weights", self.track_weights, minimum=0)
        check_positive_int("theta_projections", self.theta_projections, minimum=0)
        check_positive_int("weight_net_hidden", self.weight_net_hidden, minimum=0)
        if self.hidden is not None:
            self.hidden = check_hidden_sizes("hidden", self.hidden)
        if self.meta_batch_size is not None:
            check_positive_int("meta_batch_size", self.meta_batch_size)
        if self.step_decay_gamma is not None and not 0.5 < self.step_decay_gamma <= 1.0:
            raise ValidationError("step_decay_gamma", f"must lie in (0.5, 1], got {self.step_decay_gamma}")

    @classmethod
    def from_flags(cls, **fields: object) -> BADSConfig:
        """A config from fields set by hand (the command line's flags): a given ``rho_meta`` replaces
        the default ``meta_share``."""
        if fields.get("rho_meta") is not None:
            fields.setdefault("meta_share", None)
        return cls(**fields)

    def validate(self) -> None:
        """Kept for callers of pyrodps 0.1: a config is checked when it is made (``__post_init__``)."""
        self.__post_init__()

    def resolved_for(self, family: str, num_train: int, num_meta: int, num_features: int | None = None,
                     num_classes: int | None = None) -> BADSConfig:
        """A copy with every ``None`` default filled in for inputs of kind ``family`` (``"vector"``,
        ``"sequence"``, ``"image"``), train / meta sets of ``num_train`` / ``num_meta`` points and, for
        vectors, ``num_features`` features and ``num_classes`` classes (``None``: regression) (the
        network: :func:`~pyrodps.models.networks.default_hidden`)."""
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
            batch_size=min(tuned.get("batch_size", 128), num_train) if self.batch_size is None else self.batch_size,
            hidden=default_hidden(family, num_train, num_features, num_classes) if self.hidden is None else self.hidden,
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

    @property
    def is_resolved(self) -> bool:
        return None not in (self.hidden, self.batch_size, self.step_size, self.rho_theta, self.rho_meta, self.average_window)

    def to_dict(self) -> dict:
        return asdict(self)
