"""The layout of a network's parameters in one flat vector θ."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ParamLayout:
    """Names, shapes and sizes of a module's **sampled** parameters (``requires_grad=True``), in
    ``named_parameters`` order; frozen ones (``requires_grad=False``) are not part of θ and keep their
    values (:mod:`pyrodps.models.subset`).

    ``unflatten`` returns views of a flat vector (``split`` + ``view``), so gradients flow back
    to the flat vector through one concatenation; with frozen parameters it is a partial dictionary,
    which ``torch.func.functional_call`` completes with the module's own tensors.
    """

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    numels: tuple[int, ...]

    @classmethod
    def from_module(cls, net: nn.Module) -> ParamLayout:
        named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
        return cls(
            names=tuple(n for n, _ in named),
            shapes=tuple(p.shape for _, p in named),
            numels=tuple(p.numel() for _, p in named),
        )

    @property
    def size(self) -> int:
        """Total number of sampled parameters ``P`` (the length of θ)."""
        return sum(self.numels)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of ``flat`` shaped like the module's parameters."""
        parts = torch.split(flat, self.numels)
        return {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes)}

    def flatten(self, params: dict[str, torch.Tensor] | nn.Module) -> torch.Tensor:
        """Concatenate parameters (a dict, or a module's own) into one flat vector."""
        if isinstance(params, nn.Module):
            params = dict(params.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])
