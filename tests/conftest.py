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
