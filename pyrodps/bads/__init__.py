"""BADS: the joint kernel (θ block by any :mod:`pyrodps.sgmcmc` integrator, the weight block, the
companion chain), its configuration resolved once, one ``build`` of model, kernel and batches, and
:func:`fit_bads`."""

from pyrodps.bads.fit import BADSConfig, BADSFit, fit_bads
from pyrodps.bads.kernel import BADSKernel, BADSState

__all__ = ["BADSConfig", "BADSFit", "BADSKernel", "BADSState", "fit_bads"]
