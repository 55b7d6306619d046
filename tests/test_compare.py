"""``pyrodps compare`` and ``pyrodps run`` on your own arrays, through the command line."""

import json

import numpy as np
import pytest

from pyrodps.app.cli import main
from pyrodps.data import make_scenario


def test_compare_writes_json_and_figures(tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(["compare", "--scenario", "digits-label-noise", "--methods", "mixing,random-select,bads",
               "--seeds", "0,1", "--steps", "120", "--out", str(out), "--no-progress"])
    assert rc == 0
    result = json.loads((out / "comparison.json").read_text())
    assert result["methods"][0] == "bads"  # weighting methods run first
    assert "oracle" in result["methods"]  # the reference row of a problem with corrupted points
    assert len(result["runs"]) == 8
    harm = result["harm"]
    per_seed = {r["seed"]: r["test_accuracy"] for r in result["runs"] if r["method"] == "oracle"}
    mixing = {r["seed"]: r["test_accuracy"] for r in result["runs"] if r["method"] == "mixing"}
    assert harm["per_seed"] == {str(s): pytest.approx(per_seed[s] - mixing[s]) for s in (0, 1)}
    assert harm["mean"] == pytest.approx(np.mean(list(harm["per_seed"].values())))
    bads = [r for r in result["runs"] if r["method"] == "bads"]
    assert all(r["selection_auroc"] is not None and "mean_weight_corrupted" in r for r in bads)
    for method in ("bads", "mixing", "random-select"):
        s = result["summary"][method]["test_accuracy"]
        vals = [r["test_accuracy"] for r in result["runs"] if r["method"] == method]
        assert s["mean"] == pytest.approx(np.mean(vals)) and s["sd"] == pytest.approx(np.std(vals, ddof=1))
    assert (out / "accuracy_vs_steps.png").stat().st_size > 1000
    assert (out / "weights_by_group.png").stat().st_size > 1000
    assert "harm of the corruption" in capsys.readouterr().out


def test_an_imbalance_comparison_carries_class_balanced_and_no_oracle(tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "--scenario", "digits-imbalance", "--methods", "mixing", "--seeds", "0",
                 "--steps", "60", "--out", str(out), "--no-progress"]) == 0
    result = json.loads((out / "comparison.json").read_text())
    assert set(result["methods"]) == {"mixing", "class-balanced"} and "harm" not in result
    cb = next(r for r in result["runs"] if r["method"] == "class-balanced")
    assert cb["mean_weight_minority"] > 2 * cb["mean_weight_majority"]
    out2 = tmp_path / "cmp2"
    assert main(["compare", "--scenario", "digits-imbalance", "--methods", "mixing", "--seeds", "0",
                 "--steps", "60", "--out", str(out2), "--no-progress", "--no-references"]) == 0
    assert json.loads((out2 / "comparison.json").read_text())["methods"] == ["mixing"]


