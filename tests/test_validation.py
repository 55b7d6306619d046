"""Bad input raises a typed error naming the argument, before any work starts, writing nothing."""

import numpy as np
import pytest

from pyrodps import BADSConfig, SelectionProblem, ValidationError, fit_bads, make_scenario
from pyrodps.app.cli import main
from pyrodps.data.digits import digits_label_noise


def arrays(n=40, m=10, t=10, d=6, c=3, seed=0):
    r = np.random.default_rng(seed)
    return {
        "name": "toy",
        "x_train": r.normal(size=(n, d)).astype(np.float32), "y_train": r.integers(0, c, n),
        "x_meta": r.normal(size=(m, d)).astype(np.float32), "y_meta": r.integers(0, c, m),
        "x_test": r.normal(size=(t, d)).astype(np.float32), "y_test": r.integers(0, c, t),
        "num_classes": c,
    }


def bad(**changes):
    a = arrays()
    a.update(changes)
    return a


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        (bad(y_train=np.zeros(39, dtype=np.int64)), "y_train"),
        (bad(y_meta=np.array([0, 1, 2, 3, 0, 1, 2, 0, 1, 2])), "y_meta"),
        (bad(y_train=-np.ones(40, dtype=np.int64)), "y_train"),
        (bad(y_train=np.full(40, 1.0)), "y_train"),
        (bad(x_train=np.full((40, 6), np.nan, dtype=np.float32)), "x_train"),
        (bad(x_test=np.full((10, 6), np.inf, dtype=np.float32)), "x_test"),
        (bad(x_meta=np.zeros((0, 6), np.float32), y_meta=np.zeros(0, np.int64)), "x_meta"),
        (bad(x_meta=np.zeros((10, 5), np.float32)), "x_meta"),
        (bad(num_classes=1), "num_classes"),
        (bad(corrupted=np.zeros(3, bool)), "corrupted"),
    ],
)
def test_bad_arrays_name_the_argument(kwargs, argument):
    with pytest.raises(ValidationError) as e:
        SelectionProblem(**kwargs)
    assert e.value.argument == argument
    assert argument in str(e.value)


@pytest.mark.parametrize(
    "fields,argument",
    [
        ({"batch_size": 8, "step_size": 0.0}, "step_size"),
        ({"batch_size": 8, "step_size": -1e-3}, "step_size"),
        ({"batch_size": 8, "weight_step_size": float("nan")}, "weight_step_size"),
        ({"batch_size": 8, "temperature": -1.0}, "temperature"),
        ({"batch_size": 8, "steps": 0}, "steps"),
        ({"batch_size": 8, "burn_in": 500, "steps": 100}, "burn_in"),
        ({"batch_size": 8, "weight_prior": "laplace"}, "weight_prior"),
        ({"batch_size": 8, "weight_prior": "truncated-gaussian", "weight_prior_kwargs": {"beta": 1.5}}, "beta"),
        ({"batch_size": 8, "log_z": "nope"}, "log_z"),
        ({"sampler": "sghmc"}, "sampler"),
        ({"likelihood": "poisson"}, "likelihood"),
        ({"theta_prior": "no_such_module:Prior"}, "theta_prior"),
    ],
)
def test_a_bad_config_cannot_be_made(fields, argument):
    """A BADSConfig is checked as it is made: the error names the field, before any work."""
    with pytest.raises(ValidationError) as e:
        BADSConfig(**fields)
    assert e.value.argument == argument


def test_a_config_too_large_for_the_problem_is_refused_before_sampling(monkeypatch):
    from pyrodps.bads import fit

    def no_sampling(*a, **k):
        raise AssertionError("sampling started before validation")

    monkeypatch.setattr(fit, "sample", no_sampling)
    with pytest.raises(ValidationError) as e:
        fit_bads(SelectionProblem(**arrays()), BADSConfig(batch_size=41), progress=False)  # 40 train points
    assert e.value.argument == "batch_size"


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--scenario", "nope", "--method", "bads"], "scenario"),
        (["--scenario", "digits-label-noise", "--method", "no-such-method"], "method"),
        (["--scenario", "digits-label-noise", "--method", "bads", "--steps", "0"], "steps"),
        (["--scenario", "digits-label-noise", "--method", "bads", "--noise-rate", "1.5"], "noise_rate"),
        (["--scenario", "digits-label-noise", "--method", "bads", "--meta-per-class", "0"], "meta_per_class"),
        (["--scenario", "digits-label-noise", "--method", "bads", "--meta-per-class", "500"], "meta_per_class"),
    ],
)
def test_cli_rejects_bad_arguments_without_writing(extra, needle, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["run", "--out", str(out), "--no-progress", *extra])
    assert rc == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()


def test_cli_refuses_non_empty_output(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    rc = main(["run", "--scenario", "digits-label-noise", "--method", "mixing", "--out", str(tmp_path), "--steps", "5"])
    assert rc == 2 and "--force" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_scenario_options_are_checked():
    with pytest.raises(ValidationError, match="noise_rate"):
        digits_label_noise(noise_rate=-0.1)
    with pytest.raises(ValidationError, match="scenario"):
        make_scenario("cifar")


@pytest.mark.parametrize("extra,needle", [(["--steps", "5000"], "pyrodps run --scenario digits-label-noise"),
                                          (["--seed", "3"], "--seed"), (["--method", "mixing"], "--method")])
def test_resume_takes_no_other_options_and_says_how_to_run_longer(tmp_path, capsys, extra, needle):
    """``--resume DIR --steps N`` used to ignore --steps silently; now it is refused, with the command
    line that starts a longer run with the same settings."""
    from pyrodps.app.cli import main
    from pyrodps.app.runner import ProblemSpec, RunRequest
    from pyrodps.io import write_json

    folder = tmp_path / "run"
    write_json(folder / "request.json", RunRequest(ProblemSpec("digits-label-noise", {"noise_rate": 0.3}), "bads",
                                                   folder, steps=300, seed=2).to_dict())
    assert main(["run", "--resume", str(folder), *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err
    if extra[0] == "--steps":
        assert "--noise-rate 0.3 --method bads --seed 2 --steps 5000" in err and "cannot be changed or extended" in err
