"""Data-parallel BADS sampling on torch.distributed (pyrodps.parallel): two gloo processes on the CPU give
the θ and weights of one process on the same batches (within float tolerance), a run interrupted by a
signal on one rank stops on every rank and resumes exactly (also with one process), and bad setups fail
by name before any process waits for another."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from pyrodps.app.cli import main
from pyrodps.bads import BADSConfig
from pyrodps.bads.build import build
from pyrodps.bads.fit import fit_bads
from pyrodps.errors import ValidationError
from pyrodps.models.potential import BADSPotential, FusedGradient
from pyrodps.models.problem import SelectionProblem
from pyrodps.parallel import Comm, DataParallel, ShardedTable, data_parallel
from pyrodps.parallel.gradient import ShardGradient
from pyrodps.run.stop import RunInterrupted

WORLD = 2
TOLERANCE = 1e-5
CONFIGS = {  # the default weight block (slice), the Langevin one, and log Z(w) kept by the companion chain
    "slice": {},
    "langevin": {"weight_update": "langevin", "weight_step_size": 0.5},
    "companion": {"log_z": "companion", "companion_window": 3},
}
STOP_AFTER = 20  # rank 1 signals itself at its first kept draw after this step


def _problem() -> SelectionProblem:
    rng = np.random.default_rng(0)
    n, m, t = 96, 12, 30
    x = rng.normal(size=(n + m + t, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    y_train = y[:n].copy()
    flip = rng.random(n) < 0.3
    y_train[flip] = (y_train[flip] + 1) % 3
    return SelectionProblem("toy", x[:n], y_train, x[n:n + m], y[n:n + m], x[n + m:], y[n + m:], 3, corrupted=flip)


def _config(name: str) -> BADSConfig:
    return BADSConfig(steps=40, batch_size=16, meta_batch_size=5, hidden=(8,), thin=5, **CONFIGS[name])


def _summary(fit) -> dict:
    state = fit.samples.states[0]
    u = state.u.full() if isinstance(state.u, ShardedTable) else state.u
    return {"theta": state.theta.clone(), "w": torch.sigmoid(u), "weight_mean": fit.weight_mean,
            "test_probs": fit.test_probs}


def _worker(rank: int, port: int, folder: Path) -> None:
    """One rank: every scenario in one process group (starting processes costs more than sampling here)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    group = DataParallel(rank, WORLD)
    out: dict = {name: _summary(fit_bads(_problem(), _config(name), seed=3, progress=False, parallel=group))
                 for name in CONFIGS}
    signalled: list[int] = []

    def stop_rank_one(chain: int, state, prediction) -> None:
        if rank == 1 and state.step > STOP_AFTER and not signalled:
            signalled.append(state.step)
            os.kill(os.getpid(), signal.SIGTERM)

    ckpt = folder / "checkpoint"
    try:
        fit_bads(_problem(), _config("slice"), seed=3, progress=False, checkpoint_dir=ckpt, checkpoint_every=10,
                 on_draw=stop_rank_one, parallel=group)
    except RunInterrupted as e:
        out["interrupted_at"] = e.step
    if rank == 0:
        shutil.copytree(ckpt, folder / "checkpoint-copy")  # resumed with one process by the test
    out["resumed"] = _summary(fit_bads(_problem(), _config("slice"), seed=3, progress=False, checkpoint_dir=ckpt,
                                       checkpoint_every=10, parallel=group))
    torch.manual_seed(rank)  # a network that differs between the ranks
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    try:
        fit_bads(_problem(), _config("slice"), seed=3, net=net, progress=False, parallel=group)
    except ValidationError as e:
        out["different_networks"] = e.argument
    torch.save(out, folder / f"rank{rank}.pt")
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> tuple[dict, dict, Path]:
    folder = tmp_path_factory.mktemp("ranks")
    # fork: the children start with pyrodps imported (importing it again costs more than the runs)
    ctx = mp.start_processes(_worker, args=(_free_port(), folder), nprocs=WORLD, join=False, start_method="fork")
    deadline = time.monotonic() + 300
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the 2-process run did not finish in 300 s")
    return (torch.load(folder / "rank0.pt", weights_only=False), torch.load(folder / "rank1.pt", weights_only=False),
            folder)


