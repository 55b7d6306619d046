"""Compatibility: the names ``pyrodps.inference`` exported before the restructuring (issue #12).

The samplers now live in :mod:`pyrodps.sgmcmc` (integrators, schedules, the kernel interface),
:mod:`pyrodps.bads` (the BADS kernel) and :mod:`pyrodps.run` (the driver); import from there.
"""

from pyrodps.bads.kernel import BADSKernel, BADSState
from pyrodps.models.data import MinibatchStream
from pyrodps.run import OnlineWeightStats, SampleResult, sample
from pyrodps.sgmcmc import (
    SGLD,
    Constant,
    IndexStream,
    Kernel,
    PolynomialDecay,
    RMSprop,
    Schedule,
    SGLDState,
    as_schedule,
    fused,
    langevin_step_,
    make_generator,
)

__all__ = [
    "SGLD",
    "BADSKernel",
    "BADSState",
    "Constant",
    "IndexStream",
    "Kernel",
    "MinibatchStream",
    "OnlineWeightStats",
    "PolynomialDecay",
    "RMSprop",
    "SGLDState",
    "SampleResult",
    "Schedule",
    "as_schedule",
    "fused",
    "langevin_step_",
    "make_generator",
    "sample",
]
