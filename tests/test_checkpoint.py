"""Checkpoints resume a run exactly; the divergence guard stops or backs off; draws spill to disk."""

from __future__ import annotations

import pytest
import torch

from pyrodps.bads import BADSKernel
from pyrodps.bads.observers import WeightStatistics
from pyrodps.models import MinibatchStream
from pyrodps.run import sample
from pyrodps.run.checkpoint import (
    Checkpointer,
    CheckpointMismatchError,
    atomic_torch_save,
    safe_load,
)
from pyrodps.run.draw_store import DrawStore
from pyrodps.run.guard import DivergenceError, DivergenceGuard
from pyrodps.sgmcmc import SGLD, PolynomialDecay, RMSprop
from tests.test_sampler import small_problem


class Interrupted(Exception):
    pass


class _Killer:
    """Wraps a kernel and raises after ``at`` steps: the process "dies" mid-run."""

    def __init__(self, kernel, at: int) -> None:
        self.kernel, self.at, self.calls = kernel, at, 0

    def __getattr__(self, name):
        return getattr(self.kernel, name)

    def step(self, state, batch, diagnostics=True, **kw):
        self.calls += 1
        if self.calls > self.at:
            raise Interrupted
        return self.kernel.step(state, batch, diagnostics, **kw)


def _bads_kernel(model, psgld=True):
    return BADSKernel(model, step_size=PolynomialDecay(1e-3, 10.0, 0.6), weight_step_size=0.3,
                      preconditioner=RMSprop() if psgld else None)


def _run(kernel, data, checkpoint=None, chains=2, steps=120, observers=None, **kw):
    observers = {"weights": WeightStatistics(data.num_train, 20, steps - 30), **(observers or {})}
    return sample(kernel, lambda g: MinibatchStream(data, 16, 4, g), num_steps=steps, burn_in=20, thin=5,
                  num_chains=chains, seed=3, track=("energy", "theta"), observers=observers, progress=False,
                  checkpoint=checkpoint, **kw)


def _assert_same(a, b):
    assert torch.equal(a.draws["theta"], b.draws["theta"])
    assert torch.equal(a.draws["energy"], b.draws["energy"])
    for sa, sb in zip(a.states, b.states):
        assert torch.equal(sa.u, sb.u) and torch.equal(sa.theta, sb.theta)
    wa, wb = a.observers["weights"], b.observers["weights"]
    assert torch.equal(wa.mean_std()[0], wb.mean_std()[0])
    assert torch.equal(wa.mean_std()[1], wb.mean_std()[1])
    assert torch.equal(wa.window_mean(), wb.window_mean())


@pytest.mark.parametrize("kill_at", [7, 60, 121, 150, 239])
def test_resume_after_interruption_is_bit_for_bit(kill_at, tmp_path):
    data, model = small_problem()
    reference = _run(_bads_kernel(model), data)
    ckpt = Checkpointer(tmp_path / "checkpoint.pt", every=10, config={"run": "a"})
    with pytest.raises(Interrupted):
        _run(_Killer(_bads_kernel(model), kill_at), data, ckpt)
    resumed = _run(_bads_kernel(model), data, Checkpointer(tmp_path / "checkpoint.pt", every=10, config={"run": "a"}))
    _assert_same(reference, resumed)
    # before the first checkpoint (step 10) there is nothing to resume: the run starts over
    assert bool(resumed.extras["resumed_at"]) == (kill_at >= 10)


def test_observers_are_checkpointed_with_the_run(tmp_path):
    data, model = small_problem()

    class Counter:
        """Sums the energy of the kept draws."""

        def __init__(self):
            self.total = torch.zeros(())

        def begin_chain(self, chain):
            pass

        def observe(self, chain, t, state, info, kept):
            if kept:
                self.total.add_(info["energy"])

        def state_dict(self):
            return {"total": self.total}

        def load_state_dict(self, value):
            self.total = value["total"].clone()

    def run(kernel, counter, ckpt):
        return _run(kernel, data, ckpt, observers={"counter": counter})

    ref = Counter()
    run(_bads_kernel(model), ref, None)
    c = Counter()
    with pytest.raises(Interrupted):
        run(_Killer(_bads_kernel(model), 95), c, Checkpointer(tmp_path / "c.pt", 10, {}))
    c2 = Counter()
    run(_bads_kernel(model), c2, Checkpointer(tmp_path / "c.pt", 10, {}))
    assert torch.equal(ref.total, c2.total)


