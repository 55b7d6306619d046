"""Kept draws with a memory budget: past it, draws are spilled to ``.npy`` chunks on disk.

A long run that keeps a large site (the whole weight table, or θ) would otherwise grow without
bound. :class:`DrawStore` writes each site's draws into preallocated blocks of rows (no Python
object per draw). Without a budget, full blocks stay in memory. With ``memory_budget`` bytes, a
block holds as many draws as fit the budget, and a full block is written as one chunk file
``{name}.{k:05d}.npy`` per site in ``spill_dir`` (temporary file, ``fsync``, rename) and freed.
:meth:`stacked` concatenates the chunks and the rows still in memory, in order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pyrodps.errors import PyrodpsError, ValidationError
from pyrodps.io import atomic_write

BLOCK_ROWS = 256  # rows per block without a budget
MAX_BLOCK_ROWS = 4096


class DrawStore:
    """Draws of named sites for one chain, in memory up to ``memory_budget`` bytes.

    Args:
        names: the sites kept; every draw appends each of them once, in this order.
        memory_budget: bytes of draws in memory before a spill; ``None`` keeps everything in memory.
        spill_dir: where chunks go (required with a budget).
    """

    def __init__(self, names: tuple[str, ...] | list[str], memory_budget: int | None = None,
                 spill_dir: str | Path | None = None) -> None:
        if memory_budget is not None:
            if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget < 1:
                raise ValidationError("memory_budget", f"must be a positive number of bytes, got {memory_budget!r}")
            if spill_dir is None:
                raise ValidationError("spill_dir", "a memory budget needs a folder to spill draws to")
        self.names = tuple(names)
        self.memory_budget = memory_budget
        self.spill_dir = None if spill_dir is None else Path(spill_dir)
        self.block_rows: int | None = None if memory_budget is not None else BLOCK_ROWS
        self.done: dict[str, list[torch.Tensor]] = {n: [] for n in self.names}  # rows in memory, in order
        self.open: dict[str, torch.Tensor | None] = {n: None for n in self.names}  # the block being filled
        self.rows = 0  # filled rows of the open blocks
        self.chunks: dict[str, list[str]] = {n: [] for n in self.names}
        self.count = 0  # draws appended in all
        self._first: dict[str, torch.Tensor] = {}

    @property
    def buffered_bytes(self) -> int:
        """Bytes of draw storage held in memory (blocks are allocated whole)."""
        tensors = [t for n in self.names for t in (*self.done[n], self.open[n]) if t is not None]
        return sum(t.element_size() * t.numel() for t in tensors)

    def append(self, name: str, value: torch.Tensor) -> None:
        """Add one draw of ``name``; a draw is complete once every name has been appended."""
        value = value.detach().cpu()
        if self.block_rows is None:  # the first draw under a budget: size the blocks from it
            self._first[name] = value
            if name == self.names[-1]:
                row_bytes = sum(v.element_size() * max(1, v.numel()) for v in self._first.values())
                self.block_rows = max(1, min(MAX_BLOCK_ROWS, self.memory_budget // row_bytes))
                first, self._first = self._first, {}
                for n in self.names:
                    self.append(n, first[n])
            return
        block = self.open[name]
        if block is None:
            block = self.open[name] = torch.empty((self.block_rows, *value.shape), dtype=value.dtype)
        block[self.rows] = value
        if name == self.names[-1]:
            self.rows += 1
            self.count += 1
            if self.rows == self.block_rows:
                self._close_blocks()

    def _close_blocks(self) -> None:
        for name in self.names:
            self.done[name].append(self.open[name][: self.rows])
            self.open[name] = None
        self.rows = 0
        if self.memory_budget is not None:
            self.spill()

    def spill(self) -> None:
        """Write every site's rows in memory as one chunk and free them."""
        if self.spill_dir is None:
            raise ValidationError("spill_dir", "no folder to spill draws to")
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            rows = self._in_memory(name)
            if rows is None:
                continue
            path = self.spill_dir / f"{name}.{len(self.chunks[name]):05d}.npy"
            atomic_write(path, lambda tmp, rows=rows: _save_npy(tmp, rows.numpy()))
            self.chunks[name].append(path.name)
            self.done[name] = []
            self.open[name] = None  # a partly filled block was written too: start a fresh one
        self.rows = 0

    def _in_memory(self, name: str) -> torch.Tensor | None:
        parts = list(self.done[name])
        if self.open[name] is not None and self.rows:
            parts.append(self.open[name][: self.rows])
        if not parts:
            return None
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def stacked(self, name: str) -> torch.Tensor:
        """All draws of ``name`` in order, shape ``(draws, ...)``."""
        parts = [torch.from_numpy(_load_chunk(self.spill_dir / c)) for c in self.chunks[name]]
        rows = self._in_memory(name)
        if rows is not None:
            parts.append(rows.clone())
        if not parts:
            return torch.empty(0)
        return torch.cat(parts)

    def state(self) -> dict:
        """What a checkpoint needs: the rows in memory and the names of the chunks written so far."""
        return {"rows": {n: self._in_memory(n) for n in self.names}, "chunks": {n: list(v) for n, v in self.chunks.items()},
                "count": self.count, "block_rows": self.block_rows, "first": dict(self._first)}

    def load_state(self, state: dict) -> None:
        """Put back what :meth:`state` returned (rows in memory become one closed block)."""
        self.chunks = {n: list(v) for n, v in state["chunks"].items()}
        self.count, self.block_rows, self._first = state["count"], state["block_rows"], dict(state["first"])
        self.done = {n: [] if state["rows"][n] is None else [state["rows"][n].clone()] for n in self.names}
        self.open = {n: None for n in self.names}
        self.rows = 0


class DrawChunkError(PyrodpsError):
    """A spilled chunk of draws is missing or corrupt."""


def _load_chunk(path: Path) -> np.ndarray:
    """A spilled chunk (numbers only: pickled objects are refused)."""
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - missing, truncated or not an array: the same to the user
        raise DrawChunkError(f"the spilled draws {path} are missing or corrupt ({type(e).__name__}: {e})") from None


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append ".npy" to a bare name
        np.save(f, array)
