"""pyrodps: Bayesian data point selection (BADS) with Pyro models and minibatch SGLD."""

__version__ = "0.1.0"

from pyrodps.data import SelectionProblem, make_scenario  # noqa: E402
from pyrodps.errors import OutputExistsError, PyrodpsError, ValidationError  # noqa: E402
from pyrodps.selection import BADSConfig, BADSFit, fit_bads  # noqa: E402

__all__ = [
    "BADSConfig",
    "BADSFit",
    "OutputExistsError",
    "PyrodpsError",
    "SelectionProblem",
    "ValidationError",
    "fit_bads",
    "make_scenario",
    "__version__",
]