def test_foreign_checkpoint_is_refused(tmp_path):
    data, model = small_problem()
    _run(_bads_kernel(model), data, Checkpointer(tmp_path / "c.pt", 50, {"step_size": 1e-3}), chains=1, steps=60)
    with pytest.raises(CheckpointMismatchError, match="different configuration"):
        _run(_bads_kernel(model), data, Checkpointer(tmp_path / "c.pt", 50, {"step_size": 2e-3}), chains=1, steps=60)
    payload = safe_load(tmp_path / "c.pt")
    Checkpointer(tmp_path / "c.pt", 50, {}).write({**payload, "version": "0.0.0-other"})
    with pytest.raises(CheckpointMismatchError, match="pyrodps 0.0.0-other"):
        _run(_bads_kernel(model), data, Checkpointer(tmp_path / "c.pt", 50, {"step_size": 1e-3}), chains=1, steps=60)


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_torch_save({"a": torch.ones(3)}, tmp_path / "x.pt")
    atomic_torch_save({"a": torch.zeros(3)}, tmp_path / "x.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]
    assert torch.equal(torch.load(tmp_path / "x.pt")["a"], torch.zeros(3))


# ----------------------------------------------------------------------------- divergence guard
class _NoBatches:
    def next(self):
        return None


def _stiff_sgld(step_size: float) -> SGLD:
    """SGLD on U(x) = 50 |x|^2 / 2: the update multiplies x by (1 - 25 η), which diverges for η > 0.08."""
    return SGLD(lambda x, _: 25.0 * (x * x).sum(), torch.ones(3), step_size)


def _sgld_run(kernel, guard, steps=400):
    return sample(kernel, lambda g: _NoBatches(), num_steps=steps, track=("energy", "position"), progress=False,
                  guard=guard)


def test_divergence_raises_with_step_quantity_and_step_size():
    with pytest.raises(DivergenceError) as e:
        _sgld_run(_stiff_sgld(1.0), DivergenceGuard(every=1))
    err = e.value
    assert err.quantity.startswith("the position") or err.quantity.startswith("the energy")
    assert err.step_size == 1.0 and err.chain == 0 and 0 < err.step < 400
    assert f"step {err.step}" in str(err) and "step size 1" in str(err)


def test_backoff_halves_the_step_until_the_chain_is_stable():
    res = _sgld_run(_stiff_sgld(1.0), DivergenceGuard(every=5, action="backoff", snapshot_every=20))
    sizes = [b["step_size_after"] for b in res.extras["backoffs"]]
    assert sizes == [0.5, 0.25, 0.125, 0.0625]  # the first size below the stability bound 0.08
    assert torch.isfinite(res.draws["position"]).all() and torch.isfinite(res.draws["energy"]).all()
    assert res.draws["position"].shape[1] == 400  # every step kept exactly once despite the rewinds


def test_backoff_then_kill_then_resume_equals_the_uninterrupted_run(tmp_path):
    """The backed-off step size is the kernel's hyper-state and goes into the checkpoint: a run killed
    after its back-offs resumes at the smaller step (not at the original one, with its back-off budget
    spent) and ends exactly as the uninterrupted run."""
    guard = lambda: DivergenceGuard(every=5, action="backoff", snapshot_every=20)
    ckpt = lambda: Checkpointer(tmp_path / "c.pt", 50, {"run": "stiff"})

    def run(kernel, checkpoint=None):
        return sample(kernel, lambda g: _NoBatches(), num_steps=400, track=("energy", "position"), progress=False,
                      guard=guard(), checkpoint=checkpoint)

    reference = run(_stiff_sgld(1.0))
    assert len(reference.extras["backoffs"]) == 4
    with pytest.raises(Interrupted):
        run(_Killer(_stiff_sgld(1.0), 360), ckpt())
    saved = safe_load(tmp_path / "c.pt")
    assert len(saved["log"]["backoffs"]) == 4 and saved["kernel"] == {"step_scale": 0.0625}
    resumed = run(_stiff_sgld(1.0), ckpt())
    assert resumed.extras["resumed_at"] == [(0, saved["t"])] and saved["t"] > 100
    assert resumed.extras["backoffs"] == reference.extras["backoffs"]
    assert torch.equal(resumed.draws["position"], reference.draws["position"])
    assert torch.equal(resumed.draws["energy"], reference.draws["energy"])
    # power: without the kernel's hyper-state the resumed run restarts at step size 1, diverges again
    # with one back-off left, and stops
    ckpt().write({**saved, "kernel": None})
    with pytest.raises(DivergenceError):
        run(_stiff_sgld(1.0), ckpt())


def test_backoff_gives_up_after_max_backoffs():
    with pytest.raises(DivergenceError):
        _sgld_run(_stiff_sgld(1.0), DivergenceGuard(every=5, action="backoff", max_backoffs=2, snapshot_every=20))


# ----------------------------------------------------------------------------- draw store
def test_draws_spill_to_disk_past_the_budget_and_read_back_in_order(tmp_path):
    store = DrawStore(("a", "b"), memory_budget=2_000, spill_dir=tmp_path)
    for k in range(50):
        store.append("a", torch.full((10,), float(k)))
        store.append("b", torch.tensor(float(-k)))
    assert store.chunks["a"], "nothing was spilled"
    assert store.buffered_bytes <= 2_000 + 10 * 4 + 64 + 4 + 64
    assert torch.equal(store.stacked("a")[:, 0], torch.arange(50.0))
    assert torch.equal(store.stacked("b"), -torch.arange(50.0))


def test_spilled_run_equals_in_memory_run(tmp_path):
    data, model = small_problem()
    a = _run(_bads_kernel(model), data, chains=1)
    b = _run(_bads_kernel(model), data, chains=1, memory_budget=4_000, spill_dir=tmp_path)
    assert any(tmp_path.rglob("theta.*.npy"))
    assert torch.equal(a.draws["theta"], b.draws["theta"])


@pytest.mark.parametrize("budget", [None, 300])
def test_draw_store_state_round_trip_mid_block(budget, tmp_path):
    """Save the store mid-run (partial block, some chunks spilled), load it into a fresh store,
    continue: the draws equal those of a store that never stopped."""
    def fill(store, ks):
        for k in ks:
            store.append("a", torch.full((3,), float(k)))
            store.append("b", torch.tensor(k, dtype=torch.int64))

    straight = DrawStore(("a", "b"), budget, tmp_path / "s" if budget else None)
    fill(straight, range(40))
    first = DrawStore(("a", "b"), budget, tmp_path / "r" if budget else None)
    fill(first, range(17))
    state = first.state()
    resumed = DrawStore(("a", "b"), budget, tmp_path / "r" if budget else None)
    resumed.load_state(state)
    fill(resumed, range(17, 40))
    for name in ("a", "b"):
        assert torch.equal(straight.stacked(name), resumed.stacked(name))
    assert resumed.count == 40 and resumed.stacked("b").tolist() == list(range(40))


def test_cli_memory_budget_spills_draws_without_changing_results(tmp_path):
    import json

    from pyrodps.app.cli import main

    args = ["run", "--scenario", "digits-label-noise", "--method", "bads", "--steps", "200", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--memory-budget-mib", "0.01"]) == 0
    assert any((tmp_path / "b" / "draws").rglob("*.npy"))
    ma, mb = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("a", "b"))
    assert ma["test_accuracy"] == mb["test_accuracy"] and ma["selection_auroc"] == mb["selection_auroc"]
