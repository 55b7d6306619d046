"""A Hugging Face causal language model as the main network θ: ``input_ids ↦ next-token logits``.

Any module whose ``forward(input_ids=..., attention_mask=...)`` returns an object with ``.logits``
(``transformers``' ``AutoModelForCausalLM`` family) becomes an ordinary ``nn.Module`` of one tensor
argument, so the BADS model, its Pyro program (through ``torch.func.functional_call``) and the fused
sampler path use it like any other network; its targets come from
:func:`pyrodps.models.sequence.causal_lm_targets` and its likelihood is
:class:`pyrodps.models.sequence.TokenSequence`. Tied weights (GPT-2's input embedding and output
layer) are one parameter: ``named_parameters`` lists it once, and θ holds it once.

Load a local checkpoint with ``AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)``;
pyrodps fetches nothing from a hub. :func:`tiny_gpt2` is the default network of a sequence problem
(token-id inputs): a small randomly initialised GPT-2 built from a config.
"""

from __future__ import annotations

import torch
from torch import nn

from pyrodps.errors import ValidationError


class CausalLMLogits(nn.Module):
    """``x ↦ model(input_ids=x, attention_mask=(x != pad_token_id)).logits``, ``(B, L) → (B, L, V)``.

    Args:
        model: the causal language model (``.logits`` on its output).
        pad_token_id: the padding id, masked out of attention; ``None`` for right-padded batches whose
            padded positions only follow the real tokens (causal attention never looks ahead, and the
            targets there are ignored), which need no mask.
    """

    def __init__(self, model: nn.Module, pad_token_id: int | None = None) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ValidationError("model", f"must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.pad_token_id = pad_token_id

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if input_ids.dtype.is_floating_point:
            raise ValidationError("input_ids", f"token ids must be integers, got dtype {input_ids.dtype}")
        mask = None if self.pad_token_id is None else (input_ids != self.pad_token_id).long()
        out = self.model(input_ids=input_ids, attention_mask=mask, use_cache=False)
        logits = getattr(out, "logits", None)
        if logits is None:
            raise ValidationError("model", "its output has no .logits: pass a causal language model")
        return logits


# the default network of a sequence problem (input family "tokens"): 2 blocks of width 32, 2 heads
TINY_GPT2 = {"n_embd": 32, "n_layer": 2, "n_head": 2}
LM_INSTALL_HINT = "pip install 'pyrodps[lm]'"


def tiny_gpt2(vocab_size: int, max_length: int, n_embd: int = TINY_GPT2["n_embd"], n_layer: int = TINY_GPT2["n_layer"],
              n_head: int = TINY_GPT2["n_head"]) -> CausalLMLogits:
    """A randomly initialised GPT-2 (``transformers.GPT2LMHeadModel`` from a ``GPT2Config``, nothing
    downloaded) over ``vocab_size`` tokens and up to ``max_length`` positions, without dropout (the
    sampler's noise is the randomness), wrapped as :class:`CausalLMLogits` with no attention mask:
    inputs are **right-padded**, and causal attention never lets a real token see the padding after it.
    Attention is the "eager" implementation: it has a second derivative, which the one-step-lookahead
    baselines (L2RW, MW-Net) differentiate through (PyTorch's fused CPU attention has none), at about
    10 % of a step's time. Initialised from the global torch generator (seed it, or fork it, first)."""
    try:
        import transformers
    except ImportError:
        raise ValidationError("network", f"a sequence problem's default network is a tiny GPT-2 from the "
                              f"transformers package: {LM_INSTALL_HINT}") from None
    config = transformers.GPT2Config(vocab_size=int(vocab_size), n_positions=int(max_length), n_embd=n_embd,
                                     n_layer=n_layer, n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                     bos_token_id=0, eos_token_id=0, pad_token_id=None, attn_implementation="eager")
    return CausalLMLogits(transformers.GPT2LMHeadModel(config).eval(), pad_token_id=None)
