"""The fault matrix of a run folder (issue: run folders safe to open and hard to lose).

Every fault ends either in a clear, typed error or in a resumed run whose final weights are
``np.array_equal`` to the uninterrupted run's: a checkpoint crafted to run code, a truncated latest
checkpoint, a full disk during a checkpoint or a result write, SIGTERM/SIGINT, a second process on
the folder, missing or corrupt files under ``report`` and ``summarize``. The subprocess variants
(real signals, two real processes) are in ``tests/test_kill_resume.py``.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

from pyrodps.app.cli import main
from pyrodps.app.runner import ProblemSpec, RunRequest, resume_request, run
from pyrodps.bads import BADSConfig
from pyrodps.bads.fit import CHECKPOINT_FILE, fit_bads
from pyrodps.data import make_scenario
from pyrodps.errors import ValidationError, WriteError
from pyrodps.io import write_json
from pyrodps.run import (
    CheckpointUnreadableError,
    CheckpointWriteError,
    RunFolderLockedError,
    RunInterrupted,
)
from pyrodps.run.checkpoint import (
    Checkpointer,
    CheckpointFallbackWarning,
    checkpoint_files,
    safe_load,
    sha256_of,
)
from pyrodps.run.lock import LOCK_FILE, StaleLockWarning, folder_lock, holder_of
from pyrodps.run.stop import StopNow

STEPS, EVERY = 160, 20
CONFIG = BADSConfig(steps=STEPS, chains=2, thin=4)  # 20 kept draws per chain


class Killed(Exception):
    """Stands for the process dying (raised from the per-draw callback)."""


@pytest.fixture(scope="module")
def problem():
    return make_scenario("digits-label-noise", seed=0)


@pytest.fixture(scope="module")
def reference(problem):
    return fit_bads(problem, CONFIG, seed=0, progress=False)


def _fit(problem, folder, on_draw=None):
    return fit_bads(problem, CONFIG, seed=0, progress=False, checkpoint_dir=folder, checkpoint_every=EVERY,
                    on_draw=on_draw)


def _die_at(draw: int):
    """A per-draw callback that 'kills the process' at the ``draw``-th kept draw."""
    calls = {"n": 0}

    def on_draw(chain, state, prediction):
        calls["n"] += 1
        if calls["n"] == draw:
            raise Killed

    return on_draw


def _same(fit, reference) -> None:
    np.testing.assert_array_equal(fit.weight_mean, reference.weight_mean)
    np.testing.assert_array_equal(fit.weight_std, reference.weight_std)
    np.testing.assert_array_equal(fit.test_probs, reference.test_probs)


# ----------------------------------------------------------------------------- no code on load
class _Payload:
    """Pickles to ``open(marker, "w")``: loading it with plain pickle creates the marker file."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _plant(folder: pathlib.Path, marker: pathlib.Path, legacy: bool) -> None:
    """A checkpoint that runs code on load, with a manifest that vouches for it (an attacker writes both)."""
    latest, _, manifest = checkpoint_files(folder / CHECKPOINT_FILE)
    folder.mkdir(parents=True, exist_ok=True)
    if legacy:
        latest.write_bytes(pickle.dumps({"format": 2, "state": _Payload(marker)}))
    else:
        torch.save({"format": 2, "state": _Payload(marker)}, latest)
    write_json(manifest, {"format": 2, "generations": [{"sha256": sha256_of(latest)}]})


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("legacy", [False, True], ids=["torch-zip", "raw-pickle"])
def test_a_checkpoint_crafted_to_run_code_is_refused_and_runs_nothing(tmp_path, legacy, capsys):
    marker = tmp_path / "pwned"
    folder = tmp_path / "run"
    _plant(folder, marker, legacy)
    with pytest.raises(CheckpointUnreadableError, match="run code"):
        Checkpointer(folder / CHECKPOINT_FILE, 10, {}).load()
    assert not marker.exists()
    # through the command line: a run folder someone sent you, resumed
    spec = ProblemSpec("digits-label-noise")
    write_json(folder / "request.json", RunRequest(spec, "bads", folder, steps=STEPS).to_dict())
    assert main(["run", "--resume", str(folder)]) == 2
    assert "run code" in capsys.readouterr().err
    assert not marker.exists()
    # power: the same file loaded the unsafe way does run the planted code
    if not legacy:
        torch.load(folder / CHECKPOINT_FILE, weights_only=False)
        assert marker.exists()


def test_a_checkpoint_holds_only_tensors_and_plain_containers(tmp_path, problem):
    """numpy state is stored as tensors: every generation loads under ``weights_only=True``."""
    with pytest.raises(Killed):
        _fit(problem, tmp_path, _die_at(12))
    for path in checkpoint_files(tmp_path / CHECKPOINT_FILE)[:2]:
        assert isinstance(safe_load(path), dict)


