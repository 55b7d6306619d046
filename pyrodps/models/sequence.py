"""Sequence likelihoods for language models: per-example token-level NLL with padding and prompt masks.

A causal language model maps a token sequence ``x_i = (x_{i,1}, ..., x_{i,L})`` to next-token logits
``f_θ(x_i) ∈ R^{L × V}``; its targets are ``y_{i,t} = x_{i,t+1}``, with the positions that must not count
set to ``ignore_index`` (-100, the Hugging Face convention): padding, the last position (it has no next
token) and, for instruction data, every position whose next token belongs to the prompt, so that only
response tokens are scored (:func:`causal_lm_targets` builds them). With ``T_i = {t : y_{i,t} ≠ -100}``:

    reduction="sum"  (default):  l_i(θ) = -Σ_{t ∈ T_i} log softmax(f_θ(x_i)_t)_{y_{i,t}}
    reduction="mean":            l_i(θ) = (1/|T_i|) · the same sum

``"sum"`` is the log-likelihood of the example's scored tokens, so a long response weighs more, as it
carries more evidence; ``"mean"`` gives every example the same scale whatever its length (the per-example
loss most fine-tuning code averages), which is ``exp(-ρ_θ w_i l_i)`` with each example's likelihood raised
to the power ``1/|T_i|`` (a tempered likelihood, not a normalised density over sequences). [choice]
``"sum"`` is the default because it is the likelihood; ``"mean"`` is one keyword away.

:class:`MaskedTokenSequence` is the Pyro distribution (the specification, used by the Pyro model);
:meth:`TokenSequence.nll` the same loss through ``F.cross_entropy`` (the fast path); a test proves them
equal, and equal to Hugging Face's own causal-LM loss on a tiny GPT-2.
"""

from __future__ import annotations

import math
from typing import ClassVar

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

from pyrodps.errors import ValidationError, check_choice, check_positive_int
from pyrodps.models.likelihoods import Likelihood

IGNORE_INDEX = -100
REDUCTIONS = ("sum", "mean")



