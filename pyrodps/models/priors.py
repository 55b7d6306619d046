"""Priors: ``p_0(θ)`` on the network parameters and ``p(w)`` on the instance weights.

A prior is a small object. A researcher adds one by subclassing :class:`ThetaPrior` or
:class:`WeightPrior` in a file of their own; the sampler never needs to change.

Weights live on the unit interval, ``w = sigmoid(u)``, and the sampler moves the unconstrained
``u``. The density of ``u`` carries the Jacobian of the logit parameterisation:

    log p_u(u) = log p_w(sigmoid(u)) + log sigmoid(u) + log sigmoid(-u)

since ``dw/du = w (1 - w)``.

A weight prior that gives only :meth:`WeightPrior.distribution` gets ``log p_u`` from
:func:`generic_log_prob_u`, which is evaluated in float64 and extends the density into the tails as
a power law, so it stays finite and accurate far beyond where ``sigmoid(u)`` rounds to 0 or 1.

Both kinds of prior are named by :func:`make_theta_prior` / :func:`make_weight_prior` with a registry
name, ``module.path:ClassName`` or ``path/to/file.py:ClassName`` (see :mod:`pyrodps.plugins`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch.distributions import constraints

from pyrodps.errors import check_fraction, check_positive
from pyrodps.models.logit_density import UnconstrainedWeight, generic_log_prob_u
from pyrodps.models.zero_mean_normal import ZeroMeanNormal
from pyrodps.plugins import build

if TYPE_CHECKING:
    from pyrodps.models.layout import ParamLayout


# ----------------------------------------------------------------------------- network priors
class ThetaPrior(ABC):
    """A prior ``p_0(θ)`` over the flat parameter vector θ of the main network.

    ``layout`` names the tensors behind each stretch of θ, so a prior can treat layers differently
    (e.g. a per-element scale vector built from the layer names).
    """

    @abstractmethod
    def distribution(self, layout: ParamLayout) -> dist.Distribution:
        """The Pyro distribution of flat θ (event shape ``(P,)``)."""

    def log_prob(self, theta: torch.Tensor, layout: ParamLayout) -> torch.Tensor:
        """``log p_0(θ)``; subclasses may override it with a cheaper closed form."""
        return self.distribution(layout).log_prob(theta)

    def grad_log_prob(self, theta: torch.Tensor, layout: ParamLayout) -> torch.Tensor:
        """``∇_θ log p_0(θ)`` (autograd by default; subclasses give the closed form)."""
        with torch.enable_grad():
            t = theta.detach().requires_grad_(True)
            return torch.autograd.grad(self.log_prob(t, layout), t)[0]


class IsotropicGaussian(ThetaPrior):
    """``p_0(θ) = N(θ; 0, s^2 I)``: ``log p_0 = -|θ|^2 / (2 s^2) - P log(s sqrt(2π))``."""

    name: ClassVar[str] = "isotropic"  # in the registry

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = check_positive("theta_prior_scale", scale)

    def distribution(self, layout: ParamLayout) -> dist.Distribution:
        return ZeroMeanNormal(self.scale, layout.size)  # Normal(0, s).expand([P]).to_event(1), in closed form

    def log_prob(self, theta: torch.Tensor, layout: ParamLayout) -> torch.Tensor:
        const = theta.numel() * (math.log(self.scale) + 0.5 * math.log(2 * math.pi))
        return theta.square().sum() * (-0.5 / self.scale**2) - const

    def grad_log_prob(self, theta: torch.Tensor, layout: ParamLayout) -> torch.Tensor:
        """``-θ / s^2``."""
        return theta * (-1.0 / self.scale**2)

    def __repr__(self) -> str:
        return f"IsotropicGaussian(scale={self.scale})"


class FanInGaussian(ThetaPrior):
    """Layer-wise ``p_0(θ) = Π_layers N(θ_layer; 0, (c / fan_in) I)``, the usual Bayesian-neural-network
    prior (the variance of He/LeCun initialisation up to the gain ``c``).

    ``fan_in`` of a tensor with two or more dimensions is the product of all but its first (``in`` of a
    ``Linear``, ``in_channels × kernel`` of a convolution); a one-dimensional tensor (a bias, a norm's
    scale) takes the fan-in of the weight just before it in the layout, or 1 if there is none.
    ``log p_0 = Σ_k -θ_k² / (2 s_k²) - log(s_k sqrt(2π))`` with ``s_k = sqrt(c / fan_in(k))``.
    """

    name: ClassVar[str] = "fan-in"  # in the registry

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = check_positive("theta_prior_gain", gain)
        self._cache: tuple[object, torch.Tensor, float] | None = None

    @staticmethod
    def fan_ins(layout: ParamLayout) -> list[int]:
        """The fan-in of every tensor of ``layout`` (rule in the class docstring)."""
        out, last = [], 1
        for shape in layout.shapes:
            if len(shape) >= 2:
                last = max(1, math.prod(shape[1:]))
            out.append(last)
        return out

    def scales(self, layout: ParamLayout) -> torch.Tensor:
        """The per-element standard deviations ``s_k`` as a flat float64 vector."""
        return torch.cat([torch.full((n,), math.sqrt(self.gain / f), dtype=torch.float64)
                          for n, f in zip(layout.numels, self.fan_ins(layout))])

    def _precision(self, layout: ParamLayout, like: torch.Tensor) -> tuple[torch.Tensor, float]:
        """``1 / s_k²`` in ``like``'s dtype and device, and ``Σ_k log(s_k sqrt(2π))`` (cached)."""
        key = (layout, like.dtype, like.device)
        if self._cache is None or self._cache[0] != key:
            s = self.scales(layout)
            const = float(torch.log(s).sum()) + 0.5 * math.log(2 * math.pi) * s.numel()
            self._cache = (key, s.pow(-2).to(dtype=like.dtype, device=like.device), const)
        return self._cache[1], self._cache[2]

    def distribution(self, layout: ParamLayout) -> dist.Distribution:
        return ZeroMeanNormal(self.scales(layout).to(torch.get_default_dtype()), layout.size)

    def log_prob(self, theta: torch.Tensor, layout: ParamLayout) -> torch.Tensor:
        precision, const = self._precision(layout, theta)
        return -0.5 * (theta.square() * precision).sum() - const

    def grad_log_prob(self, theta: torch.Tensor, layout: ParamLayout) -> torch.Tensor:
        """``-θ_k / s_k²``."""
        return -theta * self._precision(layout, theta)[0]

    def __repr__(self) -> str:
        return f"FanInGaussian(gain={self.gain})"


