"""What the per-point weight state costs at N = 10^7 (issue #14, item 6): memory and step time.

A BADS run keeps, per training point, the weight table ``u`` (float32) and the online statistics of
:class:`pyrodps.bads.observers.WeightStatistics`: the visit count (int32), mean and ``M2`` (float32) of
Welford's algorithm over every visit after burn-in, and the running-average window's visits as a sparse
log (8 bytes per visit, dense 8 bytes per point once it holds N visits). This benchmark builds that state for
``N = 10^4`` and ``N = 10^7`` (synthetic 8-feature inputs and a small 8-32-10 MLP, so that the table,
not the network, is what grows), reports the bytes of each part,
and times the BADS step with the statistics update at both sizes, interleaved in rounds, with
``OMP_NUM_THREADS=1``. Target (#14): table + statistics <= 200 MB at N = 10^7, step time within 1.1x of
N = 10^4.

    OMP_NUM_THREADS=1 python benchmarks/weight_table_scale.py [--steps 300] [--out benchmarks/results/weight_table_scale.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.step_cost import interleaved_medians, make_data
from pyrodps.app.runner import machine_description
from pyrodps.bads import BADSConfig
from pyrodps.bads.build import assemble
from pyrodps.bads.observers import WeightStatistics
from pyrodps.io import write_json
from pyrodps.models import MinibatchStream, SelectionData
from pyrodps.models.likelihoods import Categorical
from pyrodps.models.networks import mlp


def nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


class Stepper:
    """The default BADS kernel and the run's weight statistics (with a window) on ``data``."""

    def __init__(self, data: SelectionData, batch: int = 128) -> None:
        torch.manual_seed(0)
        cfg = BADSConfig(batch_size=batch).resolved_for("vector", data.num_train, data.num_meta)
        _, self.kernel = assemble(mlp(8, 10, (32,)), Categorical(10), data, cfg)
        self.state = self.kernel.init(0)
        self.stream = MinibatchStream(data, batch, None, torch.Generator().manual_seed(1))
        self.stats = WeightStatistics(data.num_train, burn_in=0, window_start=0)
        self.stats.begin_chain(0)
        self.t = 0

    def step(self) -> None:
        self.state, info = self.kernel.step(self.state, self.stream.next(), self.t % 10 == 0)
        self.stats.observe(0, self.t, self.state, info, kept=False)
        self.t += 1

    def memory(self) -> dict[str, int]:
        return {"table_u": nbytes(self.state.u), "statistics": self.stats.chains[0].nbytes(),
                "window_statistics": self.stats.windows[0].nbytes()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/weight_table_scale.json"))
    args = ap.parse_args()
    steppers = {f"N=1e{k}": Stepper(make_data(10**k, 50, (8,))) for k in (4, 7)}
    times = interleaved_medians(steppers, args.steps)
    rows = []
    for name, s in steppers.items():
        mem = s.memory()
        rows.append({"case": name, "num_train": s.kernel.model.num_train, **mem,
                     "bytes_per_point": sum(mem.values()) / s.kernel.model.num_train,
                     "total_mb": sum(mem.values()) / 2**20, "step_ms": times[name] * 1e3})
    ratio = times["N=1e7"] / times["N=1e4"]
    print(f"{'case':<8}{'table MB':>10}{'stats MB':>10}{'window MB':>11}{'total MB':>10}{'B/point':>9}{'step ms':>9}")
    for r in rows:
        print(f"{r['case']:<8}{r['table_u'] / 2**20:>10.1f}{r['statistics'] / 2**20:>10.1f}"
              f"{r['window_statistics'] / 2**20:>11.1f}{r['total_mb']:>10.1f}{r['bytes_per_point']:>9.0f}{r['step_ms']:>9.3f}")
    big = rows[-1]
    # the window's log turns dense (8 bytes per point) once the window holds N visits: S_avg >= N / B steps
    big["total_mb_window_dense"] = (big["table_u"] + big["statistics"] + 8 * big["num_train"]) / 2**20
    print(f"N=1e7 with a window of >= N/B = {big['num_train'] // 128} steps (dense window): "
          f"{big['total_mb_window_dense']:.0f} MB")
    print(f"N=1e7: {big['total_mb']:.0f} MB (target <= 200 MB: {'met' if big['total_mb'] <= 200 else 'MISSED'}); "
          f"step time ratio N=1e7 / N=1e4 = {ratio:.3f} (target <= 1.1: {'met' if ratio <= 1.1 else 'MISSED'})")
    write_json(args.out, {"benchmark": "weight_table_scale", "steps": args.steps, "rows": rows, "step_ratio": ratio,
                          "targets": {"total_mb_at_1e7": 200, "step_ratio": 1.1}, "machine": machine_description()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
