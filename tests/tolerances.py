"""Tolerances for Langevin chains on Gaussian targets, derived from the run length.

For ``U(x) = (x - μ)ᵀ A (x - μ) / 2`` and the update ``x' = x - (η/2) A (x - μ) + sqrt(η T) ξ``,
the chain is a Gaussian AR(1) process. In an eigen-direction of ``A`` with eigenvalue ``λ`` its
autoregression coefficient is ``φ = 1 - ηλ/2`` and its stationary variance is
``s² = T / (λ (1 - ηλ/4))`` (the exact discretised value). For ``n`` draws of an AR(1) chain:

    Var(sample mean)     ≈ s² (1 + φ) / ((1 - φ) n)
    Var(sample variance) ≈ 2 s⁴ (1 + φ²) / ((1 - φ²) n)
"""

from __future__ import annotations

import numpy as np


def ar1_mean_se(s2: np.ndarray, phi: np.ndarray, n: int) -> np.ndarray:
    return np.sqrt(s2 * (1 + phi) / ((1 - phi) * n))


def ar1_var_se(s2: np.ndarray, phi: np.ndarray, n: int) -> np.ndarray:
    return np.sqrt(2 * s2**2 * (1 + phi**2) / ((1 - phi**2) * n))


def discretised_covariance(a: np.ndarray, step: float, temperature: float) -> np.ndarray:
    """Exact stationary covariance ``T (A - η A² / 4)^-1`` of the unadjusted Langevin chain."""
    return temperature * np.linalg.inv(a - step * a @ a / 4)


def gaussian_tolerances(a: np.ndarray, step: float, temperature: float, n: int, z: float = 5.0):
    """``(mean_tol, cov_tol)`` for comparing chain moments with ``μ`` and ``T Σ``.

    ``mean_tol``: ``z`` standard errors of the slowest direction. ``cov_tol``: the exact
    discretisation bias ``|T(A - ηA²/4)^-1 - T A^-1|`` plus ``z`` standard errors of a variance
    estimate in the slowest direction (an upper bound for every entry of the covariance).
    """
    lam = np.linalg.eigvalsh(a)
    phi = 1 - step * lam / 2
    s2 = temperature / (lam * (1 - step * lam / 4))
    mean_tol = z * ar1_mean_se(s2, phi, n).max()
    bias = np.abs(discretised_covariance(a, step, temperature) - temperature * np.linalg.inv(a)).max()
    cov_tol = bias + z * ar1_var_se(s2, phi, n).max()
    return mean_tol, cov_tol
