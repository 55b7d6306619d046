"""The cleanlab baseline (confident learning, Northcutt et al. 2021): what a practitioner would pick to
find bad labels.

1. Out-of-fold predicted probabilities on the training set: a stratified, seeded ``folds``-fold split
   of ``(x_train, y_train)``; each fold's held-out points are predicted by a model fitted on the other
   folds, either the network of the ``mixing`` baseline trained by plain SGD
   (:func:`~pyrodps.baselines.sgd.fit_sgd`, same network, likelihood and SGD settings, ``steps``
   steps per fold; its training set is the other folds ∪ the clean meta set, since that is what
   ``mixing`` trains on and the meta set is data a practitioner has) or scikit-learn's
   ``LogisticRegression(max_iter=1000)`` on the inputs flattened to 2-D (other folds only).
2. ``cleanlab.filter.find_label_issues(labels, pred_probs, filter_by=...)`` flags the points whose
   given label confident learning finds likely wrong, and ``cleanlab.rank.get_label_quality_scores``
   scores every point in [0, 1] (higher = more trustworthy): that is the selection score
   ``weight_mean``, comparable with BADS weights through the AUROC.
3. The network is retrained from scratch by plain SGD on the points not flagged ∪ the meta set (the
   ``mixing`` baseline on the cleaned training set; the meta set alone if every point is flagged), and
   its test probabilities are returned.

Classification only. ``cleanlab`` is an optional dependency: ``pip install 'pyrodps[cleanlab]'``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from pyrodps.baselines.sgd import SGDConfig, fit_sgd
from pyrodps.errors import ValidationError, check_choice, check_positive_int
from pyrodps.models.likelihoods import Categorical, Likelihood
from pyrodps.models.problem import SelectionProblem

OOF_MODELS = ("network", "logistic")
FILTER_BY = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given",
             "low_normalized_margin", "low_self_confidence")


@dataclass
class CleanlabConfig:
    """``oof_model``: the model of the out-of-fold probabilities, ``"network"`` (the ``mixing``
    baseline's network and SGD settings) or ``"logistic"`` (scikit-learn ``LogisticRegression``);
    ``folds``: number of stratified folds (>= 2); ``steps``: SGD steps of each fold's network and of
    the final retraining (the same number: a fold network trained for fewer steps would be a weaker
    model than the one the baseline ends with); ``filter_by``: the rule of
    ``cleanlab.filter.find_label_issues``."""

    oof_model: str = "network"
    folds: int = 5
    steps: int = 3000
    filter_by: str = "prune_by_noise_rate"

    def validate(self) -> None:
        """Raise :class:`~pyrodps.errors.ValidationError` naming the first bad field."""
        if not isinstance(self.oof_model, str):
            raise ValidationError("oof_model", f"must be a string, got {self.oof_model!r}")
        check_choice("oof_model", self.oof_model, OOF_MODELS)
        check_positive_int("folds", self.folds, minimum=2)
        check_positive_int("steps", self.steps)
        if not isinstance(self.filter_by, str):
            raise ValidationError("filter_by", f"must be a string, got {self.filter_by!r}")
        check_choice("filter_by", self.filter_by, FILTER_BY)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CleanlabFit:
    """What :func:`fit_cleanlab` produced. ``test_probs``: class probabilities ``(n_test, C)`` of the
    retrained network; ``accuracy_trace``: its ``(step, test accuracy)``; ``weight_mean``: cleanlab's
    label-quality score per training point (higher = more trustworthy); ``issues``: the points
    ``find_label_issues`` flagged; ``kept``: the training points retrained on (not flagged);
    ``oof_seconds``: wall time of the out-of-fold probabilities; ``test_accuracy`` and
    ``wall_seconds`` (whole fit): added for convenience."""

    test_probs: np.ndarray
    accuracy_trace: list[tuple[int, float]]
    weight_mean: np.ndarray
    issues: np.ndarray
    kept: int
    oof_seconds: float
    config: dict
    test_accuracy: float = float("nan")
    wall_seconds: float = float("nan")


def _import_cleanlab() -> Any:
    try:
        import cleanlab.filter
        import cleanlab.rank
    except ImportError:
        raise ValidationError(
            "method", "the cleanlab baseline needs the optional package cleanlab: pip install 'pyrodps[cleanlab]'"
        ) from None
    return cleanlab


def check_cleanlab_problem(problem: SelectionProblem, config: CleanlabConfig, likelihood: Likelihood | None) -> None:
    """Raise :class:`~pyrodps.errors.ValidationError` before any work if ``problem`` is not a
    classification problem, ``likelihood`` is not a :class:`Categorical` over its classes, or
    ``config`` is bad (or has more folds than some class has training points)."""
    if problem.num_classes is None:
        raise ValidationError("problem", "the cleanlab baseline finds label issues: classification only, "
                              "got a regression problem (num_classes=None)")
    if likelihood is not None and not (
        isinstance(likelihood, Categorical) and likelihood.num_classes == problem.num_classes
    ):
        raise ValidationError("likelihood", f"the cleanlab baseline needs Categorical({problem.num_classes}), "
                              f"got {likelihood!r}")
    config.validate()
    counts = np.bincount(np.asarray(problem.y_train))
    smallest = int(counts[counts > 0].min())
    if config.folds > smallest:
        raise ValidationError("folds", f"must be <= {smallest}, the training points of the rarest given label, "
                              f"got {config.folds}")


def out_of_fold_probs(problem: SelectionProblem, config: CleanlabConfig, *, seed: int = 0, progress: bool = True,
                      likelihood: Likelihood | None = None, sgd_config: SGDConfig | None = None) -> np.ndarray:
    """``(N, C)`` out-of-fold class probabilities of the training points (stratified
    ``StratifiedKFold(folds, shuffle=True, random_state=seed)`` split, see the module docstring).
    ``sgd_config`` sets the networks' SGD (its ``steps`` replaced by ``config.steps``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    x, y, c = problem.x_train, np.asarray(problem.y_train), int(problem.num_classes)
    probs = np.zeros((x.shape[0], c))
    split = StratifiedKFold(n_splits=config.folds, shuffle=True, random_state=seed)
    for k, (fit_idx, held_idx) in enumerate(split.split(np.zeros(len(y)), y)):
        if config.oof_model == "logistic":
            flat = x.reshape(x.shape[0], -1)
            clf = LogisticRegression(max_iter=1000).fit(flat[fit_idx], y[fit_idx])
            probs[np.ix_(held_idx, clf.classes_)] = clf.predict_proba(flat[held_idx])
        else:
            sub = replace(problem, x_train=x[fit_idx], y_train=y[fit_idx], x_test=x[held_idx], y_test=y[held_idx],
                          corrupted=None, minority=None, weight_groups=None)
            fit = fit_sgd(sub, _sgd(config, sgd_config), seed=seed + 1000 * (k + 1), method="mixing",
                          likelihood=likelihood, progress=progress, eval_every=config.steps)
            probs[held_idx] = fit.test_probs
    return probs


def _sgd(config: CleanlabConfig, sgd_config: SGDConfig | None) -> SGDConfig:
    return replace(sgd_config or SGDConfig(), steps=config.steps)


def fit_cleanlab(problem: SelectionProblem, config: CleanlabConfig | None = None, *, seed: int = 0,
                 progress: bool = True, likelihood: Likelihood | None = None,
                 sgd_config: SGDConfig | None = None) -> CleanlabFit:
    """Find label issues with cleanlab on out-of-fold probabilities, then retrain the ``mixing``
    network on the cleaned training set ∪ the meta set (see the module docstring). Fold ``k``'s
    network is seeded ``seed + 1000 (k + 1)``, the retrained one ``seed``: same seed, same result.
    ``sgd_config``: the networks' SGD settings (network width, learning rate; ``steps`` from ``config``)."""
    config = config or CleanlabConfig()
    check_cleanlab_problem(problem, config, likelihood)
    # one network for the folds and the retrain, chosen for the whole training set (not each fold's size)
    sgd_config = _sgd(config, sgd_config).resolved(problem)
    cleanlab = _import_cleanlab()
    start = time.perf_counter()
    probs = out_of_fold_probs(problem, config, seed=seed, progress=progress, likelihood=likelihood,
                              sgd_config=sgd_config)
    oof_seconds = time.perf_counter() - start
    labels = np.asarray(problem.y_train)
    issues = np.asarray(cleanlab.filter.find_label_issues(labels, probs, filter_by=config.filter_by), dtype=bool)
    scores = np.asarray(cleanlab.rank.get_label_quality_scores(labels, probs), dtype=np.float64)
    keep = ~issues
    if keep.any():
        cleaned = problem.train_subset(keep, labels)
        fit = fit_sgd(cleaned, _sgd(config, sgd_config), seed=seed, method="mixing", likelihood=likelihood,
                      progress=progress)
    else:  # every point flagged: the meta set is all that is left
        fit = fit_sgd(problem, _sgd(config, sgd_config), seed=seed, method="meta-only", likelihood=likelihood,
                      progress=progress)
    return CleanlabFit(fit.test_probs, fit.accuracy_trace, scores, issues, int(keep.sum()), oof_seconds,
                       config.to_dict(), fit.test_accuracy, time.perf_counter() - start)
