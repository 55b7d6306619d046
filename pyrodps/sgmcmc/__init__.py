"""Stochastic-gradient MCMC on flat tensors, independent of any model (imports nothing from
:mod:`pyrodps.models`, :mod:`pyrodps.bads` or :mod:`pyrodps.run`).

* how to move: the (p)SGLD update and its RMSprop preconditioner (:mod:`.integrators`), behind one
  dispatcher to a torch reference (the code the CPU path runs) and fused Triton kernels (:mod:`.fused`);
* step-size schedules (:mod:`.schedules`);
* the kernel interface and (p)SGLD for any differentiable energy (:mod:`.kernel`);
* minibatch index streams (:mod:`.minibatch`).
"""

from pyrodps.sgmcmc.integrators import RMSprop, clip_norm_, langevin_step_, langevin_update_
from pyrodps.sgmcmc.kernel import SGLD, Kernel, SGLDState, make_generator
from pyrodps.sgmcmc.minibatch import IndexStream
from pyrodps.sgmcmc.schedules import (
    Constant,
    PolynomialDecay,
    ScaledSchedule,
    Schedule,
    as_schedule,
)

__all__ = [
    "SGLD",
    "Constant",
    "IndexStream",
    "Kernel",
    "PolynomialDecay",
    "RMSprop",
    "SGLDState",
    "ScaledSchedule",
    "Schedule",
    "as_schedule",
    "clip_norm_",
    "langevin_step_",
    "langevin_update_",
    "make_generator",
]
