"""Scenarios and corruptions: shapes, balance of the clean sets, exact corruption, reproducibility, errors."""

import json
import random
from pathlib import Path

import numpy as np
import pytest

import pyrodps.data.scenarios as scenarios_module
from pyrodps import ValidationError, make_scenario
from pyrodps.data import SCENARIO_HARM, SCENARIOS, scenario_options
from pyrodps.data.corruptions import (
    class_dependent_label_noise,
    feature_noise,
    input_swap,
    long_tail_counts,
    off_domain,
    open_set_noise,
    subsample_to_counts,
    uniform_label_noise,
)
from pyrodps.data.digits import digits_label_noise, load_digits_xy
from pyrodps.data.mnist1d import _generate, load_mnist1d_binary_xy, load_mnist1d_xy
from pyrodps.data.scenarios import OPEN_SET_HELD_OUT

SMALL = 1000  # MNIST-1D samples in these tests
DATASETS = ("digits", "mnist1d")
KINDS = ("label-noise", "imbalance", "binary-imbalance", "feature-noise", "off-domain", "pair-flip", "open-set",
         "input-swap", "source-noise")
NOISY = ("label-noise", "feature-noise", "off-domain", "pair-flip", "open-set", "input-swap", "source-noise")
REGRESSION = ("friedman-outliers", "diabetes-outliers")  # tested in tests/test_regression_problems.py
TABULAR = ("iris-label-noise", "cars-label-noise")
TEXT = ("text-label-noise", "text-mixture")  # tweets as MiniLM embeddings; more in tests/test_text_data.py
TEXT_SMALL = 240  # tweets in these tests (embedded once, then read from the cache)
# text-mixture has no noise rate (whole sources are irrelevant): tested in tests/test_text_data.py
SEQUENCE = ("lm-mixture",)  # token sequences for a causal LM: tested in tests/test_lm_fit.py
CLASSIFICATION = sorted(set(SCENARIOS) - set(REGRESSION) - {"text-mixture"} - set(SEQUENCE))
HARM_JSON = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "harm" / "harm.json"


def build(name, **options):
    if name.startswith("mnist1d"):
        options.setdefault("num_samples", SMALL)
    if name in TEXT:
        options.setdefault("num_samples", TEXT_SMALL)
    return make_scenario(name, **options)


def loaded_labels(name):
    """Labels of the clean data a scenario starts from (relabelled 4 -> 0, 9 -> 1 for binary; the
    in-set classes relabelled 0 .. C' - 1 for open-set)."""
    if name in TABULAR:
        from pyrodps.data.tabular import load_cars_xy, load_iris_xy

        return (load_iris_xy if name.startswith("iris") else load_cars_xy)()[1]
    if name in TEXT:
        from pyrodps.data.text import load_tweets_xy

        return load_tweets_xy(TEXT_SMALL)[1]
    if name == "mnist1d-binary-imbalance":
        y = load_mnist1d_binary_xy(SMALL)[1]
    else:
        y = load_digits_xy()[1] if name.startswith("digits") else load_mnist1d_xy(SMALL)[1]
    if name.endswith("binary-imbalance"):
        y = y[np.isin(y, (4, 9))]
        y = (y == 9).astype(np.int64)
    if name.endswith("open-set"):
        in_set = np.setdiff1d(np.arange(10), OPEN_SET_HELD_OUT)
        y = np.searchsorted(in_set, y[np.isin(y, in_set)])
    return y


def num_classes(name):
    if name in TABULAR or name in TEXT:
        return 3
    return 2 if "binary" in name else 10 - len(OPEN_SET_HELD_OUT) if name.endswith("open-set") else 10