def test_compare_add_keeps_finished_runs_and_finishes_an_interrupted_one(tmp_path, capsys):
    out = tmp_path / "cmp"

    def args(seeds="0,1", folder=out):
        return ["--scenario", "digits-label-noise", "--seeds", seeds, "--steps", "40", "--out", str(folder),
                "--no-progress", "--no-references"]
    common = args()
    assert main(["compare", "--methods", "mixing", *common]) == 0
    first = json.loads((out / "comparison.json").read_text())
    assert first["complete"] is True
    # an interrupted comparison: the file as it stood after its first run
    partial = {**first, "complete": False, "runs": first["runs"][:1]}
    (out / "comparison.json").write_text(json.dumps(partial))
    assert main(["compare", "--methods", "mixing,meta-only", "--add", *common]) == 0
    result = json.loads((out / "comparison.json").read_text())
    assert result["complete"] is True and set(result["methods"]) == {"mixing", "meta-only"}
    assert len(result["runs"]) == 4
    # the finished run is kept as it was; the missing one is run again and gives the same numbers
    assert result["runs"][0] == first["runs"][0]
    mixing = [r for r in result["runs"] if r["method"] == "mixing"]
    assert [r["test_accuracy"] for r in mixing] == [r["test_accuracy"] for r in first["runs"]]
    # a different problem or seeds is refused, naming what differs, before any work
    capsys.readouterr()
    assert main(["compare", "--methods", "oracle", "--add", *args(seeds="0")]) == 2
    assert "seeds=[0, 1]" in capsys.readouterr().err
    assert main(["compare", "--methods", "oracle", "--add", "--noise-rate", "0.2", *common]) == 2
    assert "scenario_options" in capsys.readouterr().err
    assert main(["compare", "--methods", "oracle", "--add", *args(folder=tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert json.loads((out / "comparison.json").read_text()) == result


def test_an_add_that_fails_keeps_every_earlier_run(tmp_path, monkeypatch):
    """An --add that stops at its second new run (seed 1) has on disk its first one and every kept run,
    those of seed 1 included."""
    import pyrodps.app.compare as compare_module

    out = tmp_path / "cmp"
    common = ["--scenario", "digits-label-noise", "--seeds", "0,1", "--steps", "30", "--out", str(out),
              "--no-progress", "--no-references"]
    assert main(["compare", "--methods", "mixing,meta-only", *common]) == 0
    first = json.loads((out / "comparison.json").read_text())
    real = compare_module.run_method

    def failing(problem, method, **kw):
        if method == "oracle" and kw["seed"] == 1:
            raise RuntimeError("killed")
        return real(problem, method, **kw)

    monkeypatch.setattr(compare_module, "run_method", failing)
    with pytest.raises(RuntimeError):
        compare_module.compare(lambda seed: make_scenario("digits-label-noise", seed=seed), ["oracle"], [0, 1], out,
                               steps=30, progress=False, references=False, previous=first["runs"],
                               header={"scenario": "digits-label-noise"})
    partial = json.loads((out / "comparison.json").read_text())
    assert partial["complete"] is False
    assert sorted((r["method"], r["seed"]) for r in partial["runs"]) == sorted(
        [(r["method"], r["seed"]) for r in first["runs"]] + [("oracle", 0)])


def test_compare_add_keeps_the_weights_figure_of_the_earlier_methods(tmp_path):
    out = tmp_path / "cmp"
    common = ["--scenario", "digits-label-noise", "--seeds", "0", "--steps", "30", "--out", str(out),
              "--no-progress", "--no-references"]
    assert main(["compare", "--methods", "bads", *common]) == 0
    figure = (out / "weights_by_group.png").read_bytes()
    assert main(["compare", "--methods", "l2rw", "--add", *common]) == 0
    assert (out / "weights_by_group.png").read_bytes() == figure
    assert set(json.loads((out / "comparison.json").read_text())["methods"]) == {"bads", "l2rw"}


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--scenario", "digits-label-noise", "--methods", "bads,no-such-method"], "methods"),
        (["--scenario", "digits-label-noise", "--methods", "bads,bads"], "methods"),
        (["--scenario", "digits-label-noise", "--methods", "bads", "--seeds", "a"], "seeds"),
        (["--scenario", "digits-imbalance", "--methods", "bads", "--noise-rate", "0.2"], "noise_rate"),
        (["--methods", "bads"], "scenario"),
    ],
)
def test_compare_rejects_bad_arguments(tmp_path, capsys, args, needle):
    out = tmp_path / "cmp"
    assert main(["compare", "--out", str(out), "--no-progress", *args]) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()


def _save(path, x, y, **extra):
    np.savez(path, X=x, y=y, **extra)


def test_run_on_your_own_npz(tmp_path):
    p = make_scenario("digits-label-noise", seed=1)
    _save(tmp_path / "train.npz", p.x_train, p.y_train, corrupted=p.corrupted)
    _save(tmp_path / "meta.npz", p.x_meta, p.y_meta)
    _save(tmp_path / "test.npz", p.x_test, p.y_test)
    out = tmp_path / "run"
    rc = main(["run", "--train", str(tmp_path / "train.npz"), "--meta", str(tmp_path / "meta.npz"),
               "--test", str(tmp_path / "test.npz"), "--method", "bads", "--steps", "1000", "--out", str(out),
               "--no-progress"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["scenario"] == "custom" and m["selection_auroc"] > 0.95
    assert np.load(out / "weights.npz")["mean"].shape == (p.num_train,)


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--scenario", "digits-label-noise", "--train", "x.npz"], "scenario"),
        (["--train", "x.npz", "--test", "y.npz"], "scenario"),
        (["--train", "nope.npz", "--meta", "nope.npz", "--test", "nope.npz"], "train"),
        (["--scenario", "digits-label-noise", "--imbalance-ratio", "10"], "imbalance_ratio"),
    ],
)
def test_run_rejects_bad_problem_arguments(tmp_path, capsys, extra, needle):
    out = tmp_path / "run"
    assert main(["run", "--method", "bads", "--out", str(out), "--no-progress", *extra]) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()
