"""The fixed list of runs whose results must not change when the code is restructured.

Every method on two scenarios (digits: MLP; MNIST-1D: CNN), and the BADS variants: SGLD and pSGLD,
the companion estimator, the weight network, Beta and truncated-Gaussian weight priors, the Langevin
weight block, 2 chains. :func:`run_all` gives ``{name: array}``; ``tests/golden/behaviour-<vendor>.npz``
hold the arrays recorded before the restructuring (issue #12) and ``tests/test_behaviour_preserved.py``
checks them with ``np.array_equal``. Every run takes ``STEPS`` steps (also ``bads-v0.1``, whose
preset would run 3,000). The list runs on both layouts, so the golden file can be recorded by the code
before the restructuring (``git worktree add /tmp/base 25b09f1``, copy this file into its ``tests/``,
run it there). Re-record only for an intended change of behaviour::

    python -m tests.behaviour_runs --record

**The same bits on any x86 CPU.** Float results depend on the CPU's vector code paths: ATen's kernels
(AVX2 / AVX-512), MKL's BLAS (Intel and AMD take different paths) and oneDNN's convolutions; a chain
of 40 steps amplifies a last-bit difference. The runs are therefore made (and recorded) in a fresh
process with those paths pinned (:data:`PINNED_ENV`: ATen's portable kernels, MKL's conditional
numerical reproducibility mode ``COMPATIBLE``, oneDNN limited to SSE4.1, one thread), which
:func:`run_pinned` does; the library itself is not pinned.

Pinned, an Intel Xeon still gives other last bits than the AMD EPYC the first golden was recorded on
(88 of the arrays differ, at the code of both recordings). So there is one golden per CPU vendor,
``tests/golden/behaviour-<vendor>.npz``, each recorded by the same code; a run must reproduce one of
them bit for bit. ``--record`` writes this CPU's; re-record the others' on their machines, or, where
none is at hand, record only after checking that the change leaves this CPU's golden unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

PINNED_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41",
              "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
GOLDEN_DIR = Path(__file__).parent / "golden"


def cpu_vendor() -> str:
    """The CPU's vendor id (``GenuineIntel``, ``AuthenticAMD``; ``unknown`` where /proc/cpuinfo says none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def golden_files() -> list[Path]:
    """The recorded goldens, one per CPU vendor they were recorded on (``behaviour-<vendor>.npz``)."""
    return sorted(GOLDEN_DIR.glob("behaviour-*.npz"))
SCENARIOS = {"digits": ("digits-label-noise", {}), "mnist1d": ("mnist1d-label-noise", {"num_samples": 600})}
METHODS = ("bads", "bads-companion", "bads-weightnet", "bads-no-meta", "bads-v0.1", "l2rw", "mwn", "mixing",
           "meta-only", "dup-meta", "oracle", "random-select")
# BADS variants: BADSConfig overrides on top of the method "bads"
VARIANTS = {
    "sgld": {"sampler": "sgld"},  # pyrodps 0.1: psgld=False
    "beta": {"weight_prior": "beta", "weight_prior_kwargs": {"a": 2.0, "b": 2.0}},
    "truncgauss": {"weight_prior": "truncated-gaussian"},
    "langevin": {"weight_update": "langevin", "weight_step_size": 0.5},
    "chains2": {"chains": 2},
    "companion-sgld-chains2": {"log_z": "companion", "sampler": "sgld", "chains": 2},
    "weightnet-chains2": {"weights": "network", "chains": 2},
}
STEPS = 40


def _bads_config(**overrides):
    from pyrodps import BADSConfig

    if "sampler" in overrides and not hasattr(BADSConfig(), "sampler"):  # the layout of pyrodps 0.1
        overrides = {**{k: v for k, v in overrides.items() if k != "sampler"}, "psgld": overrides["sampler"] == "psgld"}
    return BADSConfig(steps=STEPS, thin=5, hidden=(16,), track_weights=8, **overrides)


def _run_method():
    try:
        from pyrodps.app.methods import run_method
    except ImportError:  # the layout of pyrodps 0.1
        from pyrodps.methods import run_method
    return run_method


def _configs():
    from pyrodps.baselines.l2rw import L2RWConfig
    from pyrodps.baselines.mwn import MWNConfig
    from pyrodps.baselines.sgd import SGDConfig

    small = {"steps": STEPS, "hidden": (16,), "batch_size": 32}
    return {"bads_config": _bads_config(), "sgd_config": SGDConfig(**small),
            "l2rw_config": L2RWConfig(**small), "mwn_config": MWNConfig(**small, weight_net_hidden=8)}


def _arrays(prefix: str, res) -> dict[str, np.ndarray]:
    out = {f"{prefix}/test_probs": np.asarray(res.test_probs)}
    if res.weight_mean is not None:
        out[f"{prefix}/weight_mean"] = np.asarray(res.weight_mean)
        out[f"{prefix}/weight_std"] = np.asarray(res.weight_std)
    if res.fit is not None:
        out[f"{prefix}/theta"] = torch.stack([s.theta for s in res.fit.samples.states]).numpy()
        out[f"{prefix}/energy"] = res.fit.samples.draws["energy"].numpy()
    return out


def run_all() -> dict[str, np.ndarray]:
    """Every run of the list, as named arrays (CPU, deterministic)."""
    from pyrodps import make_scenario

    run_method = _run_method()

    torch.manual_seed(0)
    out: dict[str, np.ndarray] = {}
    for key, (scenario, options) in SCENARIOS.items():
        problem = make_scenario(scenario, seed=0, **options)
        for method in METHODS:
            res = run_method(problem, method, seed=1, steps=STEPS, progress=False, **_configs())
            out.update(_arrays(f"{key}/{method}", res))
        for name, overrides in VARIANTS.items():
            configs = {**_configs(), "bads_config": _bads_config(**overrides)}
            res = run_method(problem, "bads", seed=2, steps=STEPS, progress=False, **configs)
            out.update(_arrays(f"{key}/bads+{name}", res))
    return out


def run_pinned() -> dict[str, np.ndarray]:
    """:func:`run_all` in a fresh process with :data:`PINNED_ENV` (the variables act only when torch loads)."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "runs.npz"
        env = {**os.environ, **PINNED_ENV, "PYTHONPATH": str(root)}
        subprocess.run([sys.executable, "-m", "tests.behaviour_runs", "--out", str(out)], cwd=root, env=env, check=True)
        with np.load(out) as runs:
            return {name: runs[name] for name in runs.files}


if __name__ == "__main__":
    if "--out" in sys.argv:  # the child of run_pinned
        np.savez(sys.argv[sys.argv.index("--out") + 1], **run_all())
    elif "--record" in sys.argv:
        GOLDEN_DIR.mkdir(exist_ok=True)
        golden = GOLDEN_DIR / f"behaviour-{cpu_vendor()}.npz"
        arrays = run_pinned()
        np.savez_compressed(golden, **arrays)
        print(f"recorded {len(arrays)} arrays in {golden}")
    else:
        sys.exit("usage: python -m tests.behaviour_runs --record")
