"""How ``log Z(w)`` of the data-dependent prior ``p(θ | w, D_t)`` enters the model.

    ∂ log Z / ∂ w_i = -ρ_θ E_{θ' ~ p(θ' | w, D_t)} [ l_i(θ') ]

``"ignore"`` drops the term (the SGD-like update of the paper's abstract): the conditional of a
weight given θ is then ``p(w_i | θ) ∝ p(w_i) exp(-ρ_θ w_i l_i(θ))``.

The seam for the ``"companion"`` estimator (a second SGLD chain θ' on the train-only weighted
posterior, giving the weight gradient ``ρ_θ (l_i(θ') - l_i(θ))``) is
:meth:`LogNormaliser.expected_train_loss`: an estimator returns its estimate of
``E_{θ'}[l_i(θ')]`` for the batch points and the weight step adds ``ρ_θ w_i (1 - w_i)`` times it to
the ``u_i`` gradient. It is not built yet.
"""

from __future__ import annotations

import torch

from pyrodps.errors import ValidationError

LOG_Z_CHOICES = ("ignore",)
PLANNED_LOG_Z = ("companion",)


class LogNormaliser:
    """Estimator of ``E_{θ' ~ p(θ'|w, D_t)}[l_i(θ')]`` for the points of a batch."""

    name = "ignore"

    def expected_train_loss(self, idx: torch.Tensor) -> torch.Tensor | None:
        """``None`` means ``log Z(w)`` is dropped from the density."""
        return None


def make_log_normaliser(name: str) -> LogNormaliser:
    """Return the ``log Z(w)`` treatment called ``name``."""
    if name == "ignore":
        return LogNormaliser()
    if name in PLANNED_LOG_Z:
        raise ValidationError("log_z", f"{name!r} is not available yet; use 'ignore'")
    raise ValidationError("log_z", f"unknown value {name!r}; choose one of {', '.join(LOG_Z_CHOICES)}")
