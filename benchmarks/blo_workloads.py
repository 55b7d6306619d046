"""Workloads of the BLO-versus-BADS timing benchmark: the networks and data, one optimisation step
of each method on them, and the measuring worker (one process per (network, method), see
``benchmarks/blo_vs_bads.py``)."""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyrodps.bads import BADSConfig
from pyrodps.bads.build import assemble
from pyrodps.baselines.blo import BLOConfig
from pyrodps.baselines.l2rw import L2RWConfig, l2rw_step
from pyrodps.baselines.mwn import MWNConfig, mwn_step, weight_network
from pyrodps.models import (
    MinibatchStream,
    SelectionData,
)
from pyrodps.models.data import Batch
from pyrodps.models.likelihoods import Categorical
from pyrodps.models.resnet import small_resnet

NETWORKS = ("digits-mlp", "mnist1d-cnn", "resnet")
TIMING_METHODS = ("sgd", "bads", "l2rw", "mwn")
BATCH_SIZE = 128
META_BATCH_SIZE = 128
RESNET_TRAIN_POINTS = 1024
RESNET_META_POINTS = 128
MIB = 2**20


# ---------------------------------------------------------------------------------------------- networks
@dataclass
class Workload:
    """A network with its data, batch sizes, learning rate and BADS defaults, on one device."""

    network: str
    net: nn.Module
    data: SelectionData
    num_classes: int
    input_family: str  # key of TUNED_DEFAULTS
    lr: float
    label: str  # a short name of the network for tables
    description: str
    synthetic_inputs: bool

    @property
    def batch_size(self) -> int:
        return min(BATCH_SIZE, self.data.num_train)

    @property
    def meta_batch_size(self) -> int:
        return min(META_BATCH_SIZE, self.data.num_meta)


def _problem_data(scenario: str, device: str) -> tuple[SelectionData, int, object]:
    from pyrodps.bads.build import to_selection_data
    from pyrodps.data import make_scenario
    from pyrodps.models.problem import default_likelihood

    problem = make_scenario(scenario, seed=0)
    return to_selection_data(problem, default_likelihood(problem), device), problem.num_classes, problem


def build_workload(network: str, device: str, seed: int = 0, resnet_widths: tuple[int, int, int] = (16, 32, 64),
                   resnet_blocks: int = 1) -> Workload:
    """The network ``network`` (one of :data:`NETWORKS`), initialised from ``seed``, and its data on ``device``."""
    from pyrodps.models.networks import DEFAULT_HIDDEN, default_network, input_family

    torch.manual_seed(seed)
    if network in ("digits-mlp", "mnist1d-cnn"):
        scenario = "digits-label-noise" if network == "digits-mlp" else "mnist1d-label-noise"
        data, classes, problem = _problem_data(scenario, device)
        net = default_network(problem, DEFAULT_HIDDEN, seed).to(device)
        family = input_family(problem)
        label = "MLP 64-256-256-10" if network == "digits-mlp" else "1-D CNN (small_cnn1d)"
        return Workload(network, net, data, classes, family, _blo_lr(family), label,
                        f"the default {label} on {scenario} (real data, seed 0)", False)
    if network == "resnet":
        g = torch.Generator().manual_seed(seed)
        n, m, classes = RESNET_TRAIN_POINTS, RESNET_META_POINTS, 10
        data = SelectionData(
            torch.randn(n, 3, 32, 32, generator=g).to(device), torch.randint(0, classes, (n,), generator=g).to(device),
            torch.randn(m, 3, 32, 32, generator=g).to(device), torch.randint(0, classes, (m,), generator=g).to(device),
        )
        net = small_resnet(3, classes, resnet_widths, resnet_blocks).to(device)
        label = f"ResNet-{6 * resnet_blocks + 2} {'-'.join(map(str, resnet_widths))}, GroupNorm"
        what = (f"{label}, on synthetic 3x32x32 inputs with random labels among {classes} classes (N={n}, M={m}): "
                "only the cost is measured")
        return Workload(network, net, data, classes, "image", _blo_lr("image"), label, what, True)
    raise ValueError(f"unknown network {network!r}; choose from {', '.join(NETWORKS)}")


def _blo_lr(family: str) -> float:
    """The momentum-SGD learning rate :meth:`BLOConfig.resolved` picks for the input kind."""
    return 0.003 if family == "vector" else 0.01


# ---------------------------------------------------------------------------------------------- steppers
StepFn = Callable[[Batch], None]