def test_registry_holds_every_dataset_and_kind():
    assert set(SCENARIOS) == ({f"{d}-{k}" for d in DATASETS for k in KINDS} | set(REGRESSION) | set(TABULAR)
                              | set(TEXT) | set(SEQUENCE))


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_scenario_builds_with_clean_balanced_meta_and_test(name):
    p = build(name, meta_per_class=3, test_fraction=0.25, seed=1)
    c = num_classes(name)
    assert p.name == name and p.num_classes == c
    shapes = {"digits": (64,), "mnist1d": (1, 40), "iris": (4,), "cars": (7,), "text": (384,)}
    feature_shape = shapes[name.split("-")[0]]
    for x, y in ((p.x_train, p.y_train), (p.x_meta, p.y_meta), (p.x_test, p.y_test)):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape[1:] == feature_shape and x.shape[0] == y.shape[0]
    assert np.array_equal(np.bincount(p.y_meta, minlength=c), np.full(c, 3))
    assert p.y_train.min() >= 0 and p.y_train.max() < c and p.y_test.max() < c
    # The test set is a stratified share of the loaded data: per class within one of 25 %.
    loaded = np.bincount(loaded_labels(name), minlength=c)
    assert np.all(np.abs(np.bincount(p.y_test, minlength=c) - 0.25 * loaded) <= 1)
    kind = name.split("-", 1)[1]
    if kind in NOISY:
        assert set(p.groups()) == {"corrupted", "clean"} and p.minority is None
        expected = scenario_options(name)["noise_rate"] * p.num_train
        if kind == "pair-flip":  # rounded per class
            assert abs(p.corrupted.sum() - expected) <= c / 2
        else:
            assert p.corrupted.sum() == round(expected)
    else:
        assert set(p.groups()) == {"minority", "majority"} and p.corrupted is None


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_seed_same_problem_other_seed_different(name):
    a, b, other = build(name, seed=3), build(name, seed=3), build(name, seed=4)
    keys = ("x_train", "y_train", "x_meta", "y_meta", "x_test", "y_test", "corrupted", "minority")
    for k in keys:
        assert np.array_equal(getattr(a, k), getattr(b, k)) if getattr(a, k) is not None else getattr(b, k) is None
    assert not np.array_equal(a.x_test, other.x_test) or not np.array_equal(a.x_train, other.x_train)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("kind", ("uniform", "class-dependent"))
def test_label_noise_changes_exactly_the_marked_labels(dataset, kind):
    name = f"{dataset}-label-noise"
    clean = build(name, noise_rate=0.0, seed=2)
    p = build(name, noise_rate=0.4, noise_kind=kind, seed=2)
    assert np.array_equal(p.x_train, clean.x_train) and np.array_equal(p.x_meta, clean.x_meta)
    m, y0 = p.corrupted, clean.y_train
    assert np.all(p.y_train[m] != y0[m]) and np.array_equal(p.y_train[~m], y0[~m])
    assert m.sum() == pytest.approx(0.4 * p.num_train, abs=10)
    if kind == "class-dependent":
        assert np.array_equal(p.y_train[m], (y0[m] + 1) % 10)
        for c in range(10):
            assert m[y0 == c].sum() == round(0.4 * (y0 == c).sum())
    else:
        assert m.sum() == round(0.4 * p.num_train)


def test_uniform_digits_label_noise_keeps_its_signature_and_output():
    a = digits_label_noise(0.3, 4, 0.3, 5)
    b = make_scenario("digits-label-noise", noise_rate=0.3, meta_per_class=4, seed=5, noise_kind="uniform")
    assert np.array_equal(a.y_train, b.y_train) and np.array_equal(a.corrupted, b.corrupted)
    assert a.corrupted.sum() == round(0.3 * a.num_train)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("kind", ("gaussian", "occlusion"))
def test_feature_noise_changes_exactly_the_marked_inputs(dataset, kind):
    name = f"{dataset}-feature-noise"
    clean = build(name, noise_rate=0.0, seed=2)
    p = build(name, noise_rate=0.2, feature_noise_kind=kind, seed=2)
    m = p.corrupted
    assert m.sum() == round(0.2 * p.num_train)
    assert np.array_equal(p.y_train, clean.y_train)
    assert np.array_equal(p.x_train[~m], clean.x_train[~m])
    changed = (p.x_train != clean.x_train).reshape(p.num_train, -1).any(1)
    assert np.all(changed[m])


@pytest.mark.parametrize("dataset", DATASETS)
def test_off_domain_permutes_each_marked_input(dataset):
    name = f"{dataset}-off-domain"
    clean = build(name, noise_rate=0.0, seed=2)
    p = build(name, noise_rate=0.2, seed=2)
    m = p.corrupted
    assert m.sum() == round(0.2 * p.num_train)
    assert np.array_equal(p.y_train, clean.y_train) and np.array_equal(p.x_train[~m], clean.x_train[~m])
    flat, flat0 = p.x_train.reshape(p.num_train, -1), clean.x_train.reshape(p.num_train, -1)
    assert np.array_equal(np.sort(flat[m], 1), np.sort(flat0[m], 1))
    assert (flat[m] != flat0[m]).any(1).mean() > 0.95


