"""Samplers: the kernel interface, (p)SGLD, the joint BADS kernel, schedules and the driver."""

from pyrodps.inference.bads_kernel import BADSKernel, BADSState
from pyrodps.inference.driver import SampleResult, sample
from pyrodps.inference.integrators import RMSprop, langevin_step_
from pyrodps.inference.kernel import SGLD, Kernel, SGLDState, make_generator
from pyrodps.inference.minibatch import IndexStream, MinibatchStream
from pyrodps.inference.schedules import Constant, Cyclical, PolynomialDecay, Schedule, as_schedule
from pyrodps.inference.weight_stats import OnlineWeightStats

__all__ = [
    "SGLD",
    "BADSKernel",
    "BADSState",
    "Constant",
    "Cyclical",
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
    "langevin_step_",
    "make_generator",
    "sample",
]
