"""The tiny-GPT-2 cost benchmark (``benchmarks/lm_cost.py``) runs end to end at tiny sizes and writes its
JSON (shapes and sanity only: the numbers of a few steps mean nothing)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tests.test_blo_benchmarks import load_script

pytest.importorskip("transformers")
TINY = ["--vocab", "40", "--layers", "2", "--width", "16", "--heads", "2", "--length", "12", "--batch", "4",
        "--meta-batch", "2", "--num-train", "16", "--num-meta", "4", "--lora-rank", "2"]


@pytest.fixture(scope="module")
def bench():
    return load_script("lm_cost")


def test_every_method_steps_on_every_subset(bench):
    s = bench.Sizes(vocab=40, layers=2, width=16, heads=2, length=12, batch=4, meta_batch=2, num_train=16, num_meta=4)
    data = bench.token_data(s)
    assert (data.y_train != -100).any(1).all() and data.x_train.shape == (16, 12)
    subsets = ["last-block"] + (["lora"] if _has_peft() else [])  # "all": test_main_writes_the_table_json
    for subset in subsets:
        for method in bench.METHODS:
            stepper = bench.make_stepper(method, s, subset, data)
            frozen = {n: p.detach().clone() for n, p in stepper.net.named_parameters() if not p.requires_grad}
            sampled = {n: p.detach().clone() for n, p in stepper.net.named_parameters() if p.requires_grad}
            stepper.step()
            stepper.step()
            now = dict(stepper.net.named_parameters())
            assert all(torch.equal(v, now[n]) for n, v in frozen.items()), (subset, method)
            assert any(not torch.equal(v, now[n]) for n, v in sampled.items()), (subset, method)
            assert all(torch.isfinite(p).all() for p in now.values())
        assert frozen


def test_main_writes_the_table_json(bench, tmp_path, capsys):
    out = tmp_path / "lm_cost.json"
    result = bench.main([*TINY, "--subsets", "all,last-block", "--steps", "1", "--rounds", "1", "--warmup", "0",
                         "--in-process", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["benchmark"] == "lm_cost" and "cpu_count" in saved["machine"] and saved["sizes"]["width"] == 16
    assert set(saved["timing_ms"]) == {"all", "last-block"} == set(saved["ratios"])
    for subset in ("all", "last-block"):
        assert set(saved["timing_ms"][subset]) == set(bench.METHODS)
        assert all(v > 0 for v in saved["timing_ms"][subset].values())
        mem = saved["memory"][subset]
        assert all(mem[m]["torch_peak_mib"] > 0 and mem[m]["finite"] for m in bench.METHODS)
        r = saved["ratios"][subset]
        assert math.isclose(r["time_bads_over_plain"], saved["timing_ms"][subset]["bads"] / saved["timing_ms"][subset]["plain"])
    assert saved["parameters"]["last-block"]["sampled"] < saved["parameters"]["all"]["sampled"]
    assert saved["parameters"]["all"]["frozen"] == 0 and result["parameters"] == saved["parameters"]
    assert "bads/plain-same" in capsys.readouterr().out


def test_worker_prints_one_json_record(bench, capsys):
    sizes = {"vocab": 40, "layers": 1, "width": 16, "heads": 2, "length": 12, "batch": 4, "meta_batch": 2,
             "num_train": 16, "num_meta": 4, "lora_rank": 2}
    assert bench.main(["--worker", "last-block:l2rw", "--sizes", json.dumps(sizes)]) is None
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["method"] == "l2rw" and record["subset"] == "last-block" and record["frozen_params"] > 0
    assert record["torch_peak_mib"] > 0 and record["finite"]


def _has_peft() -> bool:
    try:
        import peft  # noqa: F401
    except ImportError:
        return False
    return True