def calibrated_scale(weight_decay: float, rho_theta: float, num_train: int) -> float:
    """The sd ``s`` of an isotropic prior that acts on the data term like weight decay ``λ`` on a mean loss:

        -log p(θ | w = 1) = ρ_θ Σ_i l_i(θ) + |θ|² / (2 s²) = ρ_θ N [ mean_i l_i(θ) + (λ / 2) |θ|² ]

    so ``s = 1 / sqrt(λ ρ_θ N)``. The temperature ``T`` divides both terms, so it does not enter.
    """
    check_positive("weight_decay", weight_decay)
    return 1.0 / math.sqrt(weight_decay * check_positive("rho_theta", rho_theta) * num_train)


class CalibratedGaussian(IsotropicGaussian):
    """``N(0, s² I)`` with ``s = 1 / sqrt(λ ρ_θ N)`` from :func:`calibrated_scale`: the isotropic prior
    that acts like weight decay ``λ`` on a mean loss. ``rho_theta`` and ``num_train`` are supplied by
    pyrodps (:func:`make_theta_prior`), not by the user."""

    name: ClassVar[str] = "calibrated"  # in the registry

    def __init__(self, weight_decay: float = 5e-4, *, rho_theta: float, num_train: int) -> None:
        self.weight_decay = check_positive("weight_decay", weight_decay)
        super().__init__(calibrated_scale(self.weight_decay, rho_theta, num_train))

    def __repr__(self) -> str:
        return f"CalibratedGaussian(weight_decay={self.weight_decay}, scale={self.scale})"


THETA_PRIORS: dict[str, type[ThetaPrior]] = {c.name: c for c in (IsotropicGaussian, FanInGaussian, CalibratedGaussian)}


