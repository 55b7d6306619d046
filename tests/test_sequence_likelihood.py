"""The sequence likelihood (pyrodps/models/sequence.py): the Pyro distribution and the fast NLL agree,
masks do what they say, targets are checked by name, and the loss equals Hugging Face's causal-LM loss."""

from __future__ import annotations

import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine

from pyrodps.errors import ValidationError
from pyrodps.models.likelihoods import make_likelihood
from pyrodps.models.sequence import (
    IGNORE_INDEX,
    MaskedTokenSequence,
    TokenSequence,
    causal_lm_targets,
)

V = 11


def _batch(seed: int = 0, n: int = 4, length: int = 7):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, length, V, generator=g, dtype=torch.float64)
    y = torch.randint(0, V, (n, length), generator=g)
    y[0, :3] = IGNORE_INDEX  # a prompt
    y[1, -2:] = IGNORE_INDEX  # padding
    y[2, ::2] = IGNORE_INDEX
    return logits, y


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_the_pyro_distribution_and_the_fast_nll_agree(reduction):
    lik = TokenSequence(V, reduction=reduction)
    logits, y = _batch()
    fast = lik.nll(logits, y)
    spec = -lik.distribution(logits).log_prob(y)
    torch.testing.assert_close(fast, spec)
    # by hand: the counted positions' cross-entropies, summed or averaged per example
    for i in range(y.shape[0]):
        keep = y[i] != IGNORE_INDEX
        ce = F.cross_entropy(logits[i][keep], y[i][keep], reduction="sum")
        expected = ce / keep.sum() if reduction == "mean" else ce
        torch.testing.assert_close(fast[i], expected)
    # in a Pyro model under a plate: the observed site's log-probability is -Σ_i l_i
    def model():
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", lik.distribution(logits), obs=y)

    trace = poutine.trace(model).get_trace()
    torch.testing.assert_close(trace.log_prob_sum(), -fast.sum())


def test_masked_positions_do_not_count():
    lik = TokenSequence(V)
    logits, y = _batch(1)
    before = lik.nll(logits, y)
    changed = logits.clone()
    changed[y == IGNORE_INDEX] = 50.0 * torch.randn_like(changed[y == IGNORE_INDEX])
    torch.testing.assert_close(lik.nll(changed, y), before)
    changed[0, -1, y[0, -1]] += 1.0  # the target's logit at a counted position: the loss moves
    assert not torch.allclose(lik.nll(changed, y)[0], before[0])


def test_causal_lm_targets_score_only_response_tokens():
    ids = torch.tensor([[5, 6, 7, 8, 9, 0], [1, 2, 3, 4, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]])
    y = causal_lm_targets(ids, mask, prompt_lengths=torch.tensor([2, 3]))
    I = IGNORE_INDEX
    # row 0: prompt (5, 6), response (7, 8, 9), pad; row 1: prompt (1, 2, 3), response (4), pads
    assert y.tolist() == [[I, 7, 8, 9, I, I], [I, I, 4, I, I, I]]
    assert causal_lm_targets(ids).tolist()[0] == [6, 7, 8, 9, 0, I]
    with pytest.raises(ValidationError, match="prompt_lengths"):
        causal_lm_targets(ids, mask, prompt_lengths=torch.tensor([0, 3]))
    with pytest.raises(ValidationError, match="attention_mask"):
        causal_lm_targets(ids, mask[:, :3])


def test_bad_targets_and_options_are_refused_by_name():
    lik = TokenSequence(V)
    with pytest.raises(ValidationError, match="y_train"):
        lik.check_targets(torch.zeros(2, 3), "y_train")  # floats
    with pytest.raises(ValidationError, match="y_train"):
        lik.check_targets(torch.tensor([[1, V]]), "y_train")  # out of the vocabulary
    with pytest.raises(ValidationError, match="no scored token"):
        lik.check_targets(torch.tensor([[1, 2], [IGNORE_INDEX, IGNORE_INDEX]]), "y_train")
    lik.check_targets(torch.tensor([[1, IGNORE_INDEX]]), "y_train")
    with pytest.raises(ValidationError, match="reduction"):
        TokenSequence(V, reduction="max")
    with pytest.raises(ValidationError, match="ignore_index"):
        TokenSequence(V, ignore_index=3)
    built = make_likelihood("token-sequence", vocab_size=V, reduction="mean")
    assert isinstance(built, TokenSequence) and built.reduction == "mean" and built.output_dim(None) == V
    assert isinstance(built.distribution(torch.zeros(2, 3, V)), MaskedTokenSequence)


def test_the_loss_is_hugging_faces_causal_lm_loss_on_a_tiny_gpt2():
    """A randomly initialised GPT-2 built from a config (nothing downloaded): Σ_i l_i / Σ_i |T_i| with the
    sum reduction equals the model's own mean token loss for labels = input_ids (prompt tokens -100)."""
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=1, n_head=2,
                                     bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).eval()
    ids = torch.randint(3, 32, (3, 10))
    mask = torch.ones_like(ids)
    mask[2, 7:] = 0
    labels = ids.clone()
    labels[:, :4] = IGNORE_INDEX  # a prompt of 4 tokens
    labels[mask == 0] = IGNORE_INDEX
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
    y = causal_lm_targets(ids, mask, prompt_lengths=torch.full((3,), 4))
    lik = TokenSequence(32)
    ours = lik.nll(out.logits, y).sum() / (y != IGNORE_INDEX).sum()
    torch.testing.assert_close(ours, out.loss, rtol=1e-5, atol=1e-6)
