"""Running a kernel: the driver (chains, burn-in, thinning, progress), observers of the run,
checkpoints, the divergence guard and the store of kept draws. Knows kernels only through
:class:`pyrodps.sgmcmc.Kernel`; nothing here is specific to BADS."""

from pyrodps.run.checkpoint import Checkpointer
from pyrodps.run.driver import SampleResult, sample
from pyrodps.run.guard import DivergenceError, DivergenceGuard
from pyrodps.run.weight_stats import OnlineWeightStats

__all__ = ["Checkpointer", "DivergenceError", "DivergenceGuard", "OnlineWeightStats", "SampleResult", "sample"]