# ----------------------------------------------------------------------------- two generations
def test_truncated_latest_resumes_from_the_previous_generation_exactly(tmp_path, problem, reference):
    with pytest.raises(Killed):
        _fit(problem, tmp_path, _die_at(25))
    latest, previous, _ = checkpoint_files(tmp_path / CHECKPOINT_FILE)
    newer, older = safe_load(latest), safe_load(previous)
    assert (newer["chain"], newer["t"]) > (older["chain"], older["t"])
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # a full disk, a bad copy
    with pytest.warns(CheckpointFallbackWarning) as caught:
        resumed = _fit(problem, tmp_path)
    text = " ".join(str(w.message) for w in caught)
    assert str(latest) in text and str(previous) in text
    assert resumed.samples.extras["resumed_at"] == [(older["chain"], older["t"])]
    _same(resumed, reference)


def test_a_latest_generation_that_fails_its_checksum_is_not_used(tmp_path, problem, reference):
    """A latest file replaced by another well-formed checkpoint (here: the previous one's bytes with one
    byte flipped in a tensor) loads fine but fails its sha256: the previous generation is used."""
    with pytest.raises(Killed):
        _fit(problem, tmp_path, _die_at(25))
    latest = tmp_path / CHECKPOINT_FILE
    data = bytearray(latest.read_bytes())
    data[-200] ^= 0xFF
    latest.write_bytes(bytes(data))
    with pytest.warns(CheckpointFallbackWarning, match="sha256"):
        resumed = _fit(problem, tmp_path)
    _same(resumed, reference)


def test_both_generations_bad_is_refused_naming_both(tmp_path, problem):
    with pytest.raises(Killed):
        _fit(problem, tmp_path, _die_at(25))
    latest, previous, _ = checkpoint_files(tmp_path / CHECKPOINT_FILE)
    for p in (latest, previous):
        p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(CheckpointUnreadableError) as e:
        _fit(problem, tmp_path)
    assert str(latest) in str(e.value) and str(previous) in str(e.value)


# ----------------------------------------------------------------------------- write failures
def _enospc_on_save(monkeypatch, after: int) -> dict:
    """``torch.save`` writes half a file and fails with ENOSPC from its ``after+1``-th call on."""
    real, calls = torch.save, {"n": 0}

    def save(obj, path, *a, **k):
        calls["n"] += 1
        if calls["n"] > after:
            real(obj, path, *a, **k)
            p = pathlib.Path(path)
            p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(obj, path, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    return calls


def test_enospc_during_a_checkpoint_write_keeps_the_previous_one_and_resumes_exactly(tmp_path, problem, reference,
                                                                                     monkeypatch):
    _enospc_on_save(monkeypatch, after=5)
    with pytest.raises(CheckpointWriteError) as e:
        _fit(problem, tmp_path)
    assert e.value.errno == errno.ENOSPC and "No space left on device" in str(e.value)
    assert str(tmp_path / CHECKPOINT_FILE) in str(e.value) and "intact" in str(e.value)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointFallbackWarning)  # the latest generation is intact
        assert safe_load(tmp_path / CHECKPOINT_FILE)["t"] == 5 * EVERY
        resumed = _fit(problem, tmp_path)
    _same(resumed, reference)


