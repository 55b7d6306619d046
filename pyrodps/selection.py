"""Compatibility: ``pyrodps.selection`` before the restructuring (issue #12). :class:`BADSConfig`,
:class:`BADSFit` and :func:`fit_bads` now live in :mod:`pyrodps.bads` (and at the top level)."""

from pyrodps.bads import BADSConfig, BADSFit, fit_bads

__all__ = ["BADSConfig", "BADSFit", "fit_bads"]
