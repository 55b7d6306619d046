"""Observers of a run: what accumulates along the chains besides the kept draws.

The driver (:func:`pyrodps.run.driver.sample`) owns chains, burn-in, thinning and progress; anything
else a run accumulates (online statistics of the weights, a posterior-predictive sum, per-draw
diagnostics) is an observer. An observer is told when a chain starts and sees every step after the
kernel moved and the divergence guard passed it. Its whole state (all chains so far) goes into every
checkpoint through ``state_dict`` / ``load_state_dict``, and the guard's back-off rewinds it with the
chain, so a resumed or backed-off run continues exactly.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Observer(Protocol):
    """Watches the chains of one run."""

    def begin_chain(self, chain: int) -> None:
        """Chain ``chain`` starts from scratch (not called for a chain resumed from a checkpoint)."""

    def observe(self, chain: int, t: int, state: object, info: dict[str, torch.Tensor], kept: bool) -> None:
        """Step ``t`` of chain ``chain`` moved the kernel to ``state`` with ``info``; ``kept`` says the
        driver keeps this step as a draw (the step's diagnostics are then in ``info``)."""

    def state_dict(self) -> dict:
        """Everything accumulated so far, as tensors, numbers, lists and dicts."""

    def load_state_dict(self, state: dict) -> None:
        """Put back what :meth:`state_dict` returned."""


class Callback:
    """The simplest observer: ``fn(chain, state, info)`` at every kept draw; it has no state to save."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def begin_chain(self, chain: int) -> None:
        pass

    def observe(self, chain: int, t: int, state: object, info: dict[str, torch.Tensor], kept: bool) -> None:
        if kept:
            self.fn(chain, state, info)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
