"""Has a change made the BADS step dearer? The step of this tree against the step of another commit,
measured side by side in one run.

The other commit is checked out with ``git worktree`` into a temporary folder. Each round starts one
process per tree (``OMP_NUM_THREADS=1``), alternating base and change, and times in that process a BADS
step of the default config (``BADSKernel.step`` plus the online weight statistics, diagnostics every
10th step, as the driver does) and a plain momentum-SGD step on the same batch and network, interleaved;
a round reports medians. The table gives, per network, the median over rounds of the BADS step in ms and
of its ratio to the SGD step of the same process (the ratio cancels most of the machine's drift).

    python benchmarks/step_cost_change.py [--base 25b09f1] [--rounds 6] [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# run inside each tree: builds the default BADS kernel with that tree's API and times it against SGD
PROBE = r'''
import json, statistics, sys, time
import torch, torch.nn.functional as F
try:  # after the restructuring (issue #12)
    from pyrodps.bads import BADSConfig
    from pyrodps.bads.build import assemble
    from pyrodps.models import Categorical, MinibatchStream, SelectionData
    from pyrodps.run import OnlineWeightStats
    def kernel_for(net, data, batch):
        cfg = BADSConfig(batch_size=batch).resolved_for("vector" if data.x_train.ndim == 2 else "image",
                                                        data.num_train, data.num_meta)
        return assemble(net, Categorical(10), data, cfg)[1]
except ImportError:  # pyrodps 0.1 layout
    from pyrodps.selection import BADSConfig, build_kernel
    from pyrodps.models import SelectionData
    from pyrodps.inference import MinibatchStream, OnlineWeightStats
    def kernel_for(net, data, batch):
        cfg = BADSConfig(batch_size=batch).resolved_for("vector" if data.x_train.ndim == 2 else "image",
                                                        data.num_train, data.num_meta)
        return build_kernel(net, 10, data, cfg)[1]
from pyrodps.models.networks import mlp, small_cnn

def data_of(n, m, shape):
    g = torch.Generator().manual_seed(0)
    return SelectionData(torch.rand(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g),
                         torch.rand(m, *shape, generator=g), torch.randint(0, 10, (m,), generator=g))

def probe(make_net, data, batch, meta_batch, steps):
    torch.manual_seed(0)
    kernel = kernel_for(make_net(), data, batch)
    state, stats = kernel.init(0), OnlineWeightStats(data.num_train)
    bads_stream = MinibatchStream(data, batch, meta_batch, torch.Generator().manual_seed(1))
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    sgd_stream = MinibatchStream(data, batch, meta_batch, torch.Generator().manual_seed(1))
    t = [0]
    def bads():
        nonlocal state
        state, info = kernel.step(state, bads_stream.next(), t[0] % 10 == 0)
        stats.update(info["idx"], info["w"])
        t[0] += 1
    def sgd():
        b = sgd_stream.next()
        loss = F.cross_entropy(net(torch.cat((b.x_train, b.x_meta))), torch.cat((b.y_train, b.y_meta)))
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    times = {"bads": [], "sgd": []}
    for _ in range(20):
        bads(); sgd()
    for _ in range(10):
        for name, fn in (("bads", bads), ("sgd", sgd)):
            for _ in range(steps // 10):
                t0 = time.perf_counter(); fn(); times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}

steps = int(sys.argv[1])
out = {"digits-mlp-default": probe(lambda: mlp(64, 10, (256, 256)), data_of(10_000, 50, (64,)), 128, 50, steps),
       "small-cnn": probe(small_cnn, data_of(10_000, 200, (1, 28, 28)), 128, 32, steps)}
print(json.dumps(out))
'''


def run_probe(tree: Path, steps: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(tree)}
    res = subprocess.run([sys.executable, "-c", PROBE, str(steps)], cwd=tree, env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    from pyrodps.app.runner import machine_description
    from pyrodps.io import write_json

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="25b09f1", help="the commit to compare with (default: before issue #12)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/step_cost_change.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyrodps-base-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base], check=True,
                       capture_output=True)
        try:
            rounds = {"base": [], "change": []}
            for r in range(args.rounds):
                for name, tree in (("base", base), ("change", ROOT)) if r % 2 == 0 else (("change", ROOT), ("base", base)):
                    rounds[name].append(run_probe(tree, args.steps))
                    print(f"round {r + 1}/{args.rounds} {name}: {rounds[name][-1]}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
    rows = []
    for net in rounds["base"][0]:
        row = {"network": net}
        for name in ("base", "change"):
            row[f"{name}_bads_ms"] = statistics.median(x[net]["bads"] for x in rounds[name])
            row[f"{name}_sgd_ms"] = statistics.median(x[net]["sgd"] for x in rounds[name])
            row[f"{name}_ratio"] = statistics.median(x[net]["bads"] / x[net]["sgd"] for x in rounds[name])
        row["change_over_base"] = row["change_ratio"] / row["base_ratio"]
        rows.append(row)
    print(f"\n{'network':<22}{'base ms':>9}{'change ms':>11}{'base x SGD':>12}{'change x SGD':>14}{'change/base':>13}")
    for r in rows:
        print(f"{r['network']:<22}{r['base_bads_ms']:>9.3f}{r['change_bads_ms']:>11.3f}{r['base_ratio']:>12.3f}"
              f"{r['change_ratio']:>14.3f}{r['change_over_base']:>13.3f}")
    write_json(args.out, {"benchmark": "step_cost_change", "base": args.base, "rounds": args.rounds, "steps": args.steps,
                          "machine": machine_description(), "rows": rows, "raw": rounds})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
