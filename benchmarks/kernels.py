"""The fused sampler kernels against the torch ways of writing the same pSGLD update.

The update (:mod:`pyrodps.sgmcmc.fused.reference`): ``V ← αV + (1-α)g²``, ``d = λ + sqrt(V)``,
``θ ← θ - (η/2) g/d + sqrt(ηT) ξ/sqrt(d)``. Any implementation must read θ, g, V and write θ, V:
20 bytes per float32 parameter. Every row reports that useful traffic divided by its time
("GB/s") and, on a GPU, its fraction of the card's peak memory bandwidth.

Variants, each on the parameters of an MLP (8 tensors) and of a ResNet-shaped network (101
tensors: conv + batch-norm layers and a classifier) of the same total size P:

* ``fused``: the Triton kernel on the flat buffer, noise made in-kernel (GPU only);
* ``fused-noise-in``: the same kernel reading a passed-in noise tensor (+4 bytes; GPU only);
* ``torch-flat``: the torch path the sampler runs off-GPU: torch ops on the flat buffer,
  ``torch.randn`` from the chain's generator;
* ``per-tensor``: the usual optimizer loop, one ``torch.randn`` per parameter tensor;
* ``foreach``: ``torch._foreach_*`` over the tensor lists, one flat noise draw split into views;
* ``compile``: ``torch.compile`` of the flat update with ``torch.randn_like`` inside (GPU only).

GPU: P = 10^6, 10^7, 10^8, and the end-to-end BADS step (fused and torch backends) over a plain
SGD step. CPU: P = 10^6 (``--cpu-params``), the GPU rows skipped with a message; it shows that the
torch path did not get slower (``torch-flat`` against the loop, and the dispatching
``langevin_update_`` against the bare torch operations it runs).

    python benchmarks/kernels.py [--out benchmarks/results/kernels.json] [--reps 30]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyrodps.app.runner import machine_description
from pyrodps.bads import BADSConfig
from pyrodps.bads.build import assemble
from pyrodps.io import write_json
from pyrodps.models import Categorical, MinibatchStream, SelectionData
from pyrodps.models.networks import mlp
from pyrodps.run import OnlineWeightStats
from pyrodps.sgmcmc import RMSprop, fused
from pyrodps.sgmcmc.fused import reference
from pyrodps.sgmcmc.integrators import langevin_step_, langevin_update_

ALPHA, EPS, ETA, TEMP = 0.99, 1e-5, 1e-4, 1.0
BYTES_PER_PARAM = 20  # float32 pSGLD: read θ, g, V; write θ, V
PEAK_GBS = {"H200": 4800.0, "H100 SXM": 3350.0, "H100 PCIe": 2000.0, "H100": 3350.0, "A100-SXM4-80GB": 2039.0,
            "A100": 1555.0, "L4": 300.0, "T4": 320.0}


# ----------------------------------------------------------------------------- parameter shapes
def mlp_numels(p: int) -> list[int]:
    """Weights and biases of a 4-layer MLP (1024 → h → h → h → 1000) with ``p`` parameters in all."""
    h = int((-(1024 + 1000 + 3) + math.sqrt((1024 + 1000 + 3) ** 2 + 8 * max(p - 1000, 1))) / 4)
    h = max(h, 4)
    numels = [1024 * h, h, h * h, h, h * h, h, h * 1000, 1000]
    numels[2] += p - sum(numels)  # make the total exact
    return numels


def resnet_numels(p: int) -> list[int]:
    """33 conv weights each with a batch-norm scale and shift, then a classifier: 101 tensors."""
    widths = [64] * 9 + [128] * 8 + [256] * 8 + [512] * 8
    base = [w * w * 9 for w in widths]
    fc = max(512, min(512 * 1000, p // 20))  # the classifier: 1000 classes, fewer for a small P
    fixed = 2 * sum(widths) + fc + fc // 512
    if p < fixed + 10 * len(base):
        raise ValueError(f"a ResNet-shaped split needs P >= {fixed + 10 * len(base)}, got {p}")
    scale = (p - fixed) / sum(base)
    numels: list[int] = []
    for w, b in zip(widths, base):
        numels += [max(1, int(b * scale)), w, w]
    numels += [fc, fc // 512]
    numels[0] += p - sum(numels)
    return numels


# ----------------------------------------------------------------------------- the variants
class Case:
    """θ, g, V (and a noise buffer) for ``p`` parameters split into ``numels`` views."""

    def __init__(self, numels: list[int], device: str) -> None:
        p = sum(numels)
        g = torch.Generator(device=device).manual_seed(0)
        self.theta = torch.randn(p, generator=g, device=device)
        self.grad = torch.randn(p, generator=g, device=device)
        self.v = torch.rand(p, generator=g, device=device)
        self.noise = torch.randn(p, generator=g, device=device)
        self.gen = g
        self.numels = numels
        split = lambda t: list(torch.split(t, numels))
        self.params, self.grads, self.vs = split(self.theta), split(self.grad), split(self.v)
        self.step = 0

    def torch_flat(self) -> None:
        noise = torch.randn(self.theta.shape, generator=self.gen, device=self.theta.device)
        reference.sgld_update_(self.theta, self.grad, noise, ETA, TEMP, self.v, ALPHA, EPS)

    def dispatching(self) -> None:
        """What the sampler calls: resolve the backend, then the update."""
        langevin_update_(self.theta, self.grad, ETA, TEMP, generator=self.gen, step=self.step,
                         preconditioner=RMSprop(ALPHA, EPS), v=self.v)

    def bare_ops(self) -> None:
        """The torch operations the sampler ran before the dispatch layer existed."""
        inv = RMSprop(ALPHA, EPS).update_(self.v, self.grad)
        noise = torch.randn(self.grad.shape, generator=self.gen, device=self.grad.device)
        langevin_step_(self.theta, self.grad, ETA, TEMP, noise, inv)

    def per_tensor(self) -> None:
        s = math.sqrt(ETA * TEMP)
        for p, g, v in zip(self.params, self.grads, self.vs):
            v.mul_(ALPHA).addcmul_(g, g, value=1 - ALPHA)
            d = v.sqrt().add_(EPS)
            p.addcdiv_(g, d, value=-0.5 * ETA)
            p.addcdiv_(torch.randn(p.shape, generator=self.gen, device=p.device), d.sqrt_(), value=s)

    def foreach(self) -> None:
        torch._foreach_mul_(self.vs, ALPHA)
        torch._foreach_addcmul_(self.vs, self.grads, self.grads, value=1 - ALPHA)
        d = torch._foreach_sqrt(self.vs)
        torch._foreach_add_(d, EPS)
        torch._foreach_addcdiv_(self.params, self.grads, d, value=-0.5 * ETA)
        noise = torch.split(torch.randn(self.theta.shape, generator=self.gen, device=self.theta.device), self.numels)
        torch._foreach_sqrt_(d)
        torch._foreach_addcdiv_(self.params, list(noise), d, value=math.sqrt(ETA * TEMP))

    def fused(self) -> None:
        fused.sgld_update_(self.theta, self.grad, step_size=ETA, temperature=TEMP, v=self.v, alpha=ALPHA, eps=EPS,
                           noise=fused.NoiseKey(0, self.step, 0), backend="triton")
        self.step += 1

    def fused_noise_in(self) -> None:
        fused.sgld_update_(self.theta, self.grad, step_size=ETA, temperature=TEMP, v=self.v, alpha=ALPHA, eps=EPS,
                           noise=self.noise, backend="triton")

    def compiled(self):
        @torch.compile(fullgraph=True, dynamic=False)
        def update(theta, grad, v):
            v.mul_(ALPHA).addcmul_(grad, grad, value=1 - ALPHA)
            d = v.sqrt() + EPS
            theta.add_(grad / d * (-0.5 * ETA) + torch.randn_like(theta) * (math.sqrt(ETA * TEMP) / d.sqrt()))

        return lambda: update(self.theta, self.grad, self.v)


def time_interleaved(fns: dict, reps: int, device: str, warmup: int = 3) -> dict[str, tuple[float, float]]:
    """Median and minimum seconds per call of each function, run in rounds of shuffled order (the
    minimum is the steadier figure on a shared CPU)."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for f in fns.values():
        for _ in range(warmup):
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    order, rng = list(fns), random.Random(0)
    for _ in range(reps):
        rng.shuffle(order)  # no variant always follows the same one (allocator and cache state)
        for name in order:
            f = fns[name]
            sync()
            t0 = time.perf_counter()
            f()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def peak_bandwidth_gbs() -> tuple[float | None, str]:
    """The card's peak memory bandwidth (GB/s): from its memory clock and bus width when torch
    reports them, else from a table of known cards."""
    props = torch.cuda.get_device_properties(0)
    clock_khz, bus_bits = getattr(props, "memory_clock_rate", 0), getattr(props, "memory_bus_width", 0)
    if clock_khz and bus_bits:
        return 2 * clock_khz * 1e3 * bus_bits / 8 / 1e9, "memory clock x bus width"
    for key, gbs in PEAK_GBS.items():
        if key in props.name:
            return gbs, "table"
    return None, "unknown"


