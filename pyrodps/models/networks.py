"""Main networks used by the scenarios and benchmarks (any ``nn.Module`` works with the model)."""

from __future__ import annotations

from torch import nn


def mlp(in_features: int, out_features: int, hidden: tuple[int, ...] = (128,)) -> nn.Sequential:
    """A ReLU multilayer perceptron ``in -> hidden... -> out``."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def small_cnn(in_channels: int = 1, out_features: int = 10, side: int = 28) -> nn.Sequential:
    """Two 3x3 conv layers (16, 32 channels) with 2x2 max-pooling, then a linear classifier."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * (side // 4) ** 2, out_features),
    )
