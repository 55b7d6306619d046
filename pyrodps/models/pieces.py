"""Pieces a user plugs into the model, watched while the sampler runs.

A prior or likelihood class that pyrodps does not ship (a subclass in a user's own file, named as
``module:Class``) is wrapped by :func:`checked`: every call of its numeric methods runs under
:class:`~pyrodps.errors.blame`, and a floating result that is not finite although the inputs were
raises :class:`~pyrodps.errors.PieceError` naming the piece and the method. The driver turns that
into the divergence guard's error with the chain and the step, and the last good checkpoint is kept.
The pieces pyrodps ships are tested and are not wrapped (no cost on the default path).
"""

from __future__ import annotations

import torch

from pyrodps.errors import PieceError, blame

# the methods whose results feed the sampler (checked for errors and non-finite results), and those of
# a θ-block sampler (checked for errors: they move the state in place)
NUMERIC_METHODS = frozenset({"nll", "saturated_nll", "log_prob", "grad_log_prob", "log_prob_u", "grad_log_prob_u",
                             "sample_u", "log_prior", "grad_log_prior", "u", "features"})
STATE_METHODS = frozenset({"init", "update_"})


def _finite(values) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in values
               if isinstance(v, torch.Tensor) and v.is_floating_point())


class CheckedPiece:
    """A user's piece seen through its numeric methods (see the module docstring); every other
    attribute passes through. ``isinstance`` still sees the piece's class."""

    def __init__(self, piece: object, role: str) -> None:
        object.__setattr__(self, "_piece", piece)
        object.__setattr__(self, "_role", role)

    @property
    def __class__(self):  # isinstance(checked, Likelihood) keeps working
        return type(self._piece)

    def __getattr__(self, name: str):
        attr = getattr(self._piece, name)
        if name not in NUMERIC_METHODS | STATE_METHODS or not callable(attr):
            return attr
        piece, role = self._piece, self._role

        def call(*args, **kwargs):
            with blame(role, piece, name):
                out = attr(*args, **kwargs)
            if isinstance(out, torch.Tensor) and out.is_floating_point() and not bool(torch.isfinite(out).all()) \
                    and _finite((*args, *kwargs.values())):
                raise PieceError(role, piece, name, "returned a non-finite value at finite inputs")
            return out

        return call

    def __setattr__(self, name: str, value) -> None:
        setattr(self._piece, name, value)

    def __repr__(self) -> str:
        return repr(self._piece)


def checked(piece: object, role: str) -> object:
    """``piece`` itself when pyrodps ships its class, else a :class:`CheckedPiece`."""
    if type(piece).__module__.startswith("pyrodps."):
        return piece
    return CheckedPiece(piece, role)
