"""Only a subset of the parameters sampled (the last block of a tiny GPT-2, a LoRA adapter, the last layer of
an MLP): θ, its prior, the pSGLD state and the gradients cover only the sampled parameters, the frozen ones
keep their values, the fused gradient equals autograd of the Pyro trace, and a checkpointed run resumes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pyrodps.bads.kernel import BADSKernel
from pyrodps.errors import ValidationError
from pyrodps.models import BADSModel, MinibatchStream
from pyrodps.models.data import Batch
from pyrodps.models.likelihoods import Categorical
from pyrodps.models.networks import penultimate
from pyrodps.models.potential import AutogradGradient, FusedGradient
from pyrodps.models.sequence import TokenSequence
from pyrodps.models.subset import last_blocks, parameter_counts, sample_only, sampled_names
from pyrodps.run import sample
from pyrodps.run.checkpoint import Checkpointer
from pyrodps.sgmcmc import RMSprop
from tests.test_causal_lm import VOCAB, sequences, tiny_gpt2
from tests.test_checkpoint import Interrupted, _Killer
from tests.test_sampler import small_problem

transformers = pytest.importorskip("transformers")


def lm_data():
    from pyrodps.models import SelectionData

    x, y = sequences(24, 0)
    xm, ym = sequences(6, 1)
    return SelectionData(x, y, xm, ym)


def frozen_copy(net: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in net.named_parameters() if not p.requires_grad}


def assert_fused_equals_pyro_trace(model: BADSModel, data, seed: int = 3) -> None:
    fused, ref, func = FusedGradient(model), AutogradGradient(model, "reference"), AutogradGradient(model)
    g = torch.Generator().manual_seed(seed)
    theta = model.initial_theta() + 0.05 * torch.randn(model.layout.size, generator=g)
    batch = Batch.gather(data, torch.tensor([0, 5, 7, 11, 20]), torch.tensor([1, 4]))
    u = torch.randn(5, generator=g)
    a, b, c = fused(theta, u, batch), ref(theta, u, batch), func(theta, u, batch)
    assert a.grad_theta.shape == (model.layout.size,)
    assert float(a.grad_theta.abs().max()) > 0
    for other in (b, c):
        torch.testing.assert_close(a.energy, other.energy, rtol=1e-5, atol=1e-3)
        torch.testing.assert_close(a.grad_theta, other.grad_theta, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(a.grad_u, other.grad_u, rtol=1e-4, atol=1e-5)


def test_last_block_of_a_gpt2_is_theta_and_the_fused_gradient_is_the_pyro_reference():
    net = tiny_gpt2()
    assert last_blocks(net) == ["model.transformer.h.1.*"]
    model = BADSModel(net, TokenSequence(VOCAB), 24, 6, rho_theta=2.0, rho_meta=3.0,
                      sample=last_blocks(net) + ["*.ln_f.*"])
    names = model.layout.names
    assert names == sampled_names(net) and all(".h.1." in n or ".ln_f." in n for n in names)
    sampled, frozen = parameter_counts(net)
    assert model.layout.size == sampled == model.initial_theta().numel() and frozen > sampled
    assert_fused_equals_pyro_trace(model, lm_data())


def test_frozen_parameters_keep_their_values_through_bads_steps():
    net = tiny_gpt2()
    model = BADSModel(net, TokenSequence(VOCAB), 24, 6, sample=last_blocks(net))
    before = frozen_copy(net)
    x0 = lm_data().x_train[:4]
    out0 = net(x0)
    kernel = BADSKernel(model, step_size=1e-3, weight_step_size=0.5, temperature=0.1, preconditioner=RMSprop())
    state = kernel.init(0)
    assert state.theta.shape == state.theta_aux.shape == (model.layout.size,)  # θ and pSGLD's second moment
    stream = MinibatchStream(lm_data(), 8, 4, torch.Generator().manual_seed(0))
    for _ in range(4):
        state, info = kernel.step(state, stream.next())
        assert torch.isfinite(info["energy"])
    after = frozen_copy(net)
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in net.parameters())
    # the chain moved the sampled block, and the partial dictionary drives the same network as the bound one
    params = model.layout.unflatten(state.theta)
    assert not torch.allclose(torch.func.functional_call(net, params, (x0,)), out0)
    torch.testing.assert_close(torch.func.functional_call(net, params, (x0,)), net(x0))
    torch.testing.assert_close(penultimate(net, x0, params), penultimate(net, x0))


def test_selection_is_validated_and_tied_names_select_the_shared_tensor():
    net = tiny_gpt2()
    with pytest.raises(ValidationError, match="sample"):
        sample_only(net, ["*.h.9.*"])
    assert all(p.requires_grad for p in net.parameters())  # a refused selection froze nothing
    with pytest.raises(ValidationError, match="sample"):
        sample_only(net, lambda name, p: False)
    with pytest.raises(ValidationError, match="count"):
        last_blocks(net, 3)
    sample_only(net, "*lm_head.weight")  # tied to the input embedding: that one tensor is sampled
    assert sampled_names(net) == ("model.transformer.wte.weight",)
    sample_only(net, lambda name, p: name.endswith(".bias"))
    assert sampled_names(net) and all(n.endswith(".bias") for n in sampled_names(net))
    net.requires_grad_(False)
    with pytest.raises(ValidationError, match="net"):
        BADSModel(net, TokenSequence(VOCAB), 24, 6)


def test_lora_adapter_alone_is_sampled():
    peft = pytest.importorskip("peft")
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=16, n_layer=2, n_head=2,
                                     bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    base = transformers.GPT2LMHeadModel(config).eval()
    lora = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["c_attn"], lora_dropout=0.0, fan_in_fan_out=True)
    from pyrodps.models.causal_lm import CausalLMLogits

    net = CausalLMLogits(peft.get_peft_model(base, lora), pad_token_id=0)
    model = BADSModel(net, TokenSequence(VOCAB), 24, 6, rho_theta=2.0)
    assert model.layout.names and all("lora_" in n for n in model.layout.names)
    assert model.layout.size == 2 * 2 * (16 + 48)  # r x (in + out) per c_attn, two blocks
    assert_fused_equals_pyro_trace(model, lm_data())
    before = frozen_copy(net)
    kernel = BADSKernel(model, step_size=1e-3, weight_step_size=0.5, temperature=0.1)
    state = kernel.init(0)
    stream = MinibatchStream(lm_data(), 8, 4, torch.Generator().manual_seed(0))
    for _ in range(3):
        state, _ = kernel.step(state, stream.next())
    assert not torch.equal(state.theta, model.initial_theta())
    assert all(torch.equal(v, frozen_copy(net)[k]) for k, v in before.items())


def test_a_checkpointed_subset_run_resumes_bit_for_bit(tmp_path):
    data, model = small_problem()
    model = BADSModel(model.net, Categorical(3), data.num_train, data.num_meta, rho_theta=2.0, sample=["2.*"])
    assert model.layout.names == ("2.weight", "2.bias")
    first_layer = model.net[0].weight.detach().clone()

    def run(kernel, checkpoint=None):
        return sample(kernel, lambda g: MinibatchStream(data, 16, 4, g), num_steps=40, burn_in=10, thin=5,
                      seed=3, track=("theta",), progress=False, checkpoint=checkpoint)

    def kernel():
        return BADSKernel(model, step_size=1e-3, weight_step_size=0.3, preconditioner=RMSprop())

    reference = run(kernel())
    with pytest.raises(Interrupted):
        run(_Killer(kernel(), 23), Checkpointer(tmp_path / "c.pt", 10, {}))
    resumed = run(kernel(), Checkpointer(tmp_path / "c.pt", 10, {}))
    assert resumed.extras["resumed_at"]
    assert reference.draws["theta"].shape[-1] == model.layout.size == 8 * 3 + 3
    assert torch.equal(reference.draws["theta"], resumed.draws["theta"])
    assert torch.equal(model.net[0].weight, first_layer)
