"""A small residual network for 2-D images, sized so that activations, not parameters, dominate memory.

``small_resnet()`` is a ResNet-8 in the CIFAR layout (He et al. 2016, section 4.2): a 3x3 stem
convolution, three stages of basic residual blocks (two 3x3 convolutions each) of ``widths``
channels, the second and third stage halving the resolution, global average pooling and a linear
classifier. Normalisation is GroupNorm (or none): it has no running-statistics buffers, so the
network is a pure function of its parameters, which is what :class:`~pyrodps.models.BADSModel`
(one flat θ) and the ``torch.func`` lookahead of the bi-level baselines need. Used by
``benchmarks/blo_vs_bads.py`` to measure step cost and memory.
"""

from __future__ import annotations

import torch
from torch import nn

from pyrodps.errors import ValidationError, check_choice

NORMS = ("group", "none")


def _norm(kind: str, channels: int, groups: int) -> nn.Module:
    return nn.GroupNorm(min(groups, channels), channels) if kind == "group" else nn.Identity()


class BasicBlock(nn.Module):
    """``relu(x' + F(x))`` with ``F`` = conv3x3 - norm - relu - conv3x3 - norm, and ``x'`` the input
    (or a strided 1x1 convolution of it when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=norm == "none")
        self.norm1 = _norm(norm, out_channels, groups)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=norm == "none")
        self.norm2 = _norm(norm, out_channels, groups)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.shortcut(x) + self.norm2(self.conv2(h)))


def small_resnet(
    in_channels: int = 3,
    out_features: int = 10,
    widths: tuple[int, int, int] = (16, 32, 64),
    blocks_per_stage: int = 1,
    norm: str = "group",
    groups: int = 8,
) -> nn.Sequential:
    """A CIFAR-style ResNet with ``6 * blocks_per_stage + 2`` weight layers (ResNet-8 by default;
    ``blocks_per_stage=2`` gives ResNet-14), stage widths ``widths``, GroupNorm with ``groups``
    groups (``norm="none"``: no normalisation, biases on the convolutions instead)."""
    check_choice("norm", norm, NORMS)
    if len(widths) != 3 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ValidationError("widths", f"must be three channel counts >= 1, got {widths!r}")
    if isinstance(blocks_per_stage, bool) or not isinstance(blocks_per_stage, int) or blocks_per_stage < 1:
        raise ValidationError("blocks_per_stage", f"must be an integer >= 1, got {blocks_per_stage!r}")
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=norm == "none"),
        _norm(norm, widths[0], groups),
        nn.ReLU(),
    ]
    width = widths[0]
    for stage, out in enumerate(widths):
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(width, out, stride, norm, groups))
            width = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, out_features)]
    return nn.Sequential(*layers)
