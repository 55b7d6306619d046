"""Bring your own data: .npz files, arrays, tensors and torch Datasets into a SelectionProblem."""

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, IterableDataset, TensorDataset

from pyrodps import SelectionProblem, ValidationError, make_scenario
from pyrodps.data import load_npz_problem, problem_from_arrays, problem_from_datasets


def toy(n=30, m=6, t=9, shape=(5,), c=3, seed=0):
    r = np.random.default_rng(seed)
    return {
        "x_train": r.normal(size=(n, *shape)), "y_train": np.arange(n) % c,
        "x_meta": r.normal(size=(m, *shape)), "y_meta": np.arange(m) % c,
        "x_test": r.normal(size=(t, *shape)), "y_test": np.arange(t) % c,
    }


def save(tmp_path, **problem_arrays):
    """Write train/meta/test .npz files; return their paths."""
    paths = {}
    for role in ("train", "meta", "test"):
        arrays = {"X": problem_arrays[f"x_{role}"], "y": problem_arrays[f"y_{role}"]}
        if role == "train" and problem_arrays.get("corrupted") is not None:
            arrays["corrupted"] = problem_arrays["corrupted"]
        paths[role] = tmp_path / f"{role}.npz"
        np.savez(paths[role], **arrays)
    return paths


def test_npz_round_trip(tmp_path):
    p = make_scenario("digits-label-noise", noise_rate=0.3)
    paths = save(tmp_path, **{k: getattr(p, k) for k in toy()}, corrupted=p.corrupted)
    q = load_npz_problem(paths["train"], str(paths["meta"]), paths["test"], name="mine")
    assert q.name == "mine" and q.num_classes == 10
    for k in (*toy(), "corrupted"):
        assert np.array_equal(getattr(q, k), getattr(p, k)) and getattr(q, k).dtype == getattr(p, k).dtype
    assert set(q.groups()) == {"corrupted", "clean"}


def test_npz_num_classes_inferred_over_all_sets_and_overridable(tmp_path):
    a = toy(c=3)
    a["y_test"] = np.full(9, 4)  # the largest label lives in the test file only
    paths = save(tmp_path, **a)
    q = load_npz_problem(paths["train"], paths["meta"], paths["test"])
    assert q.num_classes == 5 and q.corrupted is None and q.groups() == {}
    assert q.x_train.dtype == np.float32 and q.y_train.dtype == np.int64
    assert load_npz_problem(paths["train"], paths["meta"], paths["test"], num_classes=7).num_classes == 7
    with pytest.raises(ValidationError) as e:
        load_npz_problem(paths["train"], paths["meta"], paths["test"], num_classes=3)
    assert e.value.argument == "y_test"


def test_npz_missing_file_or_array_names_the_file(tmp_path):
    paths = save(tmp_path, **toy())
    with pytest.raises(ValidationError) as e:
        load_npz_problem(paths["train"], tmp_path / "nope.npz", paths["test"])
    assert e.value.argument == "meta" and "nope.npz" in str(e.value)

    np.savez(paths["test"], X=np.zeros((3, 5)))
    with pytest.raises(ValidationError) as e:
        load_npz_problem(paths["train"], paths["meta"], paths["test"])
    assert e.value.argument == "test" and "'y'" in str(e.value)

    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValidationError) as e:
        load_npz_problem(tmp_path / "text.npz", paths["meta"], paths["test"])
    assert e.value.argument == "train"


@pytest.mark.parametrize(
    "arrays",
    [
        {"X": np.zeros((4, 5)), "y": np.zeros(3, np.int64)},
        {"X": np.zeros((4, 5)), "y": np.zeros(4, np.int64), "corrupted": np.zeros(5, bool)},
    ],
    ids=["y", "corrupted"],
)
def test_npz_length_mismatch_names_the_file(tmp_path, arrays):
    paths = save(tmp_path, **toy())
    np.savez(paths["train"], **arrays)
    with pytest.raises(ValidationError) as e:
        load_npz_problem(paths["train"], paths["meta"], paths["test"])
    assert e.value.argument == "train"


def test_arrays_accept_torch_tensors():
    a = toy()
    t = {k: torch.as_tensor(v) for k, v in a.items()}
    q = problem_from_arrays(**t, corrupted=torch.arange(30) < 5, name="tensors")
    assert q.name == "tensors" and q.num_classes == 3 and q.corrupted.sum() == 5
    assert isinstance(q.x_train, np.ndarray) and q.x_train.dtype == np.float32 and q.y_meta.dtype == np.int64
    assert np.allclose(q.x_train, a["x_train"].astype(np.float32))


@pytest.mark.parametrize(
    "changes,argument",
    [
        ({"y_train": np.zeros(29, np.int64)}, "y_train"),
        ({"x_meta": torch.zeros(6, 4)}, "x_meta"),
        ({"x_train": "pixels"}, "x_train"),
        ({"y_test": np.full(9, 0.5)}, "y_test"),
        ({"corrupted": np.zeros(29, bool)}, "corrupted"),
        ({"corrupted": np.zeros(30, np.int64)}, "corrupted"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_arrays_name_the_argument(changes, argument):
    a = toy()
    a.update(changes)
    with pytest.raises(ValidationError) as e:
        problem_from_arrays(**a)
    assert e.value.argument == argument


class Pairs(Dataset):
    """A map-style Dataset yielding (tensor image, int label)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return torch.as_tensor(self.x[i]), int(self.y[i])


class Stream(IterableDataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        return iter(zip(torch.as_tensor(self.x), torch.as_tensor(self.y)))


def test_torch_datasets_are_stacked():
    a = toy(shape=(1, 4, 4))
    train = Pairs(a["x_train"], a["y_train"])
    meta = TensorDataset(torch.as_tensor(a["x_meta"]), torch.as_tensor(a["y_meta"]))
    test = Stream(a["x_test"], a["y_test"])
    q = problem_from_datasets(train, meta, test, name="ds")
    assert q.x_train.shape == (30, 1, 4, 4) and q.x_test.shape == (9, 1, 4, 4) and q.num_classes == 3
    for k, v in a.items():
        assert np.allclose(getattr(q, k), v) and getattr(q, k).dtype == (np.float32 if k[0] == "x" else np.int64)
    assert problem_from_datasets(train, meta, test, num_classes=4).num_classes == 4


@pytest.mark.parametrize("which", ["empty", "not-pairs", "ragged", "not-a-dataset"])
def test_bad_datasets_name_the_argument(which):
    a = toy()
    good = Pairs(a["x_train"], a["y_train"])
    bad = {
        "empty": Pairs(a["x_meta"][:0], a["y_meta"][:0]),
        "not-pairs": TensorDataset(torch.zeros(3, 5)),
        "ragged": Pairs([np.zeros(5), np.zeros(4)], [0, 1]),
        "not-a-dataset": 42,
    }[which]
    with pytest.raises(ValidationError) as e:
        problem_from_datasets(good, bad, good)
    assert e.value.argument == "meta"


def test_minority_mask_is_validated_and_grouped():
    a = toy()
    q = problem_from_arrays(**a, minority=a["y_train"] == 2)
    assert set(q.groups()) == {"minority", "majority"}
    assert np.array_equal(q.groups()["majority"], a["y_train"] != 2)
    with pytest.raises(ValidationError) as e:
        SelectionProblem(name="t", **{k: problem_from_arrays(**a).__dict__[k] for k in a}, num_classes=3,
                         minority=np.zeros(3, bool))
    assert e.value.argument == "minority"
