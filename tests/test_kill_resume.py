"""``kill -9`` a ``pyrodps run`` at a random step, ``pyrodps run --resume``: the same final weights and
metrics as an uninterrupted run with the same seed, bit for bit on CPU."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

STEPS, EVERY = 400, 25
ARGS = ["--scenario", "digits-label-noise", "--method", "bads", "--steps", str(STEPS),
        "--checkpoint-every", str(EVERY), "--no-progress"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pyrodps.app.cli", "run", *args]


def _same_results(a: Path, b: Path) -> None:
    wa, wb = np.load(a / "weights.npz"), np.load(b / "weights.npz")
    for key in wa.files:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)
    ma, mb = json.loads((a / "metrics.json").read_text()), json.loads((b / "metrics.json").read_text())
    for key in ("test_accuracy", "balanced_accuracy", "selection_auroc", "mean_weight_clean", "mean_weight_corrupted"):
        assert ma[key] == mb[key], key


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    subprocess.run(_cli(*ARGS, "--out", str(out)), env=ENV, check=True, capture_output=True)
    return out


def _kill_and_resume(out: Path, rng: random.Random) -> bool:
    """Start a run, SIGKILL it at a random moment after its first checkpoint, resume it. Returns
    whether the kill landed before the run finished."""
    proc = subprocess.Popen(_cli(*ARGS, "--out", str(out)), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.6))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = not (out / "metrics.json").exists()
    if killed:
        done = subprocess.run(_cli("--resume", str(out)), env=ENV, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    return killed


def _trials(reference: Path, tmp_path: Path, n: int, seed: int) -> int:
    rng = random.Random(seed)
    killed = 0
    for k in range(n):
        out = tmp_path / f"trial{k}"
        killed += _kill_and_resume(out, rng)
        _same_results(reference, out)
        assert not (out / "checkpoint.pt").exists()
    return killed


def test_kill_9_and_resume_gives_identical_results(reference, tmp_path):
    assert _trials(reference, tmp_path, 2, seed=0) >= 1


@pytest.mark.slow
def test_kill_9_and_resume_ten_trials(reference, tmp_path):
    killed = _trials(reference, tmp_path, 10, seed=1)
    print(f"{killed} of 10 runs were killed mid-run and resumed to identical results")
    assert killed >= 8


def test_resume_refuses_a_finished_run_and_a_foreign_folder(reference, tmp_path):
    done = subprocess.run(_cli("--resume", str(reference)), env=ENV, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "finished already" in done.stderr
    done = subprocess.run(_cli("--resume", str(tmp_path)), env=ENV, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "request.json" in done.stderr


def test_resume_refuses_a_checkpoint_of_another_configuration(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(_cli(*ARGS, "--out", str(out)), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (out / "checkpoint.pt").exists() and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if (out / "metrics.json").exists():
        pytest.skip("the run finished before it could be killed")
    request = json.loads((out / "request.json").read_text())
    request["seed"] = 5  # the checkpoint was written for seed 0
    (out / "request.json").write_text(json.dumps(request))
    done = subprocess.run(_cli("--resume", str(out)), env=ENV, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "different configuration" in done.stderr


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_at_a_random_moment_stops_gracefully_and_resumes_identically(reference, tmp_path, sig):
    """SIGTERM (how clusters pre-empt jobs) or SIGINT (Ctrl-C) at a random moment after the run has
    started: the step in progress finishes, a checkpoint is written, the process exits with
    128 + signal and says how to resume; the resumed run ends as the uninterrupted one."""
    rng = random.Random(int(sig))
    for attempt in range(6):  # a fast machine may finish first: the moment's range halves each attempt
        out = tmp_path / f"run{attempt}"
        proc = subprocess.Popen(_cli(*ARGS, "--out", str(out)), env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        _wait_for(out / "request.json", proc)
        time.sleep(rng.uniform(0.0, 1.5 / 2**attempt))
        proc.send_signal(sig)
        _, err = proc.communicate()
        if not (out / "metrics.json").exists():
            break
    else:
        pytest.fail("in 6 attempts the run always finished before the signal arrived")
    assert proc.returncode == 128 + int(sig), err
    assert f"pyrodps run --resume {out}" in err and sig.name in err
    done = subprocess.run(_cli("--resume", str(out)), env=ENV, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    _same_results(reference, out)


def test_a_second_run_on_a_folder_in_use_is_refused_and_the_first_is_unaffected(reference, tmp_path, capsys):
    """A run in progress (another process) holds the folder: ``run --resume`` and ``run --force`` on it
    are refused with the holder's pid, and the first run ends exactly as the reference."""
    from pyrodps.app.cli import main

    out = tmp_path / "run"
    proc = subprocess.Popen(_cli(*ARGS, "--out", str(out)), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(out / "checkpoint.pt", proc)
    assert proc.poll() is None, "the first run ended before the second started"
    assert main(["run", "--resume", str(out)]) == 2
    assert f"in use by process {proc.pid}" in capsys.readouterr().err
    assert main(["run", *ARGS, "--out", str(out), "--force"]) == 2
    assert f"in use by process {proc.pid}" in capsys.readouterr().err
    assert proc.wait() == 0
    _same_results(reference, out)


@pytest.mark.slow
def test_sigterm_at_random_moments_five_trials(reference, tmp_path):
    """SIGTERM anywhere from before sampling starts to near the end; every interrupted run resumes to
    identical results."""
    rng = random.Random(3)
    stopped = 0
    for k in range(5):
        out = tmp_path / f"trial{k}"
        proc = subprocess.Popen(_cli(*ARGS, "--out", str(out)), env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        _wait_for(out / "request.json", proc)
        time.sleep(rng.uniform(0.0, 4.0))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate()
        if not (out / "metrics.json").exists():
            stopped += 1
            assert proc.returncode == 143 and "--resume" in err, err
            done = subprocess.run(_cli("--resume", str(out)), env=ENV, capture_output=True, text=True, check=False)
            assert done.returncode == 0, done.stderr
        _same_results(reference, out)
    assert stopped >= 3
