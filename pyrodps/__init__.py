"""pyrodps: Bayesian data point selection (BADS) with Pyro models and minibatch SGLD."""

from pyrodps.bads import BADSConfig, BADSFit, fit_bads
from pyrodps.data import make_scenario
from pyrodps.errors import OutputExistsError, PyrodpsError, ValidationError
from pyrodps.models.problem import SelectionProblem
from pyrodps.version import __version__

__all__ = [
    "BADSConfig",
    "BADSFit",
    "OutputExistsError",
    "PyrodpsError",
    "SelectionProblem",
    "ValidationError",
    "__version__",
    "fit_bads",
    "make_scenario",
]
