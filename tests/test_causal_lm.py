"""A tiny randomly initialised GPT-2 (built from a config, nothing downloaded) as θ: the fused gradient
equals autograd of the Pyro trace, and BADS steps run on CPU."""

from __future__ import annotations

import pytest
import torch

from pyrodps.bads.kernel import BADSKernel
from pyrodps.models import BADSModel, MinibatchStream, SelectionData
from pyrodps.models.causal_lm import CausalLMLogits
from pyrodps.models.data import Batch
from pyrodps.models.potential import AutogradGradient, FusedGradient
from pyrodps.models.sequence import IGNORE_INDEX, TokenSequence, causal_lm_targets

transformers = pytest.importorskip("transformers")
VOCAB, LENGTH = 40, 10


def tiny_gpt2(seed: int = 0) -> CausalLMLogits:
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=16, n_layer=2, n_head=2,
                                     bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(seed)
    return CausalLMLogits(transformers.GPT2LMHeadModel(config).eval(), pad_token_id=0)


def sequences(n: int, seed: int, vocab: int = VOCAB, low: int = 3, min_length: int = 5
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded token sequences (ids ``low..vocab-1``, 0 pads) with a 3-token prompt; targets score
    the response only."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(low, vocab, (n, LENGTH), generator=g)
    lengths = torch.randint(min_length, LENGTH + 1, (n,), generator=g)
    mask = torch.arange(LENGTH)[None, :] < lengths[:, None]
    ids[~mask] = 0
    return ids, causal_lm_targets(ids, mask.long(), prompt_lengths=torch.full((n,), 3))


def lm_model() -> tuple[BADSModel, SelectionData]:
    net = tiny_gpt2()
    x, y = sequences(24, 0)
    xm, ym = sequences(6, 1)
    data = SelectionData(x, y, xm, ym)
    model = BADSModel(net, TokenSequence(VOCAB), 24, 6, rho_theta=2.0, rho_meta=3.0)
    return model, data


def test_tied_weights_are_one_block_of_theta():
    model, _ = lm_model()
    names = list(model.layout.unflatten(model.initial_theta()))
    assert not any(n.endswith("lm_head.weight") for n in names)  # tied to the input embedding
    assert model.layout.size == sum(p.numel() for p in model.net.parameters())


def test_fused_gradient_of_a_causal_lm_equals_the_pyro_reference():
    model, data = lm_model()
    torch.testing.assert_close(model.likelihood.nll(model.net(data.x_train), data.y_train),
                               -model.likelihood.distribution(model.net(data.x_train)).log_prob(data.y_train))
    fused, ref = FusedGradient(model), AutogradGradient(model, "reference")
    g = torch.Generator().manual_seed(3)
    theta = model.initial_theta() + 0.02 * torch.randn(model.layout.size, generator=g)
    batch = Batch.gather(data, torch.tensor([0, 5, 7, 11, 20]), torch.tensor([1, 4]))
    u = torch.randn(5, generator=g)
    a, b = fused(theta, u, batch), ref(theta, u, batch)
    torch.testing.assert_close(a.energy, b.energy, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(a.grad_theta, b.grad_theta, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a.grad_u, b.grad_u, rtol=1e-4, atol=1e-5)
    assert (batch.y_train != IGNORE_INDEX).any(1).all()


def test_bads_steps_on_a_tiny_gpt2():
    model, data = lm_model()
    kernel = BADSKernel(model, step_size=1e-4, weight_step_size=3.0, temperature=0.1, weight_update="slice")
    state = kernel.init(0)
    stream = MinibatchStream(data, 8, None, torch.Generator().manual_seed(0))
    theta0 = state.theta.clone()
    for _ in range(6):
        state, info = kernel.step(state, stream.next())
        assert torch.isfinite(info["energy"]) and ((info["w"] > 0) & (info["w"] < 1)).all()
    assert not torch.equal(state.theta, theta0) and torch.isfinite(state.theta).all()