@pytest.mark.parametrize("dataset", DATASETS)
def test_pair_flip_is_class_dependent_label_noise_at_its_own_rate(dataset):
    clean = build(f"{dataset}-label-noise", noise_rate=0.0, seed=2)
    p = build(f"{dataset}-pair-flip", seed=2)
    same = build(f"{dataset}-label-noise", noise_rate=0.45, noise_kind="class-dependent", seed=2)
    assert p.name == f"{dataset}-pair-flip" and scenario_options(p.name)["noise_rate"] == 0.45
    assert np.array_equal(p.y_train, same.y_train) and np.array_equal(p.corrupted, same.corrupted)
    m, y0 = p.corrupted, clean.y_train
    assert np.array_equal(p.x_train, clean.x_train) and np.array_equal(p.y_train[~m], y0[~m])
    assert np.array_equal(p.y_train[m], (y0[m] + 1) % 10)
    assert all(m[y0 == c].sum() == round(0.45 * (y0 == c).sum()) for c in range(10))


def test_open_set_adds_held_out_digits_with_in_set_labels():
    x, y = load_digits_xy()
    rows = {r.tobytes(): c for r, c in zip(x, y)}
    clean = build("digits-open-set", noise_rate=0.0, seed=2)
    p = build("digits-open-set", seed=2)
    in_set = [c for c in range(10) if c not in OPEN_SET_HELD_OUT]
    m = p.corrupted
    assert p.num_classes == clean.num_classes == len(in_set) and clean.corrupted.sum() == 0
    assert m.sum() == round(0.3 * p.num_train) and p.num_train == clean.num_train + m.sum()
    # the original points keep their inputs, labels and order; meta and test sets untouched
    assert np.array_equal(p.x_train[~m], clean.x_train) and np.array_equal(p.y_train[~m], clean.y_train)
    for k in ("x_meta", "y_meta", "x_test", "y_test"):
        assert np.array_equal(getattr(p, k), getattr(clean, k))
    # meta, test and clean training points: in-set digits, relabelled in class order
    for xs, ys in ((p.x_meta, p.y_meta), (p.x_test, p.y_test), (p.x_train[~m], p.y_train[~m])):
        assert [rows[r.tobytes()] for r in xs] == [in_set[v] for v in ys]
    # the added points: distinct held-out digits, every in-set label used
    added = [rows[r.tobytes()] for r in p.x_train[m]]
    assert set(added) <= set(OPEN_SET_HELD_OUT) and len({r.tobytes() for r in p.x_train[m]}) == m.sum()
    assert np.bincount(p.y_train[m], minlength=len(in_set)).min() > 0.5 * m.sum() / len(in_set)
    assert 0 < np.flatnonzero(m).min() and np.flatnonzero(m).max() > np.flatnonzero(~m).min()  # spread out


def test_open_set_mnist1d_and_chosen_classes():
    p = build("mnist1d-open-set", noise_rate=0.1, held_out_classes=[9], seed=1)
    assert p.num_classes == 9 and set(np.unique(p.y_test)) == set(range(9)) and set(np.unique(p.y_meta)) == set(range(9))
    assert p.corrupted.sum() == round(0.1 * p.num_train)
    train_part = np.concatenate([p.x_train[~p.corrupted], p.x_meta])
    assert abs(train_part.mean()) < 1e-4  # standardised with the in-set training part's mean and sd ...
    assert abs(p.x_train[p.corrupted].mean()) < 1.0  # ... and the added signals on the same scale


def test_open_set_rate_beyond_the_held_out_points_names_noise_rate():
    with pytest.raises(ValidationError) as e:
        build("digits-open-set", noise_rate=0.9)
    assert e.value.argument == "noise_rate" and "at most" in str(e.value)


@pytest.mark.parametrize("dataset", DATASETS)
def test_input_swap_gives_marked_points_the_input_of_another_class(dataset):
    clean = build(f"{dataset}-label-noise", noise_rate=0.0, seed=2)
    p = build(f"{dataset}-input-swap", seed=2)
    m = p.corrupted
    assert m.sum() == round(0.5 * p.num_train)
    assert np.array_equal(p.y_train, clean.y_train) and np.array_equal(p.x_train[~m], clean.x_train[~m])
    labels_of = {}
    for r, c in zip(clean.x_train, clean.y_train):
        labels_of.setdefault(r.tobytes(), set()).add(int(c))
    for r, c in zip(p.x_train[m], p.y_train[m]):
        assert labels_of[r.tobytes()] - {int(c)}  # a clean training input of another class


