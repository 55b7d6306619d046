"""Amortised weights: ``w_i = sigmoid(g_φ(h_i))`` with a small network ``g_φ`` and a prior on φ.

``h_i`` concatenates the features named in ``features``: ``"input"`` (the flattened input x_i),
``"label"`` (one-hot y_i for classification, y_i itself for regression), ``"group"`` (one-hot of the
point's weight group ``g(i)``, e.g. its source data set), ``"embedding"`` (the main network's
penultimate features of x_i at the current θ: the input of its last ``nn.Linear``; one extra forward
of the train batch per step) and ``"loss"`` (the current per-example loss ``l_i(θ)``); the loss and the
embedding are held constant when differentiating. ``g_φ`` is ``Linear(F, H) - tanh - Linear(H, 1)``,
or with ``hidden=0`` the linear map ``φ · h_i`` (no bias); the prior is ``φ ~ N(0, I / ρ_φ)``.

**Grouped weights** are the linear map on one-hot features: with ``features=("label",)`` and
``hidden=0``, ``u_i = φ_{y_i}``, one latent per class; with ``("group",)``, ``u_i = φ_{g(i)}``, one
per group. A group latent collects the evidence of all its points at every step, where a table entry
sees only its own point once per epoch. In the BADS model the amortised
``u_i = g_φ(h_i)`` replaces the table entry, and the weight prior ``log p_u(u_i)`` stays in the
density as a regulariser of the amortised weights ([choice], documented in the model). φ is shared by
all points, so its gradient carries the N/B scale like θ.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from pyrodps.errors import ValidationError, check_positive, check_positive_int
from pyrodps.models.layout import ParamLayout

WEIGHT_NET_FEATURES = ("input", "label", "group", "embedding", "loss")


class WeightNet:
    """The weight network ``g_φ`` and its prior.

    Args:
        input_shape: shape of one input x_i.
        num_classes: number of classes, or ``None`` for regression targets.
        features: which of ``"input"``, ``"label"``, ``"group"``, ``"loss"`` make up ``h_i``.
        hidden: width ``H`` of the hidden layer; 0 for the linear map ``φ · h_i``.
        groups: the weight group of every training point (length N, integers ``0..G-1``), needed by
            the ``"group"`` feature.
        embedding_dim: width of the main network's penultimate features (the ``"embedding"`` feature).
        rho_phi: prior precision ``ρ_φ`` of φ.
        seed: initialisation of φ.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int | None,
        *,
        features: tuple[str, ...] = ("loss", "label"),
        hidden: int = 16,
        rho_phi: float = 1.0,
        seed: int = 0,
        groups: torch.Tensor | None = None,
        embedding_dim: int | None = None,
    ) -> None:
        if not features:
            raise ValidationError("weight_net_features", "name at least one feature")
        for f in features:
            if f not in WEIGHT_NET_FEATURES:
                raise ValidationError("weight_net_features", f"unknown feature {f!r}; choose from {', '.join(WEIGHT_NET_FEATURES)}")
        if len(set(features)) != len(features):
            raise ValidationError("weight_net_features", f"names a feature twice: {tuple(features)!r}")
        self.features_used = tuple(features)
        self.num_classes = num_classes
        self.hidden = check_positive_int("weight_net_hidden", hidden, minimum=0)
        self.rho_phi = check_positive("rho_phi", rho_phi)
        self.groups = None
        if "group" in self.features_used:
            if groups is None:
                raise ValidationError("weight_net_features", "the 'group' feature needs the weight group of every "
                                      "training point (weight_groups)")
            self.groups = torch.as_tensor(groups, dtype=torch.long)
            if self.groups.ndim != 1 or (self.groups.numel() and self.groups.min() < 0):
                raise ValidationError("weight_groups", "must be a 1-D array of non-negative integers")
        self.num_groups = 0 if self.groups is None else int(self.groups.max()) + 1
        if "embedding" in self.features_used and not embedding_dim:
            raise ValidationError("weight_net_features", "the 'embedding' feature needs the width of the main "
                                  "network's penultimate features (embedding_dim)")
        dims = {"input": math.prod(input_shape), "label": num_classes or 1, "group": self.num_groups,
                "embedding": embedding_dim or 0, "loss": 1}
        self.feature_dim = sum(dims[f] for f in self.features_used)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if self.hidden == 0:  # grouped weights: u_i = φ · h_i, started at the prior's centre
                self.net = nn.Sequential(nn.Linear(self.feature_dim, 1, bias=False))
                nn.init.zeros_(self.net[0].weight)
            else:
                self.net = nn.Sequential(nn.Linear(self.feature_dim, self.hidden), nn.Tanh(), nn.Linear(self.hidden, 1))
        self.layout = ParamLayout.from_module(self.net)
        self._phi0 = self.layout.flatten(self.net).clone()

    def initial_phi(self) -> torch.Tensor:
        return self._phi0.clone()

    @property
    def needs_embedding(self) -> bool:
        return "embedding" in self.features_used

    def features(self, x: torch.Tensor, y: torch.Tensor, nll: torch.Tensor, idx: torch.Tensor | None = None,
                 embedding: torch.Tensor | None = None) -> torch.Tensor:
        """``h_i`` for a batch of training points ``idx`` (``nll`` and ``embedding`` are treated as
        constants; ``idx`` is needed by the ``"group"`` feature, ``embedding`` by ``"embedding"``). Token-id
        inputs give float features (the dtype of ``nll``)."""
        parts = []
        dtype = x.dtype if x.dtype.is_floating_point else nll.dtype
        x = x.to(dtype)
        for f in self.features_used:
            if f == "input":
                parts.append(x.reshape(x.shape[0], -1))
            elif f == "label":
                parts.append(F.one_hot(y, self.num_classes).to(x.dtype) if self.num_classes else y.reshape(-1, 1).to(x.dtype))
            elif f == "group":
                if idx is None:
                    raise ValidationError("idx", "the 'group' feature needs the indices of the training points")
                g = self.groups.to(idx.device).index_select(0, idx)
                parts.append(F.one_hot(g, self.num_groups).to(x.dtype))
            elif f == "embedding":
                if embedding is None:
                    raise ValidationError("embedding", "the 'embedding' feature needs the penultimate features")
                parts.append(embedding.detach().reshape(x.shape[0], -1).to(x.dtype))
            else:
                parts.append(nll.detach().reshape(-1, 1).to(x.dtype))
        return torch.cat(parts, dim=1)

    def u(self, phi: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``u_i = g_φ(h_i)`` (the weights are ``sigmoid(u)``)."""
        return functional_call(self.net, self.layout.unflatten(phi), (h,)).squeeze(-1)

    def prior(self) -> dist.Distribution:
        """``N(0, I / ρ_φ)`` over flat φ."""
        return dist.Normal(0.0, self.rho_phi**-0.5).expand([self.layout.size]).to_event(1)

    def log_prior(self, phi: torch.Tensor) -> torch.Tensor:
        return -0.5 * self.rho_phi * phi.square().sum() + 0.5 * phi.numel() * math.log(self.rho_phi / (2 * math.pi))

    def grad_log_prior(self, phi: torch.Tensor) -> torch.Tensor:
        return phi * (-self.rho_phi)
