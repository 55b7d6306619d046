"""Restructuring preserves behaviour: the fixed list of runs in :mod:`tests.behaviour_runs` gives
bit-identical results (``np.array_equal``) to the ones recorded before the restructuring."""

import numpy as np

from tests.behaviour_runs import GOLDEN, run_all


def test_fixed_runs_are_bit_identical_to_the_recorded_ones():
    golden = np.load(GOLDEN)
    now = run_all()
    assert sorted(now) == sorted(golden.files)
    changed = [name for name in golden.files if not np.array_equal(now[name], golden[name])]
    assert not changed, f"results changed: {changed}"
