"""Baselines run through the same interface as BADS."""

from pyrodps.baselines.sgd import SGDConfig, SGDFit, fit_sgd

__all__ = ["SGDConfig", "SGDFit", "fit_sgd"]
