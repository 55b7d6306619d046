"""The BADS model: priors, likelihoods, weight parameterisations and the Pyro program."""

from pyrodps.models.bads import Batch, BADSModel, LogJoint, SelectionData
from pyrodps.models.layout import ParamLayout
from pyrodps.models.likelihoods import Categorical, Gaussian, Likelihood
from pyrodps.models.normaliser import LogNormaliser, make_log_normaliser
from pyrodps.models.priors import (
    BetaWeight,
    IsotropicGaussian,
    ThetaPrior,
    TruncatedGaussianWeight,
    UniformWeight,
    WeightPrior,
    make_weight_prior,
)

__all__ = [
    "Batch",
    "BADSModel",
    "BetaWeight",
    "Categorical",
    "Gaussian",
    "IsotropicGaussian",
    "Likelihood",
    "LogJoint",
    "LogNormaliser",
    "ParamLayout",
    "SelectionData",
    "ThetaPrior",
    "TruncatedGaussianWeight",
    "UniformWeight",
    "WeightPrior",
    "make_log_normaliser",
    "make_weight_prior",
]
