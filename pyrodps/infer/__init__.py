"""SG-MCMC for any Pyro model, subsampled plates included: the gap Pyro's own MCMC leaves open.

``pyro.infer.MCMC`` with HMC/NUTS refuses models with ``pyro.plate(..., subsample_size=B)``; these
kernels accept them, draw a fresh subsample of every such plate at each step, and let Pyro's plate
scale the minibatch terms by ``N / B``::

    import pyro, pyro.distributions as dist
    from pyrodps.infer import MCMC, SGLD

    def model(x, y):
        beta = pyro.sample("beta", dist.Normal(0., 1.).expand([x.shape[1]]).to_event(1))
        with pyro.plate("data", x.shape[0], subsample_size=x.shape[0] // 10) as idx:
            pyro.sample("y", dist.Bernoulli(logits=x[idx] @ beta), obs=y[idx])

    mcmc = MCMC(SGLD(model), num_samples=2000, warmup_steps=2000).run(x, y)
    mcmc.summary()

* :mod:`.program`: a Pyro model read as a minibatch potential in unconstrained coordinates (global and
  local latents, Jacobians, discrete sites refused);
* :mod:`.kernels`: what the kernels share (the step, the local block, the warm-up's phases);
* :mod:`.sgld`: :class:`SGLD` (a metric adapted in the warm-up) and :class:`pSGLD`;
* :mod:`.mcmc`: :class:`MCMC` (``run``, ``get_samples``, ``summary``, ``diagnostics``, ``to_arviz``).
"""

from pyrodps.infer.mcmc import MCMC
from pyrodps.infer.program import PyroProgram
from pyrodps.infer.sgld import SGLD, pSGLD

__all__ = ["MCMC", "SGLD", "PyroProgram", "pSGLD"]
