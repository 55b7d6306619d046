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
* ``"companion-groups"`` (product weights, ``w_i = sigmoid(u_i) sigmoid(g_φ(h_i))``): the companion's
  term reaches only the shared weight-network parameters φ (the group latents), and each table entry
  ``u_i`` sees its own loss as with ``"ignore"``. [choice] The two blocks then step on conditionals of
  two different densities (log Z kept for φ, dropped for u), so the chain samples no single joint
  posterior; it is the pairing that works: a shared latent with log Z dropped collapses to zero (all
  N terms push it down, only its N(0, 1/ρ_φ) prior holds it up), while the companion's term on a
  table entry cancels the loss signal that flags a corrupted point (README "Choosing the defaults").
"""

from __future__ import annotations

from pyrodps.errors import ValidationError

LOG_Z_CHOICES = ("ignore", "companion", "companion-groups")


def check_log_z(name: str) -> str:
    """Return ``name`` if it is a known treatment of ``log Z(w)``."""
    if name not in LOG_Z_CHOICES:
        raise ValidationError("log_z", f"unknown value {name!r}; choose one of {', '.join(LOG_Z_CHOICES)}")
    return name
