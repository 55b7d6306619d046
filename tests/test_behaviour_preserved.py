"""Restructuring preserves behaviour: the fixed list of runs in :mod:`tests.behaviour_runs` gives
bit-identical results (``np.array_equal``) to the ones recorded before the restructuring.

One exception, by design: the *energy* of the weight-network runs (a diagnostic the sampler never
reads) is compared to within 2 units in the last place. Issue #12 wrote the BADS density once
(:class:`pyrodps.models.potential.BADSPotential`); the weight-network path used to sum the same terms
in another order, and float32 rounding of a sum of ~5e4 moves its last bit. Its θ, weights and
predictions are still bit-identical.

One intended change since: issue #13 gave the weight network's φ block a floor on pSGLD's ``λ``
(:meth:`pyrodps.bads.kernel.BADSKernel._phi_sampler`), so the weight-network runs were re-recorded;
every other run was checked unchanged when they were.

Issue #14 stored the weight statistics as float32 Welford moments, which moves ``weight_mean`` and
``weight_std`` in their last float32 bits; and the runs are now made with the CPU's vector code paths
pinned (:data:`tests.behaviour_runs.PINNED_ENV`). The
file was re-recorded for both at once, after checking that every array other than ``weight_mean`` and
``weight_std`` was bit-identical to the unpinned code before the change, run pinned.

Pinning still leaves an Intel CPU's last bits apart from an AMD one's, so issue #16's session recorded a
second golden on an Intel Xeon, from the code of the first recording (``git worktree`` of its commit), and
a run now has to reproduce one of the two bit for bit.
"""

import numpy as np

from tests.behaviour_runs import cpu_vendor, golden_files, run_pinned

ULP_TOLERANT = ("bads-weightnet/energy", "bads+weightnet-chains2/energy")


def changed_arrays(now: dict[str, np.ndarray], golden: np.lib.npyio.NpzFile) -> list[str]:
    """The arrays of ``now`` that differ from ``golden`` (the ULP-tolerant energies: by more than 2 ULP)."""
    assert sorted(now) == sorted(golden.files)
    changed = []
    for name in golden.files:
        if name.endswith(ULP_TOLERANT):
            a, b = now[name], golden[name]
            if a.shape != b.shape or not np.all(np.abs(a - b) <= 2 * np.spacing(np.maximum(np.abs(a), np.abs(b)))):
                changed.append(name)
        elif not np.array_equal(now[name], golden[name]):
            changed.append(name)
    return changed


def test_fixed_runs_are_bit_identical_to_the_recorded_ones():
    """The runs reproduce one CPU vendor's golden bit for bit (this CPU's, where one is recorded)."""
    goldens = golden_files()
    assert goldens, "no golden recorded: python -m tests.behaviour_runs --record"
    now = run_pinned()
    report = {}
    for path in goldens:
        with np.load(path) as golden:
            report[path.name] = changed_arrays(now, golden)
        if not report[path.name]:
            return
    assert False, (f"results changed against every recorded golden (this CPU: {cpu_vendor()}): "
                   + "; ".join(f"{name}: {len(c)} arrays, e.g. {c[:3]}" for name, c in report.items()))


def test_the_comparison_catches_a_one_ulp_change():
    """Power check: one array moved by one unit in its last place counts as changed."""
    with np.load(golden_files()[0]) as golden:
        now = {name: golden[name] for name in golden.files}
        name = next(n for n in golden.files if n.endswith("/theta"))
        now[name] = np.nextafter(now[name], np.inf)
        assert changed_arrays(now, golden) == [name]
