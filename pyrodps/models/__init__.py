"""The BADS model: priors, likelihoods, weight parameterisations and the Pyro program."""

from pyrodps.models.bads import BADSModel, LogJoint
from pyrodps.models.data import Batch, MinibatchStream, SelectionData
from pyrodps.models.layout import ParamLayout
from pyrodps.models.likelihoods import Categorical, Gaussian, Likelihood
from pyrodps.models.normaliser import LOG_Z_CHOICES, check_log_z
from pyrodps.models.priors import (
    BetaWeight,
    IsotropicGaussian,
    ThetaPrior,
    TruncatedGaussianWeight,
    UniformWeight,
    WeightPrior,
    make_weight_prior,
)
from pyrodps.models.problem import SelectionProblem

__all__ = [
    "LOG_Z_CHOICES",
    "BADSModel",
    "Batch",
    "BetaWeight",
    "Categorical",
    "Gaussian",
    "IsotropicGaussian",
    "Likelihood",
    "LogJoint",
    "MinibatchStream",
    "ParamLayout",
    "SelectionData",
    "SelectionProblem",
    "ThetaPrior",
    "TruncatedGaussianWeight",
    "UniformWeight",
    "WeightPrior",
    "check_log_z",
    "make_weight_prior",
]
