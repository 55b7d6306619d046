import pytest
import torch

# The tests run many tiny tensor ops, where intra-op threads only add synchronisation cost
# (and stall badly when another process holds a core).
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Caches the library writes (the text scenarios' embeddings) go to a folder of this session, not
    the user's home, unless PYRODPS_CACHE is set."""
    import os

    if "PYRODPS_CACHE" in os.environ:
        yield
        return
    os.environ["PYRODPS_CACHE"] = str(tmp_path_factory.mktemp("pyrodps-cache"))
    yield
    del os.environ["PYRODPS_CACHE"]


@pytest.fixture(autouse=True)
def _deterministic_torch():
    """Tests draw their randomness from explicit generators; keep the global one fixed too."""
    torch.manual_seed(0)
    yield


_FROM_WORKERS = {"count": 0}  # fuzzed cases counted by pytest-xdist workers, summed on the controller


def _local_fuzz_count() -> int:
    import sys

    fuzz = sys.modules.get("tests.test_fuzz")
    return fuzz.FUZZ_CASES["count"] if fuzz is not None else 0


def pytest_sessionfinish(session):
    """On a pytest-xdist worker: hand the number of fuzzed cases to the controller."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["fuzz_count"] = _local_fuzz_count()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _FROM_WORKERS["count"] += getattr(node, "workeroutput", {}).get("fuzz_count", 0)


def pytest_terminal_summary(terminalreporter):
    """Say how many fuzzed bad inputs ran (tests/test_fuzz.py)."""
    count = _local_fuzz_count() + _FROM_WORKERS["count"]
    if count:
        terminalreporter.write_line(f"fuzzed bad inputs handled: {count}")
