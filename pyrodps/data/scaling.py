"""Standardising vector inputs, and noticing raw ones.

A network with default initialisation and step sizes expects inputs of order one. Raw tabular
features (an age in years, an income in dollars) are not: fed to the default MLP they give a run
that looks fine (exit code 0) but learns nothing (selection AUROC 0.54, every weight near 0 on a
650-row survey set). So for **vector** inputs:

- ``standardise="on"``: every feature is z-scored, ``x'_j = (x_j − m_j) / s_j``, with the mean
  ``m_j`` and standard deviation ``s_j`` of the training and meta inputs together (never the test
  inputs); a constant feature (``s_j = 0``) is only centred.
- ``standardise="off"``: the inputs are left as they are; :func:`far_from_standardised` inputs get a
  :class:`RawFeaturesWarning`.
- ``standardise="auto"`` (the default of ``pyrodps run`` and ``compare``): "on" for data a user
  brings (``--train/--meta/--test``), "off" for the named scenarios, whose inputs are scaled by
  construction (digits: pixels / 16; MNIST-1D and the regression sets: standardised).

Sequences, images and token ids (a language model's inputs) are never standardised here (their
scenarios and networks handle scale).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np

from pyrodps.errors import check_choice
from pyrodps.models.problem import SelectionProblem

STANDARDISE_MODES = ("auto", "on", "off")
RAW_SCALE = 10.0  # inputs count as raw when some feature has |mean| + sd above this


class RawFeaturesWarning(UserWarning):
    """Vector inputs far from standardised were left unscaled."""


def feature_moments(problem: SelectionProblem) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of the training and meta inputs together."""
    x = np.concatenate([np.asarray(problem.x_train, np.float64), np.asarray(problem.x_meta, np.float64)])
    return x.mean(axis=0), x.std(axis=0)


def far_from_standardised(problem: SelectionProblem) -> bool:
    """Whether some feature of the (training + meta) vector inputs has ``|mean| + sd > RAW_SCALE``:
    values far from order one, which the default network and step sizes are not made for."""
    if problem.x_train.ndim != 2:
        return False
    mean, sd = feature_moments(problem)
    return bool(np.max(np.abs(mean) + sd) > RAW_SCALE)


def standardise_inputs(problem: SelectionProblem, mode: str = "on", *, user_data: bool = True) -> tuple[SelectionProblem, dict]:
    """Apply ``mode`` (:data:`STANDARDISE_MODES`; ``"auto"`` means ``"on"`` when ``user_data``) to
    ``problem``'s vector inputs. Returns the problem (a copy when scaled) and a record for
    ``config.json``: ``{"mode", "applied", "mean", "sd"}`` (per feature, when applied)."""
    check_choice("standardise", mode, STANDARDISE_MODES)
    record: dict = {"mode": mode, "applied": False}
    if problem.x_train.ndim != 2 or problem.task == "sequence":
        record["reason"] = "token ids" if problem.task == "sequence" else "not vector inputs"
        return problem, record
    if mode == "off" or (mode == "auto" and not user_data):
        if far_from_standardised(problem):
            mean, sd = feature_moments(problem)
            j = int(np.argmax(np.abs(mean) + sd))
            warnings.warn(f"the inputs are far from standardised (feature {j}: mean {mean[j]:.3g}, sd {sd[j]:.3g}) "
                          "and are used as they are; the default network and step sizes expect features of "
                          "order one: standardise them (--standardise on)", RawFeaturesWarning, stacklevel=2)
        return problem, record
    mean, sd = feature_moments(problem)
    scale = np.where(sd > 0, sd, 1.0)

    def z(x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float64) - mean) / scale).astype(np.float32)

    scaled = replace(problem, x_train=z(problem.x_train), x_meta=z(problem.x_meta), x_test=z(problem.x_test))
    record.update(applied=True, mean=mean.tolist(), sd=sd.tolist())
    return scaled, record
