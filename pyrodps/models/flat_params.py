"""Flat parameter storage: a network's parameters as views into one flat vector θ.

Binding θ re-points every parameter's ``.data`` at a view of θ, so the sampler updates the whole
network with one operation on θ (no per-tensor loop) and the network computes with the chain's
state without copying it. :meth:`FlatParams.grad` returns ``∇_θ`` of a scalar as one flat vector.
"""

from __future__ import annotations

import torch
from torch import nn

from pyrodps.errors import ValidationError
from pyrodps.models.layout import ParamLayout


class FlatParams:
    """The sampled parameters of ``net`` (those of ``layout``, by default the ones with
    ``requires_grad=True``) bound to views of a flat vector; frozen parameters are left alone."""

    def __init__(self, net: nn.Module, layout: ParamLayout | None = None) -> None:
        self.layout = layout if layout is not None else ParamLayout.from_module(net)
        own = dict(net.named_parameters())
        missing = [n for n in self.layout.names if n not in own]
        if missing:
            raise ValidationError("layout", f"names parameters {missing[:3]} that the network does not have")
        self.params = [own[n] for n in self.layout.names]
        if not self.params:
            raise ValidationError("net", "has no sampled parameter (all are frozen, requires_grad=False)")
        dtypes = {p.dtype for p in self.params}
        devices = {p.device for p in self.params}
        if len(dtypes) > 1 or len(devices) > 1:
            raise ValidationError("net", f"parameters must share one dtype and device, got {dtypes}, {devices}")
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self._bound: torch.Tensor | None = None

    def bind(self, theta: torch.Tensor) -> None:
        """Make the network's parameters views of ``theta`` (a no-op when already bound to it)."""
        if self._bound is theta:
            return
        if theta.shape != (self.layout.size,) or theta.dtype != self.dtype:
            raise ValidationError("theta", f"must be a flat {self.dtype} vector of length {self.layout.size}")
        for p, view in zip(self.params, self.layout.unflatten(theta).values()):
            p.data = view
        self._bound = theta

    def grad(self, scalar: torch.Tensor) -> torch.Tensor:
        """``∇_θ scalar`` as a flat vector (one concatenation of the per-parameter gradients)."""
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(scalar, self.params)])