def test_a_real_write_failure_in_torch_save_is_a_checkpoint_write_error(tmp_path):
    """Not injected: a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes the operating system refuse
    the write inside torch's own zip writer, which reports it as a RuntimeError."""
    script = textwrap.dedent(f"""
        import resource, signal, sys, torch
        from pyrodps.run.checkpoint import Checkpointer, CheckpointWriteError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        c = Checkpointer({str(tmp_path / "c.pt")!r}, 1, {{}})
        c.save({{"x": torch.zeros(1000)}})
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, resource.RLIM_INFINITY))
        try:
            c.save({{"x": torch.ones(1000)}})
        except CheckpointWriteError as e:
            print("ERR", e)
        print("T", float(c.load()["x"].sum()))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert "ERR could not write" in out and "T 0.0" in out, out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    run(RunRequest(ProblemSpec("digits-label-noise"), "bads", out, steps=STEPS, checkpoint_every=EVERY),
        progress=False)
    return out


def test_enospc_while_writing_results_leaves_a_resumable_run(tmp_path, finished_run, monkeypatch, capsys):
    out = tmp_path / "run"
    real = pathlib.Path.write_bytes

    def write_bytes(self, data):
        if self.name.startswith(".weights.npz."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)
    with pytest.raises(WriteError) as e:
        run(RunRequest(ProblemSpec("digits-label-noise"), "bads", out, steps=STEPS, checkpoint_every=EVERY),
            progress=False)
    assert str(out / "weights.npz") in str(e.value) and "No space left" in str(e.value)
    assert f"pyrodps run --resume {out}" in str(e.value)
    assert not (out / "metrics.json").exists() and (out / CHECKPOINT_FILE).is_file()
    monkeypatch.undo()
    run(resume_request(out), progress=False)
    with np.load(out / "weights.npz") as a, np.load(finished_run / "weights.npz") as b:
        for key in b.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not (out / CHECKPOINT_FILE).exists()


# ----------------------------------------------------------------------------- graceful stop
def test_sigterm_finishes_the_step_checkpoints_and_resumes_exactly(tmp_path, problem, reference):
    at = random.Random(15).randint(2, 38)  # a random kept draw

    def on_draw(chain, state, prediction, calls={"n": 0}):  # noqa: B006 - a counter
        calls["n"] += 1
        if calls["n"] == at:
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RunInterrupted) as e:
        _fit(problem, tmp_path, on_draw)
    err = e.value
    assert err.signum == signal.SIGTERM and err.exit_code == 143 and "SIGTERM" in str(err)
    saved = safe_load(tmp_path / CHECKPOINT_FILE)
    assert (saved["chain"], saved["t"]) == (err.chain, err.step)
    assert signal.getsignal(signal.SIGTERM) is before  # the handlers are put back
    _same(_fit(problem, tmp_path), reference)


def test_a_second_signal_stops_at_once_and_the_last_checkpoint_still_resumes(tmp_path, problem, reference):
    def on_draw(chain, state, prediction, calls={"n": 0}):  # noqa: B006 - a counter
        calls["n"] += 1
        if calls["n"] == 30:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(StopNow):
        _fit(problem, tmp_path, on_draw)
    _same(_fit(problem, tmp_path), reference)


# ----------------------------------------------------------------------------- the lock
def _hold_lock_and_die(folder: pathlib.Path) -> int:
    """A process takes the folder's lock and dies without releasing it; returns its pid."""
    script = (f"import os; from pyrodps.run.lock import folder_lock\n"
              f"cm = folder_lock({str(folder)!r}); cm.__enter__(); print(os.getpid(), flush=True); os._exit(0)")
    return int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)


def test_a_folder_in_use_is_refused_with_the_holders_pid(tmp_path):
    script = (f"import sys, time; from pyrodps.run.lock import folder_lock\n"
              f"with folder_lock({str(tmp_path)!r}):\n    print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert holder_of(tmp_path)["pid"] == holder.pid
        with pytest.raises(RunFolderLockedError, match=f"in use by process {holder.pid}"), folder_lock(tmp_path):
            pass
        request = RunRequest(ProblemSpec("digits-label-noise"), "bads", tmp_path, steps=STEPS, force=True)
        with pytest.raises(RunFolderLockedError, match=str(holder.pid)):
            request.validate()
    finally:
        holder.communicate("")
    assert holder.returncode == 0 and not (tmp_path / LOCK_FILE).exists()
    with folder_lock(tmp_path):  # free again
        pass


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path):
    dead = _hold_lock_and_die(tmp_path)
    assert (tmp_path / LOCK_FILE).is_file() and holder_of(tmp_path) is None
    lock = folder_lock(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lock.__enter__()
    assert any(issubclass(w.category, StaleLockWarning) and f"process {dead}" in str(w.message) for w in caught)
    try:
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
        with folder_lock(tmp_path):  # re-entrant within the process
            pass
        assert (tmp_path / LOCK_FILE).is_file()
    finally:
        lock.__exit__(None, None, None)
    assert not (tmp_path / LOCK_FILE).exists()


# ----------------------------------------------------------------------------- report and summarize
@pytest.mark.parametrize("name,damage", [("metrics.json", "missing"), ("metrics.json", "corrupt"),
                                         ("weights.npz", "corrupt"), ("posterior.nc", "corrupt"),
                                         ("config.json", "corrupt")])
def test_report_and_summarize_name_a_missing_or_corrupt_file(tmp_path, finished_run, name, damage, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    for f in finished_run.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    target = folder / name
    if damage == "missing":
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[: max(1, target.stat().st_size // 3)])
    assert main(["report", str(folder)]) == 2
    assert str(target) in capsys.readouterr().err
    if name == "metrics.json":
        assert main(["summarize", str(folder), str(finished_run)]) == 2
        assert str(target) in capsys.readouterr().err
    from pyrodps.diagnostics.report import write_report

    with pytest.raises(ValidationError, match=name):
        write_report(folder)


def test_a_missing_manifest_warns_and_still_resumes_exactly(tmp_path, problem, reference):
    with pytest.raises(Killed):
        _fit(problem, tmp_path, _die_at(25))
    checkpoint_files(tmp_path / CHECKPOINT_FILE)[2].unlink()
    with pytest.warns(CheckpointFallbackWarning, match="cannot be verified"):
        resumed = _fit(problem, tmp_path)
    _same(resumed, reference)