@pytest.mark.parametrize("dataset", DATASETS)
def test_long_tail_counts_and_minority_mask(dataset):
    p = build(f"{dataset}-imbalance", imbalance_ratio=20.0, seed=1)
    counts = np.bincount(p.y_train, minlength=10)
    assert np.array_equal(counts, long_tail_counts(10, int(counts[0]), 20.0))
    assert np.all(np.diff(counts) <= 0) and counts[-1] == max(1, int(counts[0] / 20.0))
    assert np.array_equal(p.minority, np.isin(p.y_train, np.flatnonzero(counts < np.median(counts))))
    assert 0 < p.minority.sum() < p.num_train


def test_long_tail_counts_decay_exponentially():
    c = long_tail_counts(10, 1000, 100.0)
    assert c[0] == 1000 and c[-1] == 10 and c[0] / c[-1] == 100
    exact = 1000 * 100.0 ** (-np.arange(10) / 9)  # exponential decay, floored to whole points
    assert np.all((c <= exact + 1e-6) & (c > exact - 1))
    assert long_tail_counts(5, 3, 100.0).min() == 1
    assert np.all(long_tail_counts(4, 7, 1.0) == 7)
    for kwargs, arg in (({"ratio": 0.5}, "ratio"), ({"n_max": 0}, "n_max"), ({"num_classes": 1}, "num_classes")):
        with pytest.raises(ValidationError) as e:
            long_tail_counts(**{"num_classes": 10, "n_max": 10, "ratio": 10.0, **kwargs})
        assert e.value.argument == arg


def test_subsample_to_counts():
    y = np.repeat(np.arange(3), 10)
    keep = subsample_to_counts(y, np.array([10, 4, 1]), np.random.default_rng(0))
    assert np.array_equal(np.bincount(y[keep]), [10, 4, 1]) and np.all(np.diff(keep) > 0)
    with pytest.raises(ValidationError, match="counts"):
        subsample_to_counts(y, np.array([11, 1, 1]), np.random.default_rng(0))


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("ratio", (0.995, 0.9))
def test_binary_imbalance_ratio_labels_and_minority(dataset, ratio):
    p = build(f"{dataset}-binary-imbalance", positive_ratio=ratio)
    n0, n1 = np.bincount(p.y_train, minlength=2)
    assert n0 >= 1 and p.num_classes == 2 and set(np.unique(p.y_test)) == {0, 1}
    assert abs(n1 / (n0 + n1) - ratio) <= 1.0 / (n0 + n1)  # as close as whole points allow
    assert np.array_equal(p.minority, p.y_train == 0)
    assert abs(int(np.sum(p.y_test == 0)) - int(np.sum(p.y_test == 1))) <= 1


def test_mnist1d_binary_imbalance_keeps_25_fours_at_0995():
    p = make_scenario("mnist1d-binary-imbalance", positive_ratio=0.995)  # default num_samples
    n0, n1 = np.bincount(p.y_train, minlength=2)
    assert n0 >= 25 and n0 == p.minority.sum() and abs(n1 / (n0 + n1) - 0.995) <= 1.0 / (n0 + n1)
    _, y = load_mnist1d_binary_xy(scenario_options("mnist1d-binary-imbalance")["num_samples"])
    assert set(np.unique(y)) == {4, 9} and np.bincount(y)[4] == np.bincount(y)[9]


def test_digits_binary_imbalance_minority_as_documented():
    assert np.bincount(build("digits-binary-imbalance").y_train)[0] == 1  # 0.995: a single 4
    assert np.bincount(build("digits-binary-imbalance", positive_ratio=0.83).y_train)[0] >= 25


def test_mnist1d_fast_generation_is_bit_identical():
    fast, slow = _generate(300, None, True), _generate(300, None, False)
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])


def test_binary_imbalance_keeps_the_right_digits():
    x, y = load_digits_xy()
    rows = {r.tobytes(): c for r, c in zip(x, y)}
    p = build("digits-binary-imbalance", positive_ratio=0.8)
    for xs, ys in ((p.x_train, p.y_train), (p.x_meta, p.y_meta), (p.x_test, p.y_test)):
        assert [rows[r.tobytes()] for r in xs] == [4 if v == 0 else 9 for v in ys]


