"""The density of a weight's logit ``u = logit(w)`` for any weight prior ``p_w`` on ``(0, 1)``, finite
where float arithmetic on ``w`` is not: :func:`generic_log_prob_u` and the Pyro distribution
:class:`UnconstrainedWeight` built on it (the weight site of the BADS Pyro model)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch.distributions import constraints

# The generic path evaluates p_w directly for u in [-100, 20] at most (where float64 holds w and 1 - w
# well) and as a power law beyond; MARGIN steps are kept from where it stops being finite.
_PROBE_LOW, _PROBE_HIGH, _MARGIN = 100, 20, 2


def generic_log_prob_u(distribution: dist.Distribution, u: torch.Tensor) -> torch.Tensor:
    """``log p_u(u) = log p_w(sigmoid(u)) + log sigmoid(u) + log sigmoid(-u)`` for any ``p_w`` on
    ``(0, 1)``, finite for all finite ``u``; elementwise, differentiable, in ``u``'s dtype.

    A float32 ``sigmoid(u)`` rounds to 1 for ``u > 17``, and ``log p_w`` underflows inside
    ``distribution.log_prob`` long before ``w`` rounds to 0 (torch's float32 Kumaraswamy is ``-inf``
    below ``w = 1e-4``, ``u = -9``): that is where BADS drives bad points. So:

    * everything is evaluated in float64, the Jacobian as ``log sigmoid(±u)``;
    * ``log p_w`` is evaluated directly on ``[u_lo, u_hi]``: the run of integer ``u`` in ``[-100, 20]``
      around 0 where it is finite, less two steps at an end where it stops being finite (float64
      holds ``w`` to 16 digits at any size, ``1 - w`` only to ``1.1e-16`` absolute: at ``u = 20``,
      ``1 - w = 2e-9`` carries a relative error of 5e-8);
    * beyond ``u_lo`` it continues as a power law in ``w``, beyond ``u_hi`` as one in ``1 - w``:
      ``log p_w(w) = log p_w(w_hi) + s_hi (log(1 - w) - log(1 - w_hi))``, the exponent ``s`` the slope
      between the two outermost integer ``u``. Beta and Kumaraswamy behave so at the ends up to terms
      of order ``(1 - w_hi)`` (Kumaraswamy: ``w_lo^a``), so the tails are accurate to about 1e-6 over
      ``[-100, 80]`` for ordinary parameters (a Kumaraswamy ``a = 0.5``: 1e-5).

    A density not finite at ``w = 1/2`` is evaluated directly everywhere (no tails).
    """
    return _log_prob_u(distribution, u, _fit_tails(distribution, u.device))


@dataclass(frozen=True)
class _Tails:
    """Where :func:`generic_log_prob_u` evaluates ``log p_w`` directly (``[u_lo, u_hi]``) and the power
    laws beyond: ``(u_lo, log p_w there, slope in log w)``, ``(u_hi, log p_w there, slope in log(1 - w))``
    (``None``: no tail on that side). ``direct``: no tails at all (``p_w`` not finite at 1/2)."""

    direct: bool
    low: tuple[float, float, float] | None = None
    high: tuple[float, float, float] | None = None


def _fit_tails(distribution: dist.Distribution, device: torch.device) -> _Tails:
    """Probe ``log p_w`` at the integer ``u`` in ``[-100, 20]`` (:func:`generic_log_prob_u`)."""
    probe = torch.arange(-_PROBE_LOW, _PROBE_HIGH + 1, dtype=torch.float64, device=device)
    with torch.no_grad():
        lp = distribution.log_prob(torch.sigmoid(probe)).to(torch.float64).expand(probe.shape)
    finite = torch.isfinite(lp).tolist()
    mid, last = _PROBE_LOW, _PROBE_LOW + _PROBE_HIGH
    if not finite[mid]:
        return _Tails(direct=True)
    lo = hi = mid
    while lo > 0 and finite[lo - 1]:
        lo -= 1
    while hi < last and finite[hi + 1]:
        hi += 1
    if lo > 0:
        lo += _MARGIN
    if hi < last:
        hi -= _MARGIN
    low = high = None
    if lo < mid:  # log p_w = c + s log w
        lw = F.logsigmoid(probe[lo : lo + 2])
        low = (float(probe[lo]), float(lp[lo]), float((lp[lo + 1] - lp[lo]) / (lw[1] - lw[0])))
    if hi > mid:  # log p_w = c + s log(1 - w)
        l1w = F.logsigmoid(-probe[hi - 1 : hi + 1])
        high = (float(probe[hi]), float(lp[hi]), float((lp[hi - 1] - lp[hi]) / (l1w[0] - l1w[1])))
    return _Tails(direct=False, low=low, high=high)


def _log_prob_u(distribution: dist.Distribution, u: torch.Tensor, tails: _Tails) -> torch.Tensor:
    """:func:`generic_log_prob_u` with its probe of ``p_w`` already done (``tails``)."""
    u64 = u.to(torch.float64)
    jacobian = F.logsigmoid(u64) + F.logsigmoid(-u64)
    if tails.direct:
        return (distribution.log_prob(torch.sigmoid(u64)) + jacobian).to(u.dtype)
    u_lo = tails.low[0] if tails.low else -math.inf
    u_hi = tails.high[0] if tails.high else math.inf
    value = distribution.log_prob(torch.sigmoid(u64.clamp(u_lo, u_hi))).to(torch.float64)
    if tails.low:
        _, lp_lo, slope = tails.low
        value = torch.where(u64 < u_lo, lp_lo + slope * (F.logsigmoid(u64) - F.logsigmoid(u64.new_tensor(u_lo))),
                            value)
    if tails.high:
        _, lp_hi, slope = tails.high
        value = torch.where(u64 > u_hi, lp_hi + slope * (F.logsigmoid(-u64) - F.logsigmoid(u64.new_tensor(-u_hi))),
                            value)
    return (value + jacobian).to(u.dtype)


class UnconstrainedWeight(dist.TorchDistribution):
    """The distribution of ``u = logit(w)`` for ``w ~ base`` on ``(0, 1)``: Pyro's pushforward
    ``TransformedDistribution(base, [SigmoidTransform().inv])``, with the density of
    :func:`generic_log_prob_u` (finite where the float32 pushforward is ``-inf`` or NaN)."""

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real
    has_rsample = False

    def __init__(self, base: dist.Distribution, validate_args: bool | None = None) -> None:
        self.base = base
        self._tails: dict[torch.device, _Tails] = {}  # the probe of the base's tails, per device
        super().__init__(batch_shape=base.batch_shape, event_shape=torch.Size(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return dist.ExpandedDistribution(self, batch_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if value.device not in self._tails:
            self._tails[value.device] = _fit_tails(self.base, value.device)
        return _log_prob_u(self.base, value, self._tails[value.device])

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008 (torch's signature)
        with torch.no_grad():
            w = self.base.sample(sample_shape).to(torch.float64)
            eps = torch.finfo(torch.float64).eps
            return torch.logit(w.clamp(eps, 1.0 - eps)).to(torch.get_default_dtype())
