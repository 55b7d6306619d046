"""Baselines run through the same interface as BADS."""

from pyrodps.baselines.naive import NAIVE_METHODS, kept_fraction, naive_training_set
from pyrodps.baselines.sgd import SGDConfig, SGDFit, fit_sgd

__all__ = ["NAIVE_METHODS", "SGDConfig", "SGDFit", "fit_sgd", "kept_fraction", "naive_training_set"]
