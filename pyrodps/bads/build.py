"""One assembly of a BADS run: the resolved config, the model, the kernel and the batch stream.

:func:`build` is what :func:`~pyrodps.bads.fit.fit_bads`, the command line and the benchmarks use;
:func:`assemble` is its lower half for callers that bring their own tensors (a benchmark's synthetic
data), from a config already resolved with :meth:`BADSConfig.resolved_for`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pyrodps.bads.config import BADSConfig, make_sampler
from pyrodps.bads.kernel import BADSKernel
from pyrodps.errors import ValidationError
from pyrodps.models import BADSModel, MinibatchStream, SelectionData
from pyrodps.models.data import check_batch_sizes
from pyrodps.models.likelihoods import Likelihood, make_likelihood
from pyrodps.models.networks import default_network, input_family, last_linear
from pyrodps.models.priors import make_theta_prior, make_weight_prior
from pyrodps.models.problem import SelectionProblem, default_likelihood
from pyrodps.models.sequence_problem import input_dtype
from pyrodps.models.weight_net import WeightNet
from pyrodps.sgmcmc import PolynomialDecay


@dataclass
class BADSSetup:
    """Everything :func:`build` made: ``config`` (resolved), ``model``, ``kernel``, ``data`` and
    :meth:`batches`, the stream factory the driver calls per chain."""

    config: BADSConfig
    model: BADSModel
    kernel: BADSKernel
    data: SelectionData

    def batches(self, generator: torch.Generator) -> MinibatchStream:
        return MinibatchStream(self.data, self.config.batch_size, self.config.meta_batch_size, generator)


def problem_likelihood(problem: SelectionProblem, config: BADSConfig) -> Likelihood:
    """The likelihood ``config`` names, else the problem's default; its targets are checked."""
    if config.likelihood is None:
        return default_likelihood(problem)
    return make_likelihood(config.likelihood, num_classes=problem.num_classes, **config.likelihood_kwargs)


def to_selection_data(problem: SelectionProblem, likelihood: Likelihood, device: torch.device | str = "cpu") -> SelectionData:
    """Tensors of the train and meta sets (inputs as float32, or ``long`` token ids for a sequence
    problem; targets as the likelihood takes them, checked by it)."""
    dtype = input_dtype(problem)
    x = lambda a: torch.as_tensor(a, dtype=dtype, device=device)
    y_train, y_meta = likelihood.targets(problem.y_train, device), likelihood.targets(problem.y_meta, device)
    likelihood.check_targets(y_train, "y_train")
    likelihood.check_targets(y_meta, "y_meta")
    return SelectionData(x(problem.x_train), y_train, x(problem.x_meta), y_meta)


def build(problem: SelectionProblem, config: BADSConfig | None = None, *, seed: int = 0, net: nn.Module | None = None,
          path: str = "fused", device: torch.device | str = "cpu") -> BADSSetup:
    """Resolve ``config`` for ``problem`` (once) and assemble model, kernel and data.

    The network is ``net`` or the default for the input shape (:func:`~pyrodps.models.networks.default_network`,
    seeded by ``seed``; chain ``k > 0`` starts from the default network seeded ``1000 seed + k``)."""
    config = config or BADSConfig()
    config = config.resolved_for(input_family(problem), problem.num_train, int(problem.x_meta.shape[0]),
                                 problem.num_features, problem.num_classes)
    likelihood = problem_likelihood(problem, config)
    data = to_selection_data(problem, likelihood, device)
    check_batch_sizes(data, config.batch_size, config.meta_batch_size)
    out_features = likelihood.output_dim(data.y_train)
    main_net = net if net is not None else default_network(problem, config.hidden, seed, out_features)
    main_net = main_net.to(device)
    weight_net = None
    if config.weights in ("network", "product") and problem.task == "sequence" and "label" in config.weight_net_features:
        raise ValidationError("weight_net_features", "the 'label' feature needs one label per point, and a sequence "
                              "problem's targets are token sequences: use ('loss',) or ('group',)")
    if config.weights in ("network", "product"):
        groups = problem.weight_groups if problem.weight_groups is not None else (
            problem.y_train if problem.num_classes is not None else None)  # grouped weights: by class by default
        weight_net = WeightNet(tuple(problem.x_train.shape[1:]), problem.num_classes,
                               features=config.weight_net_features, hidden=config.weight_net_hidden,
                               rho_phi=config.rho_phi, seed=seed,
                               groups=None if groups is None or "group" not in config.weight_net_features
                               else torch.as_tensor(np.asarray(groups, dtype=np.int64), device=device),
                               embedding_dim=last_linear(main_net).in_features
                               if "embedding" in config.weight_net_features else None)

    model_ref: list[BADSModel] = []

    def init_theta(chain: int) -> torch.Tensor:
        model = model_ref[0]
        if chain == 0 or net is not None:
            return model.initial_theta()
        return model.layout.flatten(default_network(problem, config.hidden, seed * 1000 + chain, out_features).to(device))

    model, kernel = assemble(main_net, likelihood, data, config, weight_net=weight_net, init_theta=init_theta, path=path)
    model_ref.append(model)
    return BADSSetup(config, model, kernel, data)


def assemble(net: nn.Module, likelihood: Likelihood, data: SelectionData, config: BADSConfig, *,
             weight_net: WeightNet | None = None, init_theta: Callable[[int], torch.Tensor] | None = None,
             path: str = "fused", backend: str | None = None) -> tuple[BADSModel, BADSKernel]:
    """The model and kernel of a **resolved** ``config`` for ``net`` on ``data`` (``backend``: of the
    fused updates, :class:`~pyrodps.bads.kernel.BADSKernel`)."""
    if not config.is_resolved:
        raise ValidationError("config", "assemble() needs a resolved config (BADSConfig.resolved_for)")
    model = BADSModel(
        net,
        likelihood,
        data.num_train,
        data.num_meta,
        theta_prior=make_theta_prior(config.theta_prior, rho_theta=config.rho_theta, num_train=data.num_train,
                                     **config.theta_prior_kwargs),
        weight_prior=make_weight_prior(config.weight_prior, **config.weight_prior_kwargs),
        rho_theta=config.rho_theta,
        rho_meta=config.rho_meta,
        log_z=config.log_z,
        loss_reference=config.loss_reference,
        weight_net=weight_net,
        product=config.weights == "product",
    )
    step = (
        PolynomialDecay(config.step_size * 100**config.step_decay_gamma, 100.0, config.step_decay_gamma)
        if config.step_decay_gamma
        else config.step_size
    )
    kernel = BADSKernel(
        model,
        step_size=step,
        weight_step_size=config.weight_step_size,
        weight_update=config.weight_update,
        temperature=config.temperature,
        sampler=make_sampler(config.sampler, **config.sampler_kwargs),
        clip_norm=config.clip_norm,
        init_theta=init_theta,
        path=path,
        backend=backend,
        companion_window=config.companion_window,
        companion_step_size=config.companion_step_size,
        companion_temperature=config.companion_temperature,
    )
    return model, kernel