def test_mnist1d_standardised_and_global_rng_untouched():
    np.random.seed(123)
    random.seed(123)
    np_before, py_before = np.random.get_state()[1].copy(), random.getstate()
    load_mnist1d_xy(200)  # a size no other test uses: generated here, not cached
    assert np.array_equal(np.random.get_state()[1], np_before) and random.getstate() == py_before
    p = build("mnist1d-label-noise", noise_rate=0.0)
    train_part = np.concatenate([p.x_train, p.x_meta])
    assert abs(train_part.mean()) < 1e-4 and abs(train_part.std() - 1.0) < 1e-4


@pytest.mark.parametrize(
    "shape", [(50, 64), (50, 1, 40), (50, 1, 8, 8), (50, 3, 10, 12)], ids=["flat", "1d", "2d", "rgb"]
)
def test_occlusion_zeroes_one_block_of_about_half(shape):
    x = np.ones(shape, np.float32)
    out, mask = feature_noise(x, 0.5, "occlusion", np.random.default_rng(0))
    assert mask.sum() == 25 and np.all(out[~mask] == 1)
    spatial = shape[1:] if len(shape) == 2 else shape[2:]
    for row in out[mask]:
        zeros = row == 0 if len(shape) == 2 else np.all(row == 0, axis=0)
        assert 0.4 <= zeros.mean() <= 0.6
        idx = np.nonzero(zeros)
        box = tuple(slice(i.min(), i.max() + 1) for i in idx)
        assert zeros[box].all() and zeros.sum() == zeros[box].size  # one contiguous block
        if len(shape) > 2:
            assert np.all(row[(slice(None), *box)] == 0)  # across every channel
        assert len(box) == len(spatial)


def test_gaussian_feature_noise_scale_and_inputs_untouched():
    x = np.random.default_rng(1).normal(size=(400, 20)).astype(np.float32)
    keep = x.copy()
    out, mask = feature_noise(x, 0.25, "gaussian", np.random.default_rng(0), scale=3.0)
    assert np.array_equal(x, keep) and mask.sum() == 100 and out.dtype == np.float32
    assert np.std(out[mask] - x[mask]) == pytest.approx(3.0 * x.std(), rel=0.05)


def test_corruption_functions_are_driven_by_the_generator():
    y = np.repeat(np.arange(4), 25)
    x = np.random.default_rng(0).normal(size=(100, 8))
    for f, a in ((uniform_label_noise, y), (class_dependent_label_noise, y)):
        r1, r2 = f(a, 0.3, 4, np.random.default_rng(5)), f(a, 0.3, 4, np.random.default_rng(5))
        assert all(np.array_equal(u, v) for u, v in zip(r1, r2))
    r1, r2 = off_domain(x, 0.3, np.random.default_rng(5)), off_domain(x, 0.3, np.random.default_rng(6))
    assert not np.array_equal(r1[1], r2[1])
    outside = np.random.default_rng(1).normal(size=(60, 8))
    for seed_b, same in ((5, True), (6, False)):
        r1 = open_set_noise(x, y, outside, 0.3, 4, np.random.default_rng(5))
        r2 = open_set_noise(x, y, outside, 0.3, 4, np.random.default_rng(seed_b))
        assert all(np.array_equal(u, v) for u, v in zip(r1, r2)) == same
        r1, r2 = input_swap(x, y, 0.3, np.random.default_rng(5)), input_swap(x, y, 0.3, np.random.default_rng(seed_b))
        assert all(np.array_equal(u, v) for u, v in zip(r1, r2)) == same


