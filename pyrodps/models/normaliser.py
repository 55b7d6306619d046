"""How ``log Z(w)`` of the data-dependent prior ``p(θ | w, D_t)`` enters the model.

    log p(θ | w, D_t) = -ρ_θ Σ_i w_i l_i(θ) + log p_0(θ) - log Z(w)
    ∂ log Z / ∂ w_i  = -ρ_θ E_{θ' ~ p(θ' | w, D_t)} [ l_i(θ') ]

* ``"ignore"`` drops the term (the SGD-like update of the paper's abstract): the conditional of a
  weight given θ is ``p(w_i | θ) ∝ p(w_i) exp(-ρ_θ w_i l_i(θ))``, so every high-loss point is pushed
  down (good against label noise, and against minority classes too).
* ``"companion"`` keeps it, estimated by a second SGLD chain θ' targeting the train-only weighted
  posterior ``p(θ' | w, D_t) ∝ p_0(θ') exp(-ρ_θ Σ_i w_i l_i(θ'))`` on the same minibatch, with one
  draw per step: the weight gradient becomes ``ρ_θ (l_i(θ') - l_i(θ))``, so a point gains weight
  when the meta-informed model θ explains it better than the train-only model θ' does.
  In the u coordinates: ``∂ log p(u_i | θ) / ∂u_i = d log p_u / du + ρ_θ (l_i(θ') - l_i(θ)) w_i (1-w_i)``.
"""

from __future__ import annotations

from pyrodps.errors import ValidationError

LOG_Z_CHOICES = ("ignore", "companion")


def check_log_z(name: str) -> str:
    """Return ``name`` if it is a known treatment of ``log Z(w)``."""
    if name not in LOG_Z_CHOICES:
        raise ValidationError("log_z", f"unknown value {name!r}; choose one of {', '.join(LOG_Z_CHOICES)}")
    return name
