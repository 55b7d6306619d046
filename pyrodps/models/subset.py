"""Sampling only a subset of the network's parameters; the rest stay frozen at their values.

θ is the flat vector of the network's **sampled** parameters: those with ``requires_grad=True``, in
``named_parameters`` order (:class:`~pyrodps.models.layout.ParamLayout`). A parameter with
``requires_grad=False`` is *frozen*: it is not part of θ, has no prior, no pSGLD preconditioner entry
and no gradient, and every forward uses its current value (``torch.func.functional_call`` gets a
partial dictionary, the fused sampler path binds only the sampled parameters to views of θ). The
posterior is then over the sampled block conditional on the frozen values ``θ_F``:

    log p(θ_S, u | D, θ_F) = log p_0(θ_S) + Σ_i [ log p_u(u_i) - ρ_θ w_i d_i(θ_S, θ_F) ] - ρ_m Σ_j l_j(θ_S, θ_F)

so memory (θ, the preconditioner, the gradient, and the activations autograd keeps: nothing before
the first sampled layer is recorded) scales with what is sampled, not with the network.

Three ways to choose, from the most to the least explicit:

* ``BADSModel(net, ..., sample=["*.h.3.*", "*.ln_f.*"])``: glob patterns (``fnmatch``, on the full
  dotted name) or a predicate ``(name, parameter) -> bool``; :func:`sample_only` is applied to ``net``
  (in place, the way ``peft`` freezes a base model);
* :func:`last_blocks` gives the patterns of the last ``k`` blocks of a transformer (the entries of its
  longest ``nn.ModuleList``: GPT-2's ``transformer.h``, Llama's ``model.layers``);
* a LoRA adapter from ``peft`` (``get_peft_model``) freezes the base model itself: the default
  ``sample=None`` then samples exactly the adapter's parameters.

Tied parameters (GPT-2's input embedding and output layer) are one tensor: a pattern matching either
name selects it. A checkpoint holds θ only; resuming needs the network built with the same frozen
values (the same base checkpoint or seed).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence

from torch import nn

from pyrodps.errors import ValidationError

# glob patterns on the full dotted parameter names, or a predicate (name, parameter) -> sampled?
Selection = str | Sequence[str] | Callable[[str, nn.Parameter], bool]


def sampled_names(net: nn.Module) -> tuple[str, ...]:
    """The names of the parameters θ covers: those of ``net`` with ``requires_grad=True``
    (``named_parameters`` order, tied parameters once)."""
    return tuple(n for n, p in net.named_parameters() if p.requires_grad)


def sample_only(net: nn.Module, select: Selection) -> nn.Module:
    """Make θ the parameters of ``net`` that ``select`` names and freeze all others, in place
    (``requires_grad`` set to True / False); returns ``net``.

    ``select`` is a glob pattern, a sequence of them (a parameter is sampled when any pattern matches
    any of its names, tied names included), or a predicate ``(name, parameter) -> bool``. Raises a
    :class:`ValidationError` naming ``sample`` when a pattern matches no parameter (a typo would
    otherwise freeze the whole network silently) or when nothing is selected.
    """
    if not isinstance(net, nn.Module):
        raise ValidationError("net", f"must be a torch.nn.Module, got {type(net).__name__}")
    named = list(net.named_parameters(remove_duplicate=False))
    if callable(select):
        chosen = {id(p) for n, p in named if select(n, p)}
    else:
        patterns = [select] if isinstance(select, str) else list(select)
        if not patterns or not all(isinstance(q, str) for q in patterns):
            raise ValidationError("sample", "give glob patterns (strings) or a predicate (name, parameter) -> bool")
        chosen = set()
        for pattern in patterns:
            hits = {id(p) for n, p in named if fnmatch.fnmatchcase(n, pattern)}
            if not hits:
                raise ValidationError("sample", f"pattern {pattern!r} matches no parameter; names look like "
                                      f"{[n for n, _ in named[:3]]}")
            chosen |= hits
    if not chosen:
        raise ValidationError("sample", "selects no parameter: θ would be empty")
    for _, p in named:
        p.requires_grad_(id(p) in chosen)
    return net


def last_blocks(net: nn.Module, count: int = 1) -> list[str]:
    """Glob patterns of the parameters of the last ``count`` entries of the longest ``nn.ModuleList``
    in ``net`` (a transformer's blocks), e.g. ``["model.transformer.h.3.*"]`` for ``count=1`` on a
    4-layer GPT-2 inside :class:`~pyrodps.models.causal_lm.CausalLMLogits`. Add the final norm or the
    head by name if they should be sampled too (``last_blocks(net) + ["*.ln_f.*"]``)."""
    if not isinstance(count, int) or count < 1:
        raise ValidationError("count", f"must be an int >= 1, got {count!r}")
    lists = [(name, m) for name, m in net.named_modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if not lists:
        raise ValidationError("net", "has no nn.ModuleList of blocks; name the parameters with patterns instead")
    name, blocks = max(lists, key=lambda item: len(item[1]))
    if count > len(blocks):
        raise ValidationError("count", f"{count} blocks asked for, {name or 'the network'} has {len(blocks)}")
    prefix = f"{name}." if name else ""
    return [f"{prefix}{k}.*" for k in range(len(blocks) - count, len(blocks))]


def parameter_counts(net: nn.Module) -> tuple[int, int]:
    """``(sampled, frozen)`` numbers of scalar parameters of ``net`` (tied parameters counted once)."""
    sampled = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return sampled, sum(p.numel() for p in net.parameters()) - sampled
