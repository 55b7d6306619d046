import pytest
import torch

# The tests run many tiny tensor ops, where intra-op threads only add synchronisation cost
# (and stall badly when another process holds a core).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    """Tests draw their randomness from explicit generators; keep the global one fixed too."""
    torch.manual_seed(0)
    yield


def pytest_terminal_summary(terminalreporter):
    """Say how many fuzzed bad inputs ran (tests/test_fuzz.py)."""
    import sys

    fuzz = sys.modules.get("tests.test_fuzz")
    if fuzz is not None and fuzz.FUZZ_CASES["count"]:
        terminalreporter.write_line(f"fuzzed bad inputs handled: {fuzz.FUZZ_CASES['count']}")
