"""Selection problems whose examples are token sequences (language modelling), and the one number a
causal language model is scored by.

A sequence problem is a :class:`~pyrodps.models.problem.SelectionProblem` with ``vocab_size`` set
(and ``num_classes=None``): every input ``x_i`` is a row of ``L`` integer token ids in ``[0, V)``
(right-padded), every target ``y_i`` a row of ``L`` next-token ids or ``-100`` (positions that do not
count: padding, the prompt, the last position; :func:`~pyrodps.models.sequence.causal_lm_targets`),
with at least one counted token per row. Its likelihood is
:class:`~pyrodps.models.sequence.TokenSequence` and its default network a tiny GPT-2
(:func:`~pyrodps.models.causal_lm.tiny_gpt2`).

The log-likelihood of one sequence under one θ is the sum over its counted tokens,

    log p(y_i | x_i, θ) = Σ_{t ∈ T_i} log softmax(f_θ(x_i)_t)_{y_{i,t}},   T_i = {t : y_{i,t} ≠ -100},

whatever reduction the training likelihood uses (a ``"mean"`` likelihood tempers each example for
training; the predictive score is always about the tokens themselves): :func:`sequence_log_prob`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from pyrodps.errors import ValidationError
from pyrodps.models.sequence import IGNORE_INDEX, token_nll_sum

if TYPE_CHECKING:
    from pyrodps.models.problem import SelectionProblem

SEQUENCE_TASK = "sequence"


def sequence_log_prob(logits: torch.Tensor, y: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """``log p(y_i | x_i, θ)``: the summed log-probability of each row's counted tokens (module
    docstring), from next-token ``logits`` ``(B, L, V)`` and targets ``y`` ``(B, L)``; shape ``(B,)``."""
    return -token_nll_sum(logits, y, ignore_index)


def token_entropy(y: np.ndarray, ignore_index: int = IGNORE_INDEX) -> float:
    """``H = -Σ_v q_v log q_v`` (nats) of the empirical distribution ``q`` of the scored tokens of ``y``
    (the per-token loss of the best context-free model of them; 0 when there are none)."""
    tokens = np.asarray(y)[np.asarray(y) != ignore_index]
    if tokens.size == 0:
        return 0.0
    q = np.unique(tokens, return_counts=True)[1] / tokens.size
    return float(-(q * np.log(q)).sum())


def _check_token_rows(x: object, y: object, xname: str, yname: str, vocab_size: int) -> None:
    for name, a in ((xname, x), (yname, y)):
        if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.integer):
            raise ValidationError(name, f"a sequence problem needs integer token arrays, got "
                                  f"{getattr(a, 'dtype', type(a).__name__)}")
        if a.ndim != 2:
            raise ValidationError(name, f"must have shape (n, L): one row of token ids per example, got {a.shape}")
    if x.shape[0] == 0:
        raise ValidationError(xname, "the meta set is empty: BADS needs at least one clean example"
                              if xname == "x_meta" else "is empty")
    if y.shape != x.shape:
        raise ValidationError(yname, f"must have the shape of {xname} {x.shape} (one target per position), got {y.shape}")
    if x.min() < 0 or x.max() >= vocab_size:
        raise ValidationError(xname, f"token ids must lie in [0, {vocab_size}), got range [{x.min()}, {x.max()}]")
    counted = y != IGNORE_INDEX
    if np.any(counted & ((y < 0) | (y >= vocab_size))):
        raise ValidationError(yname, f"targets must be token ids in [0, {vocab_size}) or {IGNORE_INDEX}")
    empty = ~counted.any(axis=1)
    if empty.any():
        raise ValidationError(yname, f"{int(empty.sum())} row(s) have no scored token (e.g. row "
                              f"{int(np.flatnonzero(empty)[0])}): every target is {IGNORE_INDEX}")


def check_sequence_problem(p: SelectionProblem) -> None:
    """Raise :class:`ValidationError` naming the first bad field of a sequence problem (module
    docstring): ``num_classes`` must be ``None``, ``vocab_size`` an integer >= 2, and every split a
    pair of integer ``(n, L)`` arrays of token ids and targets."""
    v = p.vocab_size
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2:
        raise ValidationError("vocab_size", f"must be an integer >= 2 (or None: not a sequence problem), got {v!r}")
    if p.num_classes is not None:
        raise ValidationError("num_classes", "a sequence problem (vocab_size set) has no classes: pass num_classes=None")
    for split in ("train", "meta", "test"):
        _check_token_rows(getattr(p, f"x_{split}"), getattr(p, f"y_{split}"), f"x_{split}", f"y_{split}", int(v))


def input_dtype(problem: SelectionProblem) -> torch.dtype:
    """The tensor type of the problem's inputs: ``long`` token ids for a sequence problem, else ``float32``."""
    return torch.long if getattr(problem, "vocab_size", None) is not None else torch.float32