def test_open_set_noise_and_input_swap_directly():
    x = np.arange(40, dtype=np.float64).reshape(20, 2)
    y = np.repeat(np.arange(2), 10)
    outside = -np.arange(30, dtype=np.float64).reshape(15, 2) - 1
    xo, yo, m = open_set_noise(x, y, outside, 0.25, 2, np.random.default_rng(0))
    assert m.sum() == round(0.25 * 20 / 0.75) == round(0.25 * m.shape[0])
    assert np.array_equal(xo[~m], x) and np.array_equal(yo[~m], y) and np.all(xo[m] < 0)
    assert set(np.unique(yo[m])) <= {0, 1}
    assert open_set_noise(x, y, outside, 0.0, 2, np.random.default_rng(0))[2].sum() == 0
    with pytest.raises(ValidationError, match="noise_rate"):
        open_set_noise(x, y, outside, 0.5, 2, np.random.default_rng(0))  # needs 20, 15 exist
    xs, ms = input_swap(x, y, 0.5, np.random.default_rng(0))
    assert ms.sum() == 10 and np.array_equal(xs[~ms], x[~ms])
    for row, label in zip(xs[ms], y[ms]):
        j = np.flatnonzero((x == row).all(1))
        assert j.size == 1 and y[j[0]] != label
    with pytest.raises(ValidationError, match="y"):
        input_swap(x, np.zeros(20, np.int64), 0.5, np.random.default_rng(0))


@pytest.mark.parametrize("name", ["digits-source-noise", "mnist1d-source-noise"])
def test_source_noise_pools_sources_of_unequal_quality_and_names_them(name):
    p = build(name, noise_rate=0.25, num_sources=3)
    groups = p.weight_groups
    assert set(np.unique(groups)) == {0, 1, 2} and np.bincount(groups).max() - np.bincount(groups).min() <= 1
    for k, rate in enumerate((0.0, 0.25, 0.5)):  # noise_rate · 2k / (S - 1): exact counts per source
        members = groups == k
        assert p.corrupted[members].sum() == round(rate * members.sum())
    clean = build(name.replace("source-noise", "label-noise"), noise_rate=0.0)
    assert np.array_equal(p.x_train, clean.x_train)  # the same clean split, labels flipped per source
    assert np.array_equal(p.y_train[~p.corrupted], clean.y_train[~p.corrupted])
    assert (p.y_train[p.corrupted] != clean.y_train[p.corrupted]).all()
    with pytest.raises(ValidationError, match="noise_rate"):
        build(name, noise_rate=0.6)
    with pytest.raises(ValidationError, match="num_sources"):
        build(name, num_sources=1)


def test_scenario_harm_covers_every_corruption_scenario_and_matches_the_benchmark():
    corruption = {n for n in CLASSIFICATION if n.split("-", 1)[1] in NOISY}
    assert set(SCENARIO_HARM) == corruption and set(SCENARIO_HARM.values()) <= {"harmful", "harmless"}
    assert all(SCENARIO_HARM[f"{d}-{k}"] == "harmful" for d in DATASETS for k in ("label-noise", "pair-flip",
                                                                                   "input-swap"))
    if HARM_JSON.exists():
        measured = json.loads(HARM_JSON.read_text())["scenarios"]
        for name, verdict in SCENARIO_HARM.items():
            if name in measured:
                assert verdict == ("harmful" if measured[name]["harmful"] else "harmless"), name


def test_scenario_options_lists_defaults():
    assert scenario_options("digits-label-noise") == {
        "noise_rate": 0.4, "meta_per_class": 5, "test_fraction": 0.3, "seed": 0, "noise_kind": "uniform"
    }
    assert scenario_options("mnist1d-imbalance") == {
        "imbalance_ratio": 100.0, "meta_per_class": 5, "test_fraction": 0.3, "seed": 0, "num_samples": 5000
    }
    assert scenario_options("digits-binary-imbalance")["positive_ratio"] == 0.995
    assert scenario_options("mnist1d-feature-noise")["feature_noise_kind"] == "gaussian"
    assert scenario_options("digits-off-domain")["noise_rate"] == 0.2
    assert scenario_options("digits-open-set") == {
        "noise_rate": 0.3, "held_out_classes": (7, 8, 9), "meta_per_class": 5, "test_fraction": 0.3, "seed": 0
    }
    assert scenario_options("mnist1d-pair-flip")["noise_rate"] == 0.45
    assert scenario_options("digits-input-swap")["noise_rate"] == 0.5
    assert scenario_options("mnist1d-binary-imbalance")["num_samples"] == 15000
    with pytest.raises(ValidationError) as e:
        scenario_options("cifar-10")
    assert e.value.argument == "scenario"


