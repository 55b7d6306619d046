"""Fused sampler updates: the flat (p)SGLD update and the weight-table block update, as Triton
kernels on CUDA and as torch code elsewhere (:mod:`.dispatch` says which runs when).

Public API: :func:`sgld_update_`, :func:`weight_block_update_`, :class:`NoiseKey`,
:func:`resolve_backend` (``backend="auto"|"torch"|"triton"``, env ``PYRODPS_KERNELS``) and
:func:`philox_normal`, the counter-based noise the kernels make in-kernel. Importing this package
does not import Triton.
"""

from pyrodps.sgmcmc.fused.dispatch import (
    BACKENDS,
    ENV_VAR,
    STREAM_COMPANION,
    STREAM_PHI,
    STREAM_THETA,
    STREAM_U,
    NoiseKey,
    check_backend,
    resolve_backend,
    sgld_update_,
    triton_available,
    weight_block_update_,
)
from pyrodps.sgmcmc.fused.reference import philox_normal

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "STREAM_COMPANION",
    "STREAM_PHI",
    "STREAM_THETA",
    "STREAM_U",
    "NoiseKey",
    "check_backend",
    "philox_normal",
    "resolve_backend",
    "sgld_update_",
    "triton_available",
    "weight_block_update_",
]