def make_theta_prior(spec: str | type[ThetaPrior], *, rho_theta: float, num_train: int,
                     **kwargs: object) -> ThetaPrior:
    """Build a network prior from a name of :data:`THETA_PRIORS`, ``module.path:ClassName`` or
    ``path/to/file.py:ClassName`` (a :class:`ThetaPrior` subclass) and its options:

    * ``"isotropic"`` (``scale``, default 1): ``N(0, scale² I)``;
    * ``"fan-in"`` (``gain``, default 1): :class:`FanInGaussian`, variance ``gain / fan_in`` per layer;
    * ``"calibrated"`` (``weight_decay``, default 5e-4): :class:`CalibratedGaussian`, ``N(0, s² I)``
      with ``s`` from :func:`calibrated_scale`, the prior that matches weight decay ``λ`` relative to
      ``ρ_θ`` and ``N``.

    ``rho_theta`` and ``num_train`` go to any constructor that names them. Errors name
    ``theta_prior`` (the spec) or ``theta_prior_kwargs`` (the options).
    """
    return build(spec, kwargs, THETA_PRIORS, ThetaPrior, "theta_prior", rho_theta=rho_theta, num_train=num_train)


# ----------------------------------------------------------------------------- weight priors
class WeightPrior(ABC):
    """A prior ``p(w)`` on one instance weight ``w ∈ (0, 1)``.

    Only :meth:`distribution` is required; :meth:`log_prob_u` and :meth:`grad_log_prob_u` then come from
    :func:`generic_log_prob_u` (float64, finite for all ``u``). Closed forms are faster.
    """

    @abstractmethod
    def distribution(self) -> dist.Distribution:
        """``p(w)`` as a Pyro distribution with support ``(0, 1)`` (used by the Pyro model)."""

    def log_prob_u(self, u: torch.Tensor) -> torch.Tensor:
        """``log p_u(u) = log p_w(sigmoid(u)) + log sigmoid(u) + log sigmoid(-u)``, elementwise, in
        ``u``'s dtype (generic: :func:`generic_log_prob_u`; subclasses may give a closed form)."""
        return generic_log_prob_u(self.distribution(), u)

    def grad_log_prob_u(self, u: torch.Tensor) -> torch.Tensor:
        """``d log p_u(u) / du``, elementwise, in ``u``'s dtype (autograd in float64 by default;
        subclasses give the closed form)."""
        with torch.enable_grad():
            t = u.detach().to(torch.float64).requires_grad_(True)
            return torch.autograd.grad(self.log_prob_u(t).sum(), t)[0].to(u.dtype)

    def u_distribution(self) -> dist.Distribution:
        """The distribution of ``u = logit(w)``: ``p(w)`` pushed through the inverse sigmoid, its density
        from :meth:`distribution` by :func:`generic_log_prob_u` (not from a closed-form
        :meth:`log_prob_u`, so the Pyro model checks the closed form). Built once per prior (it keeps
        the probe of ``p_w``'s tails): a prior's parameters are fixed once it is in use."""
        cached = self.__dict__.get("_u_distribution")
        if cached is None:
            cached = self._u_distribution = UnconstrainedWeight(self.distribution())
        return cached

    def sample_u(self, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        """Draw ``u`` from the prior, reproducibly from ``generator``: by inverse CDF where the prior
        has :meth:`icdf`, else by ``distribution().sample`` under a seed drawn from ``generator``."""
        v = torch.rand(shape, generator=generator, dtype=torch.float64).clamp_(1e-6, 1 - 1e-6)
        try:
            w = self.icdf(v)
        except NotImplementedError:
            seed = int(torch.randint(0, 2**62, (), generator=generator))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                w = self.distribution().sample(torch.Size(shape)).double()
        return torch.logit(w.clamp(1e-6, 1 - 1e-6)).to(torch.get_default_dtype())

    def icdf(self, q: torch.Tensor) -> torch.Tensor:
        """Quantile function of ``p(w)`` (float64 in, float64 out); optional."""
        raise NotImplementedError


class UniformWeight(WeightPrior):
    """``p(w) = 1`` on ``(0, 1)``: ``log p_u(u) = log sigmoid(u) + log sigmoid(-u)``."""

    name: ClassVar[str] = "uniform"  # in the registry

    def distribution(self) -> dist.Distribution:
        return dist.Uniform(0.0, 1.0)

    def log_prob_u(self, u: torch.Tensor) -> torch.Tensor:
        return F.logsigmoid(u) + F.logsigmoid(-u)

    def grad_log_prob_u(self, u: torch.Tensor) -> torch.Tensor:
        """``1 - 2 sigmoid(u)``."""
        return 1.0 - 2.0 * torch.sigmoid(u)

    def icdf(self, q: torch.Tensor) -> torch.Tensor:
        return q

    def __repr__(self) -> str:
        return "UniformWeight()"


class BetaWeight(WeightPrior):
    """``p(w) = Beta(w; a, b)``: ``log p_u(u) = a log sigmoid(u) + b log sigmoid(-u) - log B(a, b)``."""

    name: ClassVar[str] = "beta"  # in the registry

    def __init__(self, a: float = 1.0, b: float = 1.0) -> None:
        self.a = check_positive("beta_a", a)
        self.b = check_positive("beta_b", b)
        self._log_beta = math.lgamma(self.a) + math.lgamma(self.b) - math.lgamma(self.a + self.b)

    def distribution(self) -> dist.Distribution:
        return dist.Beta(self.a, self.b)

    def log_prob_u(self, u: torch.Tensor) -> torch.Tensor:
        return self.a * F.logsigmoid(u) + self.b * F.logsigmoid(-u) - self._log_beta

    def grad_log_prob_u(self, u: torch.Tensor) -> torch.Tensor:
        """``a (1 - w) - b w`` with ``w = sigmoid(u)``."""
        return self.a - (self.a + self.b) * torch.sigmoid(u)

    def icdf(self, q: torch.Tensor) -> torch.Tensor:
        from scipy.special import betaincinv

        return torch.from_numpy(betaincinv(self.a, self.b, q.numpy()))

    def __repr__(self) -> str:
        return f"BetaWeight(a={self.a}, b={self.b})"


class TruncatedNormalUnit(dist.TorchDistribution):
    """``N(loc, scale^2)`` truncated to ``(0, 1)``.

    ``log p(w) = log N(w; loc, scale) - log(Φ((1-loc)/scale) - Φ(-loc/scale))``.
    """

    arg_constraints: ClassVar[dict] = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.unit_interval
    has_rsample = False

    def __init__(self, loc: float, scale: float, validate_args: bool | None = None) -> None:
        self.loc = torch.as_tensor(float(loc))
        self.scale = torch.as_tensor(float(scale))
        std = torch.distributions.Normal(0.0, 1.0)
        self._lo = std.cdf(-self.loc / self.scale)
        self._mass = std.cdf((1 - self.loc) / self.scale) - self._lo
        super().__init__(batch_shape=torch.Size(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return dist.ExpandedDistribution(self, batch_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        z = (value - self.loc) / self.scale
        return -0.5 * z.square() - torch.log(self.scale * self._mass) - 0.5 * math.log(2 * math.pi)

    def icdf(self, q: torch.Tensor) -> torch.Tensor:
        std = torch.distributions.Normal(0.0, 1.0)
        p = self._lo + q * self._mass
        return self.loc + self.scale * std.icdf(p)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008 (torch's signature)
        with torch.no_grad():
            return self.icdf(torch.rand(sample_shape))


class TruncatedGaussianWeight(WeightPrior):
    """A Gaussian at the sparsity level ``β`` with scale ``σ``, truncated to ``(0, 1)``.

    ``log p_w(w) = -(w - β)^2 / (2σ^2) - log(σ sqrt(2π) (Φ((1-β)/σ) - Φ(-β/σ)))``.
    """

    name: ClassVar[str] = "truncated-gaussian"  # in the registry

    def __init__(self, beta: float = 0.5, sigma: float = 0.25) -> None:
        self.beta = check_fraction("beta", beta, open_low=True, open_high=True)
        self.sigma = check_positive("sigma", sigma)
        self._dist = TruncatedNormalUnit(self.beta, self.sigma)
        self._log_norm = float(torch.log(self._dist.scale * self._dist._mass)) + 0.5 * math.log(
            2 * math.pi
        )

    def distribution(self) -> dist.Distribution:
        return self._dist

    def log_prob_u(self, u: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(u)
        z = (w - self.beta) / self.sigma
        return -0.5 * z.square() - self._log_norm + F.logsigmoid(u) + F.logsigmoid(-u)

    def grad_log_prob_u(self, u: torch.Tensor) -> torch.Tensor:
        """``-(w - β) w (1 - w) / σ^2 + 1 - 2w`` with ``w = sigmoid(u)``."""
        w = torch.sigmoid(u)
        return (w - self.beta) * w * (w - 1.0) / self.sigma**2 + 1.0 - 2.0 * w

    def icdf(self, q: torch.Tensor) -> torch.Tensor:
        return self._dist.icdf(q.float()).double()

    def __repr__(self) -> str:
        return f"TruncatedGaussianWeight(beta={self.beta}, sigma={self.sigma})"


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x <= 0``, accurate at both ends (Mächler 2012); NaN-free gradients."""
    near = x > -math.log(2.0)
    return torch.where(near, torch.log(-torch.expm1(x.clamp(min=-math.log(2.0)))),
                       torch.log1p(-torch.exp(x.clamp(max=-math.log(2.0)))))


class KumaraswamyWeight(WeightPrior):
    """``p(w) = Kumaraswamy(w; a, b) = a b w^(a-1) (1 - w^a)^(b-1)``, a Beta look-alike with a closed-form
    CDF ``1 - (1 - w^a)^b``. With ``w^a = exp(a log sigmoid(u))``:

        log p_u(u) = log(a b) + a log sigmoid(u) + log sigmoid(-u) + (b - 1) log(1 - w^a)
        d/du       = a (1 - w) - w - (b - 1) a (1 - w) / (w^(-a) - 1),   w^(-a) - 1 = expm1(a softplus(-u))

    evaluated in float64 (finite for ``|u|`` up to about 700) and returned in ``u``'s dtype.
    """

    name: ClassVar[str] = "kumaraswamy"  # in the registry

    def __init__(self, a: float = 2.0, b: float = 2.0) -> None:
        self.a = check_positive("kumaraswamy_a", a)
        self.b = check_positive("kumaraswamy_b", b)
        self._log_ab = math.log(self.a) + math.log(self.b)

    def distribution(self) -> dist.Distribution:
        return dist.Kumaraswamy(self.a, self.b)

    def log_prob_u(self, u: torch.Tensor) -> torch.Tensor:
        u64 = u.to(torch.float64)
        log_w = F.logsigmoid(u64)
        value = self._log_ab + self.a * log_w + F.logsigmoid(-u64)
        if self.b != 1.0:
            value = value + (self.b - 1.0) * _log1mexp(self.a * log_w)
        return value.to(u.dtype)

    def grad_log_prob_u(self, u: torch.Tensor) -> torch.Tensor:
        u64 = u.detach().to(torch.float64).clamp(-700.0, 700.0)  # the asymptotes a and -b beyond
        w, one_minus_w = torch.sigmoid(u64), torch.sigmoid(-u64)
        grad = self.a * one_minus_w - w
        if self.b != 1.0:
            grad = grad - (self.b - 1.0) * self.a * one_minus_w / torch.expm1(self.a * F.softplus(-u64))
        return grad.to(u.dtype)

    def icdf(self, q: torch.Tensor) -> torch.Tensor:
        """``(1 - (1 - q)^(1/b))^(1/a)``."""
        return (-torch.expm1(torch.log1p(-q) / self.b)).pow(1.0 / self.a)

    def __repr__(self) -> str:
        return f"KumaraswamyWeight(a={self.a}, b={self.b})"


WEIGHT_PRIORS: dict[str, type[WeightPrior]] = {
    c.name: c for c in (UniformWeight, BetaWeight, TruncatedGaussianWeight, KumaraswamyWeight)
}


def make_weight_prior(spec: str | type[WeightPrior], **kwargs: object) -> WeightPrior:
    """Build a weight prior from a name of :data:`WEIGHT_PRIORS` (``uniform``, ``beta``,
    ``truncated-gaussian``, ``kumaraswamy``), ``module.path:ClassName`` or ``path/to/file.py:ClassName``
    (a :class:`WeightPrior` subclass) and its options. Errors name ``weight_prior`` (the spec) or
    ``weight_prior_kwargs`` (the options); a constructor's own check names its argument."""
    return build(spec, kwargs, WEIGHT_PRIORS, WeightPrior, "weight_prior")