def sgd_stepper(w: Workload) -> StepFn:
    """Momentum SGD on the mean cross-entropy of the train and meta batch together."""
    cfg = BLOConfig()
    opt = torch.optim.SGD(w.net.parameters(), lr=w.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    def step(b: Batch) -> None:
        loss = F.cross_entropy(w.net(torch.cat((b.x_train, b.x_meta))), torch.cat((b.y_train, b.y_meta)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def bads_stepper(w: Workload, seed: int = 0) -> StepFn:
    """The default BADS kernel (as :func:`pyrodps.fit_bads` builds it), one ``kernel.step`` per call."""
    cfg = BADSConfig().resolved_for(w.input_family, w.data.num_train, w.data.num_meta)
    _, kernel = assemble(w.net, Categorical(w.num_classes), w.data, cfg)
    state = kernel.init(seed)

    def step(b: Batch) -> None:
        kernel.step(state, b, diagnostics=False)  # updates state in place

    return step


def l2rw_stepper(w: Workload) -> StepFn:
    """:func:`l2rw_step` with the :class:`L2RWConfig` defaults and the momentum SGD of ``train_blo``."""
    cfg = L2RWConfig()
    opt = torch.optim.SGD(w.net.parameters(), lr=w.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    def step(b: Batch) -> None:
        l2rw_step(w.net, opt, b.x_train, b.y_train, b.x_meta, b.y_meta, cfg.lookahead_lr, cfg.lookahead_reduction)

    return step


def mwn_stepper(w: Workload, seed: int = 0) -> StepFn:
    """:func:`mwn_step` with the :class:`MWNConfig` defaults (weight network, Adam, virtual lr = lr)."""
    cfg = MWNConfig()
    opt = torch.optim.SGD(w.net.parameters(), lr=w.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    vnet = weight_network(cfg.weight_net_hidden, seed).to(w.data.x_train.device)
    vopt = torch.optim.Adam(vnet.parameters(), lr=cfg.weight_net_lr, weight_decay=cfg.weight_net_weight_decay)
    virtual_lr = cfg.virtual_lr if cfg.virtual_lr is not None else w.lr

    def step(b: Batch) -> None:
        mwn_step(w.net, opt, vnet, vopt, b.x_train, b.y_train, b.x_meta, b.y_meta, virtual_lr, cfg.weight_normalisation)

    return step


def make_stepper(method: str, w: Workload, seed: int = 0) -> StepFn:
    if method == "sgd":
        return sgd_stepper(w)
    if method == "bads":
        return bads_stepper(w, seed)
    if method == "l2rw":
        return l2rw_stepper(w)
    if method == "mwn":
        return mwn_stepper(w, seed)
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(TIMING_METHODS)}")


# ---------------------------------------------------------------------------------------------- memory
def _kib_to_mib(kib: float) -> float:
    return kib / 1024.0


def max_rss_mib() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in MiB (KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else _kib_to_mib(peak)


def current_rss_mib() -> float | None:
    """The resident set size now (``/proc/self/statm``), or ``None`` where there is no procfs."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / MIB


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (Linux >= 4.0: write 5 to ``/proc/self/clear_refs``), so
    that ``ru_maxrss`` afterwards is the peak since now. ``False`` where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    rss = current_rss_mib()
    return rss is not None and max_rss_mib() <= rss + 1.0  # the reset took effect


# ---------------------------------------------------------------------------------------------- worker
def run_worker(network: str, method: str, device: str, warmup: int, steps: int, seed: int = 0,
               resnet_widths: tuple[int, int, int] = (16, 32, 64), resnet_blocks: int = 1) -> dict:
    """Build the workload and the method's stepper, then time ``warmup + steps`` steps and record the
    peak memory since just before the first (see the module docstring). Run it in a fresh process."""
    cuda = device.startswith("cuda")
    w = build_workload(network, device, seed, resnet_widths, resnet_blocks)
    stepper = make_stepper(method, w, seed)
    stream = MinibatchStream(w.data, w.batch_size, w.meta_batch_size, torch.Generator().manual_seed(seed + 1))
    # one step on a 2-point batch first: lazy imports and one-off initialisations (torch.func,
    # optimizer internals, BLAS handles) land in the footprint before the steps, not in their growth
    device_of = w.data.x_train.device
    stepper(Batch.gather(w.data, torch.arange(2, device=device_of), torch.arange(min(2, w.data.num_meta), device=device_of)))
    setup_peak_rss = max_rss_mib()
    if cuda:
        torch.cuda.synchronize()
        cuda_before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    rss_before = current_rss_mib()
    peak_was_reset = reset_peak_rss()
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        stepper(stream.next())
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    peak_rss = max_rss_mib()
    finite = all(bool(torch.isfinite(p).all()) for p in w.net.parameters())
    ms = sorted(t * 1e3 for t in times)
    record = {
        "network": network,
        "method": method,
        "device": device,
        "label": w.label,
        "description": w.description,
        "synthetic_inputs": w.synthetic_inputs,
        "num_params": sum(p.numel() for p in w.net.parameters()),
        "num_train": w.data.num_train,
        "num_meta": w.data.num_meta,
        "batch_size": w.batch_size,
        "meta_batch_size": w.meta_batch_size,
        "lr": w.lr,
        "warmup_steps": warmup,
        "timed_steps": steps,
        "median_ms": statistics.median(ms),
        "mean_ms": statistics.fmean(ms),
        "p10_ms": ms[int(0.1 * (len(ms) - 1))],
        "p90_ms": ms[int(0.9 * (len(ms) - 1))],
        "min_ms": ms[0],
        "setup_peak_rss_mib": setup_peak_rss,
        "rss_before_steps_mib": rss_before,
        "peak_rss_reset": peak_was_reset,
        "peak_rss_mib": peak_rss,
        "peak_rss_growth_mib": None if rss_before is None else max(0.0, peak_rss - rss_before),
        "parameters_finite_after": finite,
        "torch_threads": torch.get_num_threads(),
    }
    if cuda:
        peak = torch.cuda.max_memory_allocated()
        record.update({
            "cuda_device": torch.cuda.get_device_name(),
            "cuda_allocated_before_steps_mib": cuda_before / MIB,
            "cuda_peak_allocated_mib": peak / MIB,
            "cuda_peak_growth_mib": (peak - cuda_before) / MIB,
        })
    return record
