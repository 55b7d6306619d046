"""Data sets, corruptions, scenarios and bring-your-own-data loaders.

Classification scenario names are ``<data set>-<kind>`` for data set ``digits`` or ``mnist1d`` and
kind ``label-noise``, ``imbalance``, ``binary-imbalance``, ``feature-noise``, ``off-domain``,
``pair-flip``, ``open-set``, ``input-swap`` or ``source-noise`` (sources of unequal label noise, the
source as ``weight_groups``) (:data:`SCENARIO_HARM` says which corruptions hurt);
``iris-label-noise`` and ``cars-label-noise`` are small real tabular sets with label noise
(:mod:`pyrodps.data.tabular`; cars needs the ``tabular`` extra); ``text-label-noise`` (tweet sentiment
with flipped labels) and ``text-mixture`` (a training set pooled from one relevant and two irrelevant
sources of tweets, the source as ``weight_groups``) are real tweets as real MiniLM sentence embeddings
(:mod:`pyrodps.data.text`; they need the ``text`` extra, and embed once, then read a cache); the regression scenarios ``friedman-outliers`` and ``diabetes-outliers`` have gross outliers among the
training targets (:mod:`pyrodps.data.regression`); ``lm-mixture`` fine-tunes a tiny causal language model on
byte-level tweets mixed with two junk sources, the source as ``weight_groups`` (:mod:`pyrodps.data.lm_mixture`;
extras ``text`` and ``lm``). See :func:`scenario_options` for each one's
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
    input_swap,
    long_tail_counts,
    off_domain,
    open_set_noise,
    subsample_to_counts,
    uniform_label_noise,
)
from pyrodps.data.digits import (
    digits_binary_imbalance,
    digits_feature_noise,
    digits_imbalance,
    digits_input_swap,
    digits_label_noise,
    digits_off_domain,
    digits_open_set,
    digits_pair_flip,
    digits_source_noise,
)
from pyrodps.data.lm_mixture import lm_mixture
from pyrodps.data.mnist1d import (
    mnist1d_binary_imbalance,
    mnist1d_feature_noise,
    mnist1d_imbalance,
    mnist1d_input_swap,
    mnist1d_label_noise,
    mnist1d_off_domain,
    mnist1d_open_set,
    mnist1d_pair_flip,
    mnist1d_source_noise,
)
from pyrodps.data.regression import diabetes_outliers, friedman_outliers, outlier_targets
from pyrodps.data.tabular import cars_label_noise, iris_label_noise
from pyrodps.data.text import text_label_noise, text_mixture
from pyrodps.errors import ValidationError
from pyrodps.models.problem import SelectionProblem, validate_problem

SCENARIOS: dict[str, Callable[..., SelectionProblem]] = {
    "digits-label-noise": digits_label_noise,
    "digits-imbalance": digits_imbalance,
    "digits-binary-imbalance": digits_binary_imbalance,
    "digits-feature-noise": digits_feature_noise,
    "digits-off-domain": digits_off_domain,
    "digits-pair-flip": digits_pair_flip,
    "digits-open-set": digits_open_set,
    "digits-input-swap": digits_input_swap,
    "digits-source-noise": digits_source_noise,
    "mnist1d-label-noise": mnist1d_label_noise,
    "mnist1d-imbalance": mnist1d_imbalance,
    "mnist1d-binary-imbalance": mnist1d_binary_imbalance,
    "mnist1d-feature-noise": mnist1d_feature_noise,
    "mnist1d-off-domain": mnist1d_off_domain,
    "mnist1d-pair-flip": mnist1d_pair_flip,
    "mnist1d-open-set": mnist1d_open_set,
    "mnist1d-input-swap": mnist1d_input_swap,
    "mnist1d-source-noise": mnist1d_source_noise,
    "iris-label-noise": iris_label_noise,
    "cars-label-noise": cars_label_noise,
    "text-label-noise": text_label_noise,
    "text-mixture": text_mixture,
    "lm-mixture": lm_mixture,
    "friedman-outliers": friedman_outliers,
    "diabetes-outliers": diabetes_outliers,
}

# Does removing the corrupted points help? Per classification corruption scenario (the ones with a
# ``corrupted`` mask; not the imbalance ones) at its default options: "harmful" where the oracle (SGD on
# the clean training points ∪ meta) beats mixing (SGD on train ∪ meta) by >= 3 points of test accuracy
# on average over seeds 0, 1, 2, else "harmless" (there a selection method has little to gain and
# weights near the prior are the right answer). Measured by benchmarks/harm.py; the numbers (harm =
# oracle - mixing, mean ± sd) are in benchmarks/results/harm/harm.json. Close calls: digits-label-noise
# 0.033 ± 0.013, mnist1d-off-domain 0.042 ± 0.033 (one seed 0.005), mnist1d-feature-noise 0.028 ± 0.006.
SCENARIO_HARM: dict[str, str] = {
    "digits-label-noise": "harmful",
    "digits-feature-noise": "harmless",
    "digits-off-domain": "harmless",
    "digits-pair-flip": "harmful",
    "digits-open-set": "harmless",  # held-out digits sit far from the in-set ones: memorised, not confused
    "digits-input-swap": "harmful",
    "mnist1d-label-noise": "harmful",
    "mnist1d-feature-noise": "harmless",
    "mnist1d-off-domain": "harmful",
    "mnist1d-pair-flip": "harmful",
    "mnist1d-open-set": "harmful",
    "mnist1d-input-swap": "harmful",
    # benchmarks/results/compare/{digits,mnist1d}-source-noise (oracle - mixing over seeds 0-2): 0.012 ± 0.022
    # and 0.236 ± 0.009
    "digits-source-noise": "harmless",
    "mnist1d-source-noise": "harmful",
    # benchmarks/results/harm/harm_tabular.json: 0.140 ± 0.076 and 0.044 ± 0.006
    "iris-label-noise": "harmful",
    "cars-label-noise": "harmful",
    # `pyrodps compare --scenario text-label-noise --methods bads,cleanlab-logreg --seeds 0,1,2` (its oracle and
    # mixing rows): 0.182 ± 0.025
    "text-label-noise": "harmful",
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
    "SCENARIO_HARM",
    "SelectionProblem",
    "class_dependent_label_noise",
    "diabetes_outliers",
    "digits_binary_imbalance",
    "digits_feature_noise",
    "digits_imbalance",
    "digits_input_swap",
    "digits_label_noise",
    "digits_off_domain",
    "digits_open_set",
    "digits_pair_flip",
    "digits_source_noise",
    "feature_noise",
    "friedman_outliers",
    "input_swap",
    "lm_mixture",
    "load_npz_problem",
    "long_tail_counts",
    "make_scenario",
    "mnist1d_binary_imbalance",
    "mnist1d_feature_noise",
    "mnist1d_imbalance",
    "mnist1d_input_swap",
    "mnist1d_label_noise",
    "mnist1d_off_domain",
    "mnist1d_open_set",
    "mnist1d_pair_flip",
    "mnist1d_source_noise",
    "off_domain",
    "open_set_noise",
    "outlier_targets",
    "problem_from_arrays",
    "problem_from_datasets",
    "scenario_options",
    "subsample_to_counts",
    "text_label_noise",
    "text_mixture",
    "uniform_label_noise",
    "validate_problem",
]
