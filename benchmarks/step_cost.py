"""What a BADS step costs next to a plain SGD step on the same train+meta batch and network.

Rows (CPU, median per-step wall time over >= 200 steps, methods interleaved in rounds so that
drift of the machine hits both alike):

* ``digits-mlp-128`` and ``digits-mlp-default``: a 64-128-10 MLP and the default digits network
  (64-256-256-10), train batch 128 + the 50-point meta set; the default pSGLD sampler, plain SGLD
  (``-sgld``) and the Pyro-trace gradient against the fused one (``-pyro``).
* ``small-cnn``: 28x28 inputs, two conv layers, train batch 128 + meta batch 32 (and ``-pyro``).
* ``table-1e6``: the default-network BADS step with N = 10^6 table weights against N = 10^4.

A BADS step is one driver iteration: gather the batch, ``BADSKernel.step`` (joint θ/w SGLD; scalar
diagnostics every 10th step, as the driver does with ``thin=10``), update the online weight
statistics. An SGD step: gather the same batch, forward, backward, momentum-SGD.

    python benchmarks/step_cost.py [--steps 300] [--out benchmarks/results/step_cost.json]
"""

from __future__ import annotations

import argparse
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
from pyrodps.models import MinibatchStream, SelectionData
from pyrodps.models.likelihoods import Categorical
from pyrodps.models.networks import DEFAULT_HIDDEN, input_family, mlp, small_cnn
from pyrodps.run import OnlineWeightStats


def make_data(n: int, m: int, shape: tuple[int, ...], classes: int = 10) -> SelectionData:
    g = torch.Generator().manual_seed(0)
    return SelectionData(
        torch.rand(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g),
        torch.rand(m, *shape, generator=g), torch.randint(0, classes, (m,), generator=g),
    )


class BADSStepper:
    """The default sampler of :class:`pyrodps.BADSConfig` (pSGLD unless ``psgld=False``)."""

    def __init__(self, net, data: SelectionData, batch: int, meta_batch: int, path: str = "fused", psgld: bool = True) -> None:
        cfg = BADSConfig(sampler="psgld" if psgld else "sgld", batch_size=batch).resolved_for(
            input_family(data), data.num_train, data.num_meta)
        _, self.kernel = assemble(net, Categorical(10), data, cfg, path=path)
        self.state = self.kernel.init(0)
        self.stream = MinibatchStream(data, batch, meta_batch, torch.Generator().manual_seed(1))
        self.stats = OnlineWeightStats(data.num_train)
        self.t = 0

    def step(self) -> None:
        # as the driver does with thin=10: scalar diagnostics only at kept steps
        self.state, info = self.kernel.step(self.state, self.stream.next(), self.t % 10 == 0)
        self.stats.update(info["idx"], info["w"])
        self.t += 1


class SGDStepper:
    def __init__(self, net, data: SelectionData, batch: int, meta_batch: int) -> None:
        self.net = net
        self.opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
        self.stream = MinibatchStream(data, batch, meta_batch, torch.Generator().manual_seed(1))

    def step(self) -> None:
        b = self.stream.next()
        loss = F.cross_entropy(self.net(torch.cat((b.x_train, b.x_meta))), torch.cat((b.y_train, b.y_meta)))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def noise_ms(params: int, reps: int = 200) -> float:
    """Median milliseconds of ``torch.randn(params)`` with a seeded generator."""
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.randn(params, generator=g)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def interleaved_medians(steppers: dict, steps: int, rounds: int = 10, warmup: int = 20) -> dict[str, float]:
    """Median seconds per step of each stepper, run in alternating rounds."""
    times: dict[str, list[float]] = {k: [] for k in steppers}
    for s in steppers.values():
        for _ in range(warmup):
            s.step()
    per_round = max(1, steps // rounds)
    for _ in range(rounds):
        for name, s in steppers.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                s.step()
                times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_pair(make_net, data, batch, meta_batch, steps, extra: dict | None = None) -> dict[str, float]:
    torch.manual_seed(0)
    steppers = {"sgd": SGDStepper(make_net(), data, batch, meta_batch), "bads": BADSStepper(make_net(), data, batch, meta_batch)}
    for k, v in (extra or {}).items():
        steppers[k] = v
    return interleaved_medians(steppers, steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/step_cost.json"))
    args = ap.parse_args()
    if args.steps < 200:
        ap.error("--steps must be >= 200")
    rows = []

    def row(name, num, den, a, b, target, params=None):
        ratio = a / b
        noise = noise_ms(params) if params else None
        rows.append({"case": name, "numerator": num, "denominator": den, "num_ms": a * 1e3, "den_ms": b * 1e3,
                     "ratio": ratio, "target": target, "pass": ratio <= target, "params": params, "randn_ms": noise})

    digits = make_data(10_000, 50, (64,))
    for label, hidden in (("digits-mlp-128", (128,)), ("digits-mlp-default", DEFAULT_HIDDEN)):
        torch.manual_seed(0)
        extra = {"sgld": BADSStepper(mlp(64, 10, hidden), digits, 128, 50, psgld=False),
                 "reference": BADSStepper(mlp(64, 10, hidden), digits, 128, 50, path="reference")}
        t = bench_pair(lambda hidden=hidden: mlp(64, 10, hidden), digits, 128, 50, args.steps, extra)
        p = sum(x.numel() for x in mlp(64, 10, hidden).parameters())
        row(f"{label}", "bads pSGLD", "sgd", t["bads"], t["sgd"], 1.25, p)
        row(f"{label}-sgld", "bads SGLD", "sgd", t["sgld"], t["sgd"], 1.25, p)
        row(f"{label}-pyro", "bads (Pyro trace)", "bads (fused)", t["reference"], t["bads"], 1.6)

    cnn_data = make_data(10_000, 200, (1, 28, 28))
    torch.manual_seed(0)
    ref = BADSStepper(small_cnn(), cnn_data, 128, 32, path="reference")
    t = bench_pair(small_cnn, cnn_data, 128, 32, args.steps, {"reference": ref})
    row("small-cnn", "bads pSGLD", "sgd", t["bads"], t["sgd"], 1.10, sum(x.numel() for x in small_cnn().parameters()))
    row("small-cnn-pyro", "bads (Pyro trace)", "bads (fused)", t["reference"], t["bads"], 1.6)

    big = make_data(1_000_000, 50, (64,))
    torch.manual_seed(0)
    hidden = DEFAULT_HIDDEN
    t = interleaved_medians(
        {"n1e4": BADSStepper(mlp(64, 10, hidden), digits, 128, 50), "n1e6": BADSStepper(mlp(64, 10, hidden), big, 128, 50)},
        args.steps,
    )
    row("table-1e6", "bads N=1e6", "bads N=1e4", t["n1e6"], t["n1e4"], 1.10)

    print(f"{'case':<24}{'numerator':>19}{'ms':>9}{'denominator':>14}{'ms':>9}{'ratio':>8}{'target':>8}  ok"
          f"{'params':>9}{'randn ms':>10}")
    for r in rows:
        extra = f"{r['params']:>9}{r['randn_ms']:>10.3f}" if r["params"] else ""
        print(f"{r['case']:<24}{r['numerator']:>19}{r['num_ms']:>9.3f}{r['denominator']:>14}{r['den_ms']:>9.3f}"
              f"{r['ratio']:>8.3f}{r['target']:>8.2f}  {'yes' if r['pass'] else 'NO '}{extra}")
    print("randn ms: drawing the Langevin noise torch.randn(params) alone, a floor no bookkeeping trim removes.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, {"benchmark": "step_cost", "steps": args.steps, "machine": machine_description(), "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
