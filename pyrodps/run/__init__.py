"""Running a kernel: the driver (chains, burn-in, thinning, progress), observers of the run,
checkpoints (two generations, checksums, no code on load), graceful stop on SIGINT/SIGTERM, the run
folder's lock, the divergence guard and the store of kept draws. Knows kernels only through
:class:`pyrodps.sgmcmc.Kernel`; nothing here is specific to BADS."""

from pyrodps.run.checkpoint import Checkpointer, CheckpointUnreadableError, CheckpointWriteError
from pyrodps.run.driver import SampleResult, sample
from pyrodps.run.guard import DivergenceError, DivergenceGuard
from pyrodps.run.lock import RunFolderLockedError, folder_lock
from pyrodps.run.stop import RunInterrupted
from pyrodps.run.weight_stats import OnlineWeightStats, WindowMean

__all__ = ["CheckpointUnreadableError", "CheckpointWriteError", "Checkpointer", "DivergenceError", "DivergenceGuard",
           "OnlineWeightStats", "RunFolderLockedError", "RunInterrupted", "SampleResult", "WindowMean", "folder_lock",
           "sample"]
