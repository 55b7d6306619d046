"""Kept draws with a memory budget: past it, draws are spilled to ``.npy`` chunks on disk.

A long run that keeps a large site (the whole weight table, or θ) would otherwise grow without
bound. :class:`DrawStore` keeps draws in memory until they take ``memory_budget`` bytes, then
writes each site's buffered draws as one chunk file ``{name}.{k:05d}.npy`` in ``spill_dir`` and
starts again; :meth:`stacked` concatenates the chunks (memory-mapped) and the buffer.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from pyrodps.errors import ValidationError


class DrawStore:
    """Draws of named sites for one chain, in memory up to ``memory_budget`` bytes.

    Args:
        names: the sites kept.
        memory_budget: bytes of buffered draws before a spill; ``None`` keeps everything in memory.
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
        self.buffer: dict[str, list[torch.Tensor]] = {n: [] for n in self.names}
        self.chunks: dict[str, list[str]] = {n: [] for n in self.names}
        self.buffered_bytes = 0
        self.count = 0

    def append(self, name: str, value: torch.Tensor) -> None:
        value = value.detach().cpu()
        self.buffer[name].append(value)
        self.buffered_bytes += value.element_size() * value.numel() + 64
        if name == self.names[-1]:
            self.count += 1
            if self.memory_budget is not None and self.buffered_bytes > self.memory_budget:
                self.spill()

    def spill(self) -> None:
        """Write every site's buffered draws as one chunk and empty the buffer."""
        assert self.spill_dir is not None
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            if not self.buffer[name]:
                continue
            path = self.spill_dir / f"{name}.{len(self.chunks[name]):05d}.npy"
            tmp = path.with_suffix(".tmp.npy")
            with open(tmp, "wb") as f:
                np.save(f, torch.stack(self.buffer[name]).numpy())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            self.chunks[name].append(path.name)
            self.buffer[name] = []
        self.buffered_bytes = 0

    def stacked(self, name: str) -> torch.Tensor:
        """All draws of ``name`` in order, shape ``(draws, ...)``."""
        parts = [torch.from_numpy(np.array(np.load(self.spill_dir / c, mmap_mode="r"))) for c in self.chunks[name]]
        if self.buffer[name]:
            parts.append(torch.stack(self.buffer[name]))
        if not parts:
            return torch.empty(0)
        return torch.cat(parts)

    def state(self) -> dict:
        """What a checkpoint needs: the buffer and the names of the chunks written so far."""
        return {"buffer": {n: list(v) for n, v in self.buffer.items()}, "chunks": {n: list(v) for n, v in self.chunks.items()},
                "buffered_bytes": self.buffered_bytes, "count": self.count}

    def load_state(self, state: dict) -> None:
        self.buffer = {n: list(v) for n, v in state["buffer"].items()}
        self.chunks = {n: list(v) for n, v in state["chunks"].items()}
        self.buffered_bytes, self.count = state["buffered_bytes"], state["count"]
