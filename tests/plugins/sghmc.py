"""A θ-block sampler in a file of its own: stochastic-gradient Hamiltonian Monte Carlo (Chen et al. 2014).

With momentum r (the sampler's auxiliary state), friction α and step size η, at temperature T:

    r ← (1 - α) r - η ∇U(θ) + sqrt(2 α η T) ξ,      θ ← θ + r

(the "naive" discretisation of the SGHMC dynamics with the gradient-noise estimate set to 0).
"""

import math

import torch

from pyrodps.sgmcmc.integrators import Integrator


class SGHMC(Integrator):
    def __init__(self, friction: float = 0.1) -> None:
        self.friction = float(friction)

    def init(self, position: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(position)

    def update_(self, position, grad, aux, *, step_size, temperature, generator, step, stream=0, backend=None):
        noise = torch.randn(position.shape, generator=generator, dtype=position.dtype, device=position.device)
        aux.mul_(1.0 - self.friction).add_(grad, alpha=-step_size)
        aux.add_(noise, alpha=math.sqrt(2.0 * self.friction * step_size * temperature))
        position.add_(aux)
