"""Main networks used by the scenarios and benchmarks (any ``nn.Module`` works with the model)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from pyrodps.errors import ValidationError

if TYPE_CHECKING:
    from pyrodps.models.problem import SelectionProblem


def last_linear(net: nn.Module) -> nn.Linear:
    """The network's last ``nn.Linear`` (in module order): its input is the penultimate representation."""
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValidationError("weight_net_features", "the 'embedding' feature needs a network whose output "
                              "layer is an nn.Linear")
    return linears[-1]


def penultimate(net: nn.Module, x: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """The input of the network's last ``nn.Linear`` for inputs ``x`` (the penultimate features), by one
    forward without gradients; with ``params``, the network is run by ``torch.func.functional_call`` on them."""
    captured: list[torch.Tensor] = []
    handle = last_linear(net).register_forward_pre_hook(lambda module, args: captured.append(args[0].detach()))
    try:
        with torch.no_grad():
            if params is None:
                net(x)
            else:
                torch.func.functional_call(net, {k: v.detach() for k, v in params.items()}, (x,))
    finally:
        handle.remove()
    return captured[-1].reshape(x.shape[0], -1)


SMALL_TABLE_ROWS = 1000  # a small table: fewer training points than this ...
SMALL_TABLE_FEATURES = 32  # ... and at most this many features
SMALL_TABLE_HIDDEN: tuple[int, ...] = (16,)
DEFAULT_HIDDEN: tuple[int, ...] = (256, 256)


def default_hidden(family: str, num_train: int, num_features: int | None = None,
                   num_classes: int | None = None) -> tuple[int, ...]:
    """The MLP's hidden widths when none are given. A **small classification table** (vector inputs,
    fewer than :data:`SMALL_TABLE_ROWS` training points, at most :data:`SMALL_TABLE_FEATURES`
    features, ``num_classes`` given) gets one hidden layer of 16 units; everything else two of 256, the
    network the defaults were tuned on (digits: 64 pixel features, 1,207 points; sequences and images
    use a CNN and ignore the widths). Measured with ``benchmarks/tabular_network.py`` on iris, cars and
    wine, with breast cancer and Seattle weather held out (README: *Choosing the defaults*, and the
    *Small tabular data* table of *Results*). Regression keeps the
    wide network: there the small one helped on diabetes and hurt on Friedman #1."""
    if (family == "vector" and num_classes is not None and num_train < SMALL_TABLE_ROWS
            and num_features is not None and num_features <= SMALL_TABLE_FEATURES):
        return SMALL_TABLE_HIDDEN
    return DEFAULT_HIDDEN


def check_hidden_sizes(argument: str, hidden: object) -> tuple[int, ...]:
    """``hidden`` as a tuple of positive layer widths, else :class:`ValidationError`."""
    try:
        sizes = tuple(hidden)  # type: ignore[arg-type]
    except TypeError:
        raise ValidationError(argument, f"must be a sequence of layer widths, got {hidden!r}") from None
    for h in sizes:
        if isinstance(h, bool) or not isinstance(h, int) or h < 1:
            raise ValidationError(argument, f"layer widths must be integers >= 1, got {hidden!r}")
    return sizes


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


def small_cnn1d(in_channels: int = 1, out_features: int = 10, length: int = 40, width: int = 32) -> nn.Sequential:
    """Three 1-D conv layers (``width`` channels, kernel 5, stride 2) then a linear classifier, for
    sequences shaped ``(channels, length)`` such as MNIST-1D."""
    out_len = length
    for _ in range(3):
        out_len = (out_len + 2 * 2 - 5) // 2 + 1
    return nn.Sequential(
        nn.Conv1d(in_channels, width, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.Conv1d(width, width, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.Conv1d(width, width, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(width * out_len, out_features),
    )


def network_for(input_shape: tuple[int, ...], out_features: int, hidden: tuple[int, ...] = DEFAULT_HIDDEN) -> nn.Module:
    """The default network for inputs of one example's ``input_shape``: an MLP for vectors, a 1-D CNN
    for ``(channels, length)`` sequences, a 2-D CNN for ``(channels, height, width)`` images (square)."""
    if len(input_shape) == 1:
        return mlp(input_shape[0], out_features, hidden)
    if len(input_shape) == 2:
        return small_cnn1d(input_shape[0], out_features, input_shape[1])
    if len(input_shape) == 3 and input_shape[1] == input_shape[2]:
        return small_cnn(input_shape[0], out_features, input_shape[1])
    raise ValueError(f"no default network for inputs of shape {input_shape}; pass net=...")


def input_family(problem: SelectionProblem) -> str:
    """``"vector"``, ``"sequence"`` or ``"image"`` from the shape of one training input; ``"tokens"``
    for the token ids of a sequence problem (``vocab_size`` set)."""
    if getattr(problem, "vocab_size", None) is not None:
        return "tokens"
    return {1: "vector", 2: "sequence"}.get(problem.x_train.ndim - 1, "image")


def default_network(
    problem: SelectionProblem, hidden: tuple[int, ...], seed: int, out_features: int | None = None
) -> nn.Module:
    """The network chosen from the input shape (:func:`network_for`: MLP for vectors, small CNN for
    sequences and images; a tiny GPT-2 for token ids, :func:`~pyrodps.models.causal_lm.tiny_gpt2`),
    initialised from ``seed`` (the global torch generator is left as it was).
    ``out_features`` defaults to the problem's number of classes, or 1 for regression (the
    ``output_dim`` of :func:`~pyrodps.models.problem.default_likelihood`)."""
    if out_features is None:
        out_features = 1 if problem.num_classes is None else int(problem.num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if input_family(problem) == "tokens":  # token ids: a tiny GPT-2 (hidden is not used)
            from pyrodps.models.causal_lm import tiny_gpt2

            return tiny_gpt2(int(problem.vocab_size), int(problem.x_train.shape[1]))
        try:
            return network_for(tuple(problem.x_train.shape[1:]), out_features, hidden)
        except ValueError as e:
            raise ValidationError("x_train", str(e)) from None