# ----------------------------------------------------------------------------- end to end (GPU)
def bads_vs_sgd(hidden: tuple[int, ...], in_features: int, steps: int) -> dict:
    """Per-step time of a BADS step (Triton and torch backends) and of an SGD step, on the GPU."""
    g = torch.Generator().manual_seed(0)
    n, m = 20_000, 200
    data = SelectionData(torch.rand(n, in_features, generator=g), torch.randint(0, 10, (n,), generator=g),
                         torch.rand(m, in_features, generator=g), torch.randint(0, 10, (m,), generator=g))
    data = SelectionData(*(t.cuda() for t in (data.x_train, data.y_train, data.x_meta, data.y_meta)))
    out = {}

    def bads(backend):
        torch.manual_seed(0)
        # the default config with the Langevin weight block (the one with a fused Triton kernel)
        cfg = BADSConfig(weight_update="langevin", weight_step_size=0.5, batch_size=128).resolved_for("vector", n, m)
        model, kernel = assemble(mlp(in_features, 10, hidden).cuda(), Categorical(10), data, cfg, backend=backend)
        state, stream, stats = kernel.init(0), MinibatchStream(data, 128, 50, torch.Generator().manual_seed(1)), \
            OnlineWeightStats(n, "cuda")

        def step():
            nonlocal state
            state, info = kernel.step(state, stream.next(), state.step % 10 == 0)
            stats.update(info["idx"], info["w"])
        return step, model.layout.size

    def sgd():
        torch.manual_seed(0)
        net = mlp(in_features, 10, hidden).cuda()
        opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
        stream = MinibatchStream(data, 128, 50, torch.Generator().manual_seed(1))

        def step():
            b = stream.next()
            loss = F.cross_entropy(net(torch.cat((b.x_train, b.x_meta))), torch.cat((b.y_train, b.y_meta)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step

    fused_step, params = bads("triton")
    torch_step, _ = bads("torch")
    fns = {"bads-fused": fused_step, "bads-torch": torch_step, "sgd": sgd()}
    for f in fns.values():
        for _ in range(20):
            f()
    for name, f in fns.items():  # whole loops: per-step launch overhead is what matters here
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            f()
        torch.cuda.synchronize()
        out[f"{name}_ms"] = (time.perf_counter() - t0) / steps * 1e3
    out.update(params=params, hidden=list(hidden), in_features=in_features,
               ratio_fused=out["bads-fused_ms"] / out["sgd_ms"], ratio_torch=out["bads-torch_ms"] / out["sgd_ms"])
    return out


# ----------------------------------------------------------------------------- main
def bench_updates(sizes: list[int], device: str, reps: int, peak: float | None) -> list[dict]:
    rows = []
    for p in sizes:
        for net, numels in (("mlp", mlp_numels(p)), ("resnet", resnet_numels(p))):
            case = Case(numels, device)
            fns = {"torch-flat": case.torch_flat, "per-tensor": case.per_tensor, "foreach": case.foreach}
            if device == "cuda":
                fns = {"fused": case.fused, "fused-noise-in": case.fused_noise_in, **fns}
                try:
                    fns["compile"] = case.compiled()
                    fns["compile"]()
                except Exception as exc:  # noqa: BLE001 - report, do not fail the benchmark
                    fns.pop("compile")
                    print(f"torch.compile variant skipped: {type(exc).__name__}: {exc}".splitlines()[0])
            else:
                fns.update({"dispatching": case.dispatching, "bare-ops": case.bare_ops})
            times = time_interleaved(fns, reps, device)
            for name, (t, t_min) in times.items():
                gbs = BYTES_PER_PARAM * p / t / 1e9
                rows.append({"params": p, "network": net, "tensors": len(numels), "variant": name, "ms": t * 1e3,
                             "min_ms": t_min * 1e3, "gb_per_s": gbs, "fraction_of_peak": gbs / peak if peak else None,
                             "speedup_vs_per_tensor": times["per-tensor"][0] / t})
            del case
            if device == "cuda":
                torch.cuda.empty_cache()
    return rows


def print_rows(rows: list[dict], peak: float | None) -> None:
    print(f"{'params':>11} {'network':<8}{'tensors':>8} {'variant':<16}{'ms':>10}{'min ms':>10}{'GB/s':>10}"
          f"{'of peak':>9}{'vs loop':>9}")
    for r in rows:
        frac = f"{r['fraction_of_peak']:>9.2f}" if r["fraction_of_peak"] is not None else f"{'-':>9}"
        print(f"{r['params']:>11} {r['network']:<8}{r['tensors']:>8} {r['variant']:<16}{r['ms']:>10.3f}"
              f"{r['min_ms']:>10.3f}{r['gb_per_s']:>10.2f}{frac}{r['speedup_vs_per_tensor']:>8.2f}x")
    print(f"ms: median, min ms: fastest call; GB/s: {BYTES_PER_PARAM} bytes per parameter (read θ, g, V; "
          "write θ, V) over the median time; vs loop: median speed-up over the per-tensor loop"
          + (f"; peak {peak:.0f} GB/s" if peak else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/kernels.json"))
    ap.add_argument("--reps", type=int, default=30, help="timed calls per variant on the GPU")
    ap.add_argument("--cpu-reps", type=int, default=100, help="timed calls per variant on the CPU")
    ap.add_argument("--gpu-params", default="1e6,1e7,1e8", help="comma-separated P for the GPU rows")
    ap.add_argument("--cpu-params", type=float, default=1e6)
    ap.add_argument("--e2e-steps", type=int, default=300)
    args = ap.parse_args()
    machine = machine_description()
    result: dict = {"benchmark": "kernels", "bytes_per_param": BYTES_PER_PARAM, "reps": args.reps}
    if torch.cuda.is_available() and fused.triton_available():
        peak, source = peak_bandwidth_gbs()
        machine.update(gpu=torch.cuda.get_device_name(0), peak_bandwidth_gbs=peak, peak_source=source,
                       triton=__import__("triton").__version__)
        sizes = [int(float(s)) for s in args.gpu_params.split(",")]
        rows = bench_updates(sizes, "cuda", args.reps, peak)
        print_rows(rows, peak)
        e2e = [dict(case="digits-mlp-default", **bads_vs_sgd((256, 256), 64, args.e2e_steps)),
               dict(case="wide-mlp", **bads_vs_sgd((2048, 2048, 2048), 3072, args.e2e_steps))]
        print(f"{'end to end':<20}{'params':>10}{'bads fused ms':>15}{'bads torch ms':>15}{'sgd ms':>9}"
              f"{'fused/sgd':>11}{'torch/sgd':>11}")
        for r in e2e:
            print(f"{r['case']:<20}{r['params']:>10}{r['bads-fused_ms']:>15.3f}{r['bads-torch_ms']:>15.3f}"
                  f"{r['sgd_ms']:>9.3f}{r['ratio_fused']:>11.3f}{r['ratio_torch']:>11.3f}")
        result.update(gpu_rows=rows, end_to_end=e2e)
    else:
        why = "no CUDA device" if not torch.cuda.is_available() else "Triton is not installed"
        msg = (f"{why}: GPU rows skipped (fused Triton kernel bandwidth for 1e6-1e8 parameters, torch.compile, "
               "end-to-end BADS/SGD step ratio); run this script on a GPU machine for them")
        print(msg)
        result["gpu_skipped"] = msg
    rows = bench_updates([int(args.cpu_params)], "cpu", args.cpu_reps, None)
    print(f"CPU ({torch.get_num_threads()} torch threads): the torch path")
    print_rows(rows, None)
    by = {(r["network"], r["variant"]): (r["ms"], r["min_ms"]) for r in rows}
    summary = {}
    for net in ("mlp", "resnet"):

        def ratio(a: str, b: str, k: int, net: str = net) -> float:
            return by[(net, a)][k] / by[(net, b)][k]

        summary[net] = {"flat_over_loop_median": ratio("torch-flat", "per-tensor", 0),
                        "flat_over_loop_min": ratio("torch-flat", "per-tensor", 1),
                        "dispatching_over_bare_median": ratio("dispatching", "bare-ops", 0),
                        "dispatching_over_bare_min": ratio("dispatching", "bare-ops", 1)}
        print(f"{net}: torch-flat / per-tensor = {summary[net]['flat_over_loop_median']:.3f} (median), "
              f"{summary[net]['flat_over_loop_min']:.3f} (min); dispatching / bare ops = "
              f"{summary[net]['dispatching_over_bare_median']:.3f} (median), "
              f"{summary[net]['dispatching_over_bare_min']:.3f} (min)")
    result["cpu_summary"] = summary
    result.update(machine=machine, cpu_rows=rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