@pytest.fixture(scope="module")
def one_process() -> dict:
    return {name: _summary(fit_bads(_problem(), _config(name), seed=3, progress=False)) for name in CONFIGS}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_two_processes_sample_what_one_process_samples(two_ranks, one_process, name):
    rank0, rank1, _ = two_ranks
    assert torch.equal(rank0[name]["theta"], rank1[name]["theta"])  # replicated: bit for bit on every rank
    assert torch.equal(rank0[name]["w"], rank1[name]["w"])
    ref = one_process[name]
    assert (rank0[name]["theta"] - ref["theta"]).abs().max() <= TOLERANCE
    assert (rank0[name]["w"] - ref["w"]).abs().max() <= TOLERANCE
    np.testing.assert_allclose(rank0[name]["weight_mean"], ref["weight_mean"], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(rank0[name]["test_probs"], ref["test_probs"], rtol=0, atol=TOLERANCE)
    assert not torch.equal(rank0[name]["w"], torch.full_like(ref["w"], 0.5))  # the weights did move


def test_a_signal_on_one_rank_stops_every_rank_and_the_run_resumes_exactly(two_ranks, one_process):
    rank0, rank1, folder = two_ranks
    assert rank0["interrupted_at"] == rank1["interrupted_at"]  # the same step on both ranks
    assert STOP_AFTER < rank0["interrupted_at"] < 40
    for key in ("theta", "w"):
        assert torch.equal(rank0["resumed"][key], rank0["slice"][key])
        assert torch.equal(rank1["resumed"][key], rank1["slice"][key])
    np.testing.assert_array_equal(rank0["resumed"]["weight_mean"], rank0["slice"]["weight_mean"])
    # the checkpoint is a one-process checkpoint: one process resumes it
    resumed = _summary(fit_bads(_problem(), _config("slice"), seed=3, progress=False,
                                checkpoint_dir=folder / "checkpoint-copy", checkpoint_every=10))
    assert (resumed["w"] - one_process["slice"]["w"]).abs().max() <= TOLERANCE
    assert (resumed["theta"] - one_process["slice"]["theta"]).abs().max() <= TOLERANCE


def test_ranks_with_different_networks_are_refused_on_every_rank(two_ranks):
    rank0, rank1, _ = two_ranks
    assert rank0["different_networks"] == rank1["different_networks"] == "theta"


def test_the_one_process_loss_coefficients_are_unchanged():
    setup = build(_problem(), _config("slice"))
    pot = BADSPotential(setup.model)
    w = torch.rand(16, generator=torch.Generator().manual_seed(1))
    m = setup.model
    expected = torch.cat((w * (m.rho_theta * m.num_train / 16), torch.full((5,), m.rho_meta * m.num_meta / 5)))
    assert torch.equal(pot.loss_coefficients(w, 5), expected)
    assert torch.equal(pot.loss_coefficients(w, 5, (16, 5)), expected)
    share = pot.loss_coefficients(w[::2], 3, (16, 5))  # a share scaled by the global sizes
    assert torch.equal(share[:8], expected[:16:2]) and torch.equal(share[8:], expected[16:19])


def test_the_shard_gradient_of_a_world_of_one_is_the_fused_gradient():
    setup = build(_problem(), _config("companion"))
    batch = setup.batches(torch.Generator().manual_seed(0)).next()
    theta = setup.model.initial_theta()
    u = torch.randn(16, generator=torch.Generator().manual_seed(2))
    ours, fused = ShardGradient(setup.model, Comm(0, 1)), FusedGradient(setup.model)
    a, b = ours(theta, u, batch), fused(theta, u, batch)
    for key in ("energy", "grad_theta", "grad_u", "nll_train", "nll_meta", "w", "deviance_train"):
        x, y = getattr(a, key), getattr(b, key)
        assert x.shape == y.shape and (x - y).abs().max() <= 1e-6 * (1 + y.abs().max()), key
    ca, cb = ours.companion(theta, torch.sigmoid(u), batch), fused.companion(theta, torch.sigmoid(u), batch)
    assert (ca.grad_theta - cb.grad_theta).abs().max() <= 1e-6 * (1 + cb.grad_theta.abs().max())
    assert torch.equal(ca.nll_train, cb.nll_train)


def test_a_sharded_table_reads_and_writes_its_entries():
    full = torch.arange(7.0)
    table = ShardedTable.from_full(full, Comm(0, 1))
    idx = torch.tensor([5, 1, 3])
    assert torch.equal(table.index_select(0, idx), full[idx])
    table.write_(idx, torch.tensor([-1.0, -2.0, -3.0]))
    assert torch.equal(table.full(), torch.tensor([0.0, -2.0, 2.0, -3.0, 4.0, -1.0, 6.0]))
    assert ShardedTable(torch.zeros(3), 7, Comm(1, 2)).shape == (7,)  # rank 1 of 2 owns points 1, 3, 5
    with pytest.raises(ValidationError, match="^local: "):
        ShardedTable(torch.zeros(4), 7, Comm(1, 2))


def test_bad_setups_are_refused_by_name_before_any_process_waits(monkeypatch, capsys, tmp_path):
    group = DataParallel(0, WORLD)  # no process group: every refusal comes before a collective
    weightnet = build(_problem(), BADSConfig(steps=40, batch_size=16, hidden=(8,), weights="network"))
    with pytest.raises(ValidationError, match="^weights: .*weight table"):
        group.wrap(weightnet.kernel)
    with pytest.raises(ValidationError, match="^batch_size: "):
        group.wrap_setup(build(_problem(), BADSConfig(steps=40, batch_size=1, hidden=(8,))))
    with pytest.raises(ValidationError, match="^memory_budget: "):
        group.prepare_fit(build(_problem(), _config("slice")), progress=False, checkpoint_dir=None, memory_budget=1)
    monkeypatch.setenv("WORLD_SIZE", str(WORLD))
    for argv, argument in ((["run", "--scenario", "digits-label-noise", "--method", "l2rw"], "method"),
                           (["run", "--scenario", "digits-label-noise", "--method", "bads-weightnet"], "weights"),
                           (["run", "--scenario", "digits-label-noise", "--method", "bads",
                             "--memory-budget-mib", "1"], "memory_budget_mib"),
                           (["compare", "--scenario", "digits-label-noise", "--methods", "bads"], "command")):
        assert main([*argv, "--out", str(tmp_path / "out")]) == 2
        assert f"pyrodps: error: {argument}: " in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    for name in ("RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match="^RANK: .*torchrun"), data_parallel():
        pass


@pytest.mark.slow
def test_torchrun_runs_the_command_line_data_parallel(tmp_path):
    """``torchrun --nproc_per_node 2 -m pyrodps run`` on digits: rank 0 writes the run folder, whose
    weights equal a one-process run's within 1e-5. The run is short: on digits the chain is chaotic at
    float precision (pSGLD's first steps amplify rounding-level gradient differences; a one-process run
    whose θ is perturbed by a relative 1e-7 drifts as far), so long runs agree in distribution, not bits."""
    args = ["run", "--scenario", "digits-label-noise", "--method", "bads", "--steps", "5", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", str(_free_port()), "-m", "pyrodps",
                    *args, "--out", str(tmp_path / "two")], env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "pyrodps", *args, "--out", str(tmp_path / "one")], env=env, check=True,
                   capture_output=True)
    two, one = np.load(tmp_path / "two" / "weights.npz"), np.load(tmp_path / "one" / "weights.npz")
    assert np.abs(two["mean"] - one["mean"]).max() <= TOLERANCE
    assert np.ptp(two["mean"]) > 0.1  # the weights visited after burn-in moved
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
