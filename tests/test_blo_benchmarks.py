"""The BLO-vs-BADS and binary-imbalance benchmarks run end to end at tiny settings and write the
JSON the README renderer reads (shapes only: the numbers of a few steps mean nothing)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """A benchmark script as a module (``benchmarks/`` is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Tiny runs of both scripts into one results folder."""
    folder = tmp_path_factory.mktemp("results")
    blo = load_script("blo_vs_bads")
    blo.main(["--parts", "timing,quality", "--networks", "digits-mlp", "--timing-steps", "3", "--warmup", "1",
              "--in-process", "--problems", "digits-label-noise", "--steps", "20", "--seeds", "0",
              "--out", str(folder / "blo_vs_bads.json")])
    sweep = load_script("binary_imbalance_sweep")
    sweep.main(["--ratios", "0.95", "--seeds", "0", "--steps", "20", "--out", str(folder / "binary_imbalance_sweep.json")])
    return folder


def test_blo_vs_bads_json_shape(results):
    r = json.loads((results / "blo_vs_bads.json").read_text())
    assert r["benchmark"] == "blo_vs_bads" and "cpu_count" in r["machine"]
    net = r["timing"]["cpu"]["networks"]["digits-mlp"]
    assert set(net["methods"]) == {"sgd", "bads", "l2rw", "mwn"}
    for rec in net["methods"].values():
        assert rec["median_ms"] > 0 and rec["timed_steps"] == 3 and rec["peak_rss_growth_mib"] >= 0
        assert rec["batch_size"] == 128 and rec["meta_batch_size"] == 50 and rec["parameters_finite_after"]
    for key in ("time_l2rw_over_bads", "time_mwn_over_bads", "time_bads_over_sgd",
                "memory_bads_over_l2rw", "memory_bads_over_mwn"):
        assert net["ratios"][key] is None or net["ratios"][key] > 0
    assert net["ratios"]["time_l2rw_over_bads"] > 0
    problem = r["quality"]["problems"]["digits-label-noise"]
    for budget in ("equal-steps", "equal-wall"):
        summary = problem["summary"][budget]
        assert set(summary) == {"bads", "l2rw", "mwn", "mixing"}
        assert 0 <= summary["bads"]["test_accuracy"]["mean"] <= 1 and "selection_auroc" in summary["l2rw"]
    wall = [run for run in problem["runs"] if run["budget"] == "equal-wall"]
    assert len(wall) == 4 and all(run["budget_seconds"] > 0 for run in wall)
    assert (results / "blo_vs_bads.png").stat().st_size > 1000


def test_blo_vs_bads_merges_parts(results, tmp_path):
    """A second run of one part keeps what the first wrote for the other."""
    out = tmp_path / "blo.json"
    out.write_text((results / "blo_vs_bads.json").read_text())
    blo = load_script("blo_vs_bads")
    blo.main(["--parts", "timing", "--networks", "digits-mlp", "--timing-methods", "sgd", "--timing-steps", "2",
              "--warmup", "0", "--in-process", "--out", str(out)])
    r = json.loads(out.read_text())
    assert set(r["timing"]["cpu"]["networks"]["digits-mlp"]["methods"]) == {"sgd"}
    assert "digits-label-noise" in r["quality"]["problems"]


def test_timing_worker_runs_in_its_own_process():
    blo = load_script("blo_vs_bads")
    args = blo.parse_args(["--timing-steps", "2", "--warmup", "0"])
    rec = blo.spawn_worker("digits-mlp", "bads", args)
    assert rec["isolated_process"] and rec["method"] == "bads" and rec["median_ms"] > 0
    assert rec["rss_before_steps_mib"] > 0 and rec["peak_rss_mib"] > 0


def test_binary_sweep_json_shape(results):
    r = json.loads((results / "binary_imbalance_sweep.json").read_text())
    assert r["scenario"] == "digits-binary-imbalance" and r["ratios"] == [0.95] and r["steps"] == [20]
    assert set(r["summary"]["0.95"]) == {"mixing", "l2rw", "mwn", "bads"}
    assert r["train_sizes"]["0.95"][0]["num_minority"] >= 1
    assert len(r["runs"]) == 4 and (results / "binary_imbalance_sweep.png").stat().st_size > 1000


def test_readme_renders_the_new_tables(results, tmp_path):
    table = load_script("readme_table")
    text = table.render(results)
    assert "per-step cost" in text and "Peak memory growth" in text
    assert "at equal steps" in text and "at equal wall-clock" in text
    assert "| digits-mlp (MLP 64-256-256-10) |" in text and "| digits-label-noise | l2rw |" in text
    assert "digits-binary-imbalance sweep" in text and "| 0.95 |" in text
    # without the new files the output is what it was
    assert table.render(tmp_path) == "_No benchmark results yet: run `benchmarks/scenarios.sh`._\n"


def test_small_resnet_is_a_function_of_its_parameters():
    from pyrodps.models.resnet import small_resnet

    net = small_resnet(widths=(4, 8, 8))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert not list(net.buffers())  # GroupNorm: nothing outside the flat θ
    assert small_resnet(norm="none", blocks_per_stage=2)(torch.randn(1, 3, 16, 16)).shape == (1, 10)