@pytest.mark.parametrize(
    "name,options,argument",
    [
        ("svhn-label-noise", {}, "scenario"),
        ("digits-imbalance", {"noise_rate": 0.2}, "noise_rate"),
        ("digits-label-noise", {"num_samples": 100}, "num_samples"),
        ("mnist1d-off-domain", {"feature_noise_kind": "gaussian"}, "feature_noise_kind"),
        ("digits-label-noise", {"noise_rate": 1.0}, "noise_rate"),
        ("mnist1d-label-noise", {"noise_rate": -0.1}, "noise_rate"),
        ("digits-label-noise", {"noise_kind": "asymmetric"}, "noise_kind"),
        ("digits-feature-noise", {"feature_noise_kind": "blur"}, "feature_noise_kind"),
        ("digits-off-domain", {"noise_rate": "lots"}, "noise_rate"),
        ("digits-imbalance", {"imbalance_ratio": 0.5}, "imbalance_ratio"),
        ("mnist1d-imbalance", {"imbalance_ratio": float("inf")}, "imbalance_ratio"),
        ("digits-binary-imbalance", {"positive_ratio": 0.5}, "positive_ratio"),
        ("mnist1d-binary-imbalance", {"positive_ratio": 1.0}, "positive_ratio"),
        ("digits-label-noise", {"meta_per_class": 0}, "meta_per_class"),
        ("digits-feature-noise", {"test_fraction": 0.0}, "test_fraction"),
        ("digits-label-noise", {"seed": -1}, "seed"),
        ("mnist1d-feature-noise", {"num_samples": 10}, "num_samples"),
        ("digits-pair-flip", {"noise_rate": 1.0}, "noise_rate"),
        ("mnist1d-pair-flip", {"noise_kind": "uniform"}, "noise_kind"),
        ("digits-input-swap", {"noise_rate": -0.5}, "noise_rate"),
        ("mnist1d-input-swap", {"feature_noise_kind": "gaussian"}, "feature_noise_kind"),
        ("digits-open-set", {"noise_rate": 1.0}, "noise_rate"),
        ("digits-open-set", {"held_out_classes": (10,)}, "held_out_classes"),
        ("digits-open-set", {"held_out_classes": ()}, "held_out_classes"),
        ("digits-open-set", {"held_out_classes": (7, 7)}, "held_out_classes"),
        ("mnist1d-open-set", {"held_out_classes": tuple(range(9))}, "held_out_classes"),
        ("digits-open-set", {"held_out_classes": 7}, "held_out_classes"),
        ("digits-open-set", {"held_out_classes": ("a",)}, "held_out_classes"),
        ("mnist1d-open-set", {"num_samples": 50}, "num_samples"),
        ("mnist1d-binary-imbalance", {"num_samples": 0}, "num_samples"),
    ],
)
def test_bad_options_name_the_argument_before_any_work(name, options, argument, monkeypatch):
    def no_work(*a, **k):
        raise AssertionError("data loaded before the options were checked")

    monkeypatch.setattr(scenarios_module, "split_clean", no_work)
    with pytest.raises(ValidationError) as e:
        make_scenario(name, **options)
    assert e.value.argument == argument and argument in str(e.value)


@pytest.mark.parametrize(
    "name,options,argument",
    [
        ("digits-label-noise", {"meta_per_class": 500}, "meta_per_class"),
        ("digits-binary-imbalance", {"meta_per_class": 130}, "meta_per_class"),
        ("mnist1d-imbalance", {"meta_per_class": 70}, "meta_per_class"),
        ("digits-off-domain", {"test_fraction": 0.002}, "test_fraction"),
    ],
)
def test_options_too_large_for_the_data_name_the_argument(name, options, argument):
    with pytest.raises(ValidationError) as e:
        build(name, **options)
    assert e.value.argument == argument


@pytest.mark.parametrize("name", TABULAR)
def test_tabular_scenarios_are_standardised_per_feature_on_the_training_part(name):
    """Raw columns on different scales (cars: a weight in lbs next to a cylinder count) are z-scored
    per feature with the training part's moments; the test set is transformed, not refitted."""
    from pyrodps.data.tabular import load_cars_xy, load_iris_xy

    p = build(name, seed=0)
    x = np.concatenate([p.x_train, p.x_meta])
    np.testing.assert_allclose(x.mean(0), 0.0, atol=0.05)
    np.testing.assert_allclose(x.std(0), 1.0, atol=0.05)
    raw, _ = (load_iris_xy if name.startswith("iris") else load_cars_xy)()
    assert raw.std(0).max() / raw.std(0).min() > 10 if name.startswith("cars") else True
    assert p.corrupted.mean() == pytest.approx(0.3, abs=0.01) and p.num_classes == 3
