"""Data sets, corruptions, scenarios and bring-your-own-data loaders.

Classification scenario names are ``<data set>-<kind>`` for data set ``digits`` or ``mnist1d`` and
kind ``label-noise``, ``imbalance``, ``binary-imbalance``, ``feature-noise`` or ``off-domain``; the
regression scenarios ``friedman-outliers`` and ``diabetes-outliers`` have gross outliers among the
training targets (:mod:`pyrodps.data.regression`). See :func:`scenario_options` for each one's
options and defaults.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pyrodps.data.byo import load_npz_problem, problem_from_arrays, problem_from_datasets
from pyrodps.data.corruptions import (
    class_dependent_label_noise,
    feature_noise,
    long_tail_counts,
    off_domain,
    subsample_to_counts,
    uniform_label_noise,
)
from pyrodps.data.digits import (
    digits_binary_imbalance,
    digits_feature_noise,
    digits_imbalance,
    digits_label_noise,
    digits_off_domain,
)
from pyrodps.data.mnist1d import (
    mnist1d_binary_imbalance,
    mnist1d_feature_noise,
    mnist1d_imbalance,
    mnist1d_label_noise,
    mnist1d_off_domain,
)
from pyrodps.data.regression import diabetes_outliers, friedman_outliers, outlier_targets
from pyrodps.errors import ValidationError
from pyrodps.models.problem import SelectionProblem, validate_problem

SCENARIOS: dict[str, Callable[..., SelectionProblem]] = {
    "digits-label-noise": digits_label_noise,
    "digits-imbalance": digits_imbalance,
    "digits-binary-imbalance": digits_binary_imbalance,
    "digits-feature-noise": digits_feature_noise,
    "digits-off-domain": digits_off_domain,
    "mnist1d-label-noise": mnist1d_label_noise,
    "mnist1d-imbalance": mnist1d_imbalance,
    "mnist1d-binary-imbalance": mnist1d_binary_imbalance,
    "mnist1d-feature-noise": mnist1d_feature_noise,
    "mnist1d-off-domain": mnist1d_off_domain,
    "friedman-outliers": friedman_outliers,
    "diabetes-outliers": diabetes_outliers,
}


def _scenario(name: str) -> Callable[..., SelectionProblem]:
    if name not in SCENARIOS:
        raise ValidationError("scenario", f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    return SCENARIOS[name]


def scenario_options(name: str) -> dict[str, Any]:
    """The options scenario ``name`` accepts, each with its default value."""
    return {k: p.default for k, p in inspect.signature(_scenario(name)).parameters.items()}


def make_scenario(name: str, **options: Any) -> SelectionProblem:
    """Build the scenario called ``name`` with its keyword options. An unknown name raises
    :class:`ValidationError` naming ``"scenario"``; an option the scenario does not accept, or an
    out-of-range value, raises one naming the option."""
    build = _scenario(name)
    accepted = scenario_options(name)
    for key in options:
        if key not in accepted:
            raise ValidationError(key, f"scenario {name!r} has no option {key!r}; it accepts {', '.join(accepted)}")
    return build(**options)


__all__ = [
    "SCENARIOS",
    "SelectionProblem",
    "class_dependent_label_noise",
    "diabetes_outliers",
    "digits_binary_imbalance",
    "digits_feature_noise",
    "digits_imbalance",
    "digits_label_noise",
    "digits_off_domain",
    "feature_noise",
    "friedman_outliers",
    "load_npz_problem",
    "long_tail_counts",
    "make_scenario",
    "mnist1d_binary_imbalance",
    "mnist1d_feature_noise",
    "mnist1d_imbalance",
    "mnist1d_label_noise",
    "mnist1d_off_domain",
    "off_domain",
    "outlier_targets",
    "problem_from_arrays",
    "problem_from_datasets",
    "scenario_options",
    "subsample_to_counts",
    "uniform_label_noise",
    "validate_problem",
]