def token_nll_sum(logits: torch.Tensor, y: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Each row's summed next-token NLL over its counted tokens (``y != ignore_index``), from ``logits``
    ``(B, L, V)`` and targets ``y`` ``(B, L)`` by ``F.cross_entropy`` (one fused kernel); shape ``(B,)``."""
    per_token = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                ignore_index=ignore_index, reduction="none").view(y.shape)
    return per_token.sum(-1)

class MaskedTokenSequence(TorchDistribution):
    """Independent categoricals over ``L`` positions with ``logits`` ``(..., L, V)``; positions whose
    value is ``ignore_index`` do not count. ``log_prob`` of a ``(..., L)`` value is the sum (or the mean,
    ``reduction="mean"``) of the counted positions' log-probabilities; batch shape ``logits.shape[:-2]``,
    event shape ``(L,)``."""

    arg_constraints: ClassVar[dict] = {"logits": constraints.real}
    support = constraints.independent(constraints.real, 1)  # token ids or ignore_index; checked by TokenSequence
    has_rsample = False

    def __init__(self, logits: torch.Tensor, reduction: str = "sum", ignore_index: int = IGNORE_INDEX,
                 validate_args: bool | None = None) -> None:
        if logits.dim() < 2:
            raise ValidationError("logits", f"need (..., L, V) next-token logits, got shape {tuple(logits.shape)}")
        self.logits = logits
        self.reduction = check_choice("reduction", reduction, REDUCTIONS)
        self.ignore_index = int(ignore_index)
        super().__init__(logits.shape[:-2], logits.shape[-2:-1], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> MaskedTokenSequence:
        shape = torch.Size(batch_shape) + self.logits.shape[-2:]
        return MaskedTokenSequence(self.logits.expand(shape), self.reduction, self.ignore_index)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        counted = value != self.ignore_index
        tokens = torch.where(counted, value, torch.zeros_like(value)).long()
        log_p = self.logits.log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        total = torch.where(counted, log_p, torch.zeros_like(log_p)).sum(-1)
        if self.reduction == "mean":
            total = total / counted.sum(-1).clamp(min=1).to(total.dtype)
        return total

    def sample(self, sample_shape: tuple[int, ...] = ()) -> torch.Tensor:
        """A token at every position (none ignored), each from its own categorical."""
        return dist.Categorical(logits=self.logits).sample(torch.Size(sample_shape))


class TokenSequence(Likelihood):
    """Causal-LM likelihood over token targets ``y`` ``(N, L)`` (``ignore_index`` where a position does not
    count), for a network whose output is next-token logits ``(B, L, V)`` (module docstring).

    Args:
        vocab_size: ``V``, the width of the logits.
        reduction: ``"sum"`` (the scored tokens' log-likelihood, default) or ``"mean"`` (per scored token).
        ignore_index: the target value of positions that do not count.
        reference_per_token: ``c``, nats per scored token the weights measure a loss against
            (:meth:`saturated_nll`); 0 by default.
    """

    task: ClassVar[str] = "sequence"

    def __init__(self, vocab_size: int, reduction: str = "sum", ignore_index: int = IGNORE_INDEX,
                 reference_per_token: float = 0.0) -> None:
        self.vocab_size = check_positive_int("vocab_size", vocab_size, minimum=2)
        self.reduction = check_choice("reduction", reduction, REDUCTIONS)
        self.ignore_index = int(ignore_index)
        c = float(reference_per_token)
        if not (math.isfinite(c) and c >= 0.0):
            raise ValidationError("reference_per_token", f"must be a finite number >= 0 (nats per token), got {reference_per_token!r}")
        self.reference_per_token = c
        if 0 <= self.ignore_index < self.vocab_size:
            raise ValidationError("ignore_index", f"{ignore_index} is a token id of the vocabulary (0..{vocab_size - 1})")

    def distribution(self, output: torch.Tensor) -> dist.Distribution:
        return MaskedTokenSequence(output, self.reduction, self.ignore_index)

    def nll(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``l_i`` by ``F.cross_entropy`` with ``ignore_index`` (one fused kernel), shape ``(B,)``."""
        total = token_nll_sum(output, y, self.ignore_index)
        if self.reduction == "mean":
            total = total / (y != self.ignore_index).sum(-1).clamp(min=1).to(total.dtype)
        return total

    def saturated_nll(self, y: torch.Tensor) -> torch.Tensor:
        """The reference loss ``l_i^ref = c |T_i|`` (``c`` per token for ``reduction="mean"``), with ``c``
        = ``reference_per_token``. The infimum of a token NLL is 0, but text never gets there: its
        per-token loss stays near the entropy of the language, so against 0 every weight would see a
        large loss (under ``log_z="ignore"``, ``w_i ≈ T / (ρ_θ l_i)`` for all points, and θ would learn
        from about one nat per sequence). Measured against ``c``, the deviance ``l_i − c|T_i|`` is
        negative for text a model predicts better than ``c`` nats per token and positive for text it
        predicts worse. [choice] :func:`~pyrodps.models.problem.default_likelihood` sets ``c`` to the
        entropy of the meta set's scored tokens (the loss of the best context-free model of the target
        text); it is a constant, so θ's gradient is unchanged."""
        counted = (y != self.ignore_index).sum(-1).to(torch.get_default_dtype())
        if self.reduction == "mean":
            counted = counted.clamp(max=1.0)
        return self.reference_per_token * counted

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        """Next-token probabilities at every position, ``(B, L, V)``."""
        return output.softmax(-1)

    def targets(self, y: object, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.as_tensor(y, dtype=torch.long, device=device)

    def output_dim(self, y: torch.Tensor) -> int:
        return self.vocab_size

    def check_targets(self, y: torch.Tensor, argument: str) -> None:
        """Integer ``(N, L)`` targets, each a token id in ``[0, V)`` or ``ignore_index``, and at least one
        counted position per example (an example with none would carry no evidence, and its weight
        would only follow the prior)."""
        if y.dtype.is_floating_point or y.dtype == torch.bool:
            raise ValidationError(argument, f"token targets must be integers, got dtype {y.dtype}")
        if y.dim() != 2:
            raise ValidationError(argument, f"token targets must be (N, L), got shape {tuple(y.shape)}")
        counted = y != self.ignore_index
        bad = counted & ((y < 0) | (y >= self.vocab_size))
        if bool(bad.any()):
            raise ValidationError(argument, f"token ids must lie in [0, {self.vocab_size}) or be {self.ignore_index}; "
                                  f"found {int(y[bad][0])}")
        empty = ~counted.any(-1)
        if bool(empty.any()):
            raise ValidationError(argument, f"{int(empty.sum())} example(s) have no scored token (e.g. row "
                                  f"{int(empty.nonzero()[0])}): every position is {self.ignore_index}")

    def __repr__(self) -> str:
        return (f"TokenSequence(vocab_size={self.vocab_size}, reduction={self.reduction!r}, "
                f"reference_per_token={self.reference_per_token:.4g})")


def causal_lm_targets(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      prompt_lengths: torch.Tensor | None = None, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Next-token targets ``y_{i,t} = x_{i,t+1}`` for right-padded ``input_ids`` ``(N, L)``, with
    ``ignore_index`` at the last position, where the next token is padding (``attention_mask == 0``), and,
    given ``prompt_lengths`` (``(N,)``: the number of prompt tokens at the start of each example), where
    the next token is part of the prompt: only response tokens are scored."""
    if input_ids.dim() != 2:
        raise ValidationError("input_ids", f"must be (N, L), got shape {tuple(input_ids.shape)}")
    n, length = input_ids.shape
    y = torch.full_like(input_ids, ignore_index)
    y[:, :-1] = input_ids[:, 1:]
    counted = torch.ones_like(input_ids, dtype=torch.bool)
    counted[:, -1] = False
    if attention_mask is not None:
        if attention_mask.shape != input_ids.shape:
            raise ValidationError("attention_mask", f"must have the shape of input_ids {tuple(input_ids.shape)}")
        counted[:, :-1] &= attention_mask[:, 1:].bool()
    if prompt_lengths is not None:
        prompt_lengths = torch.as_tensor(prompt_lengths, device=input_ids.device)
        if prompt_lengths.shape != (n,) or bool((prompt_lengths < 1).any()) or bool((prompt_lengths > length).any()):
            raise ValidationError("prompt_lengths", f"need one length in [1, {length}] per example, got "
                                  f"{prompt_lengths.tolist() if prompt_lengths.numel() < 10 else prompt_lengths.shape}")
        position = torch.arange(length, device=input_ids.device)
        counted &= (position + 1)[None, :] >= prompt_lengths[:, None]  # the next token t+1 is a response token
    return torch.where(counted, y, torch.full_like(y, ignore_index))
