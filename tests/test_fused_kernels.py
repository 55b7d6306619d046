"""The fused sampler updates (:mod:`pyrodps.sgmcmc.fused`): Triton kernels against the torch reference.

Without a CUDA device the Triton kernels run on CPU tensors under Triton's interpreter
(``TRITON_INTERPRET=1``, set here before Triton is imported); tests that need Triton skip when it
is not installed, and those marked ``gpu`` need a CUDA device (deselected by default).
"""

import math
import os

import pytest
import torch
from scipy import stats
from torch import nn

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from pyrodps.bads import BADSKernel
from pyrodps.errors import ValidationError
from pyrodps.models import (
    BADSModel,
    BetaWeight,
    Categorical,
    MinibatchStream,
    SelectionData,
    TruncatedGaussianWeight,
    UniformWeight,
)
from pyrodps.sgmcmc import RMSprop, fused
from pyrodps.sgmcmc.fused import NoiseKey, dispatch, philox_normal, reference

SEED = 12_345_678_901  # > 2^32: both key words matter


@pytest.fixture
def tk():
    """The Triton kernels module, runnable on this machine's tensors (else skip)."""
    pytest.importorskip("triton")
    from pyrodps.sgmcmc.fused import triton_kernels

    if not torch.cuda.is_available() and not triton_kernels.INTERPRETED:
        pytest.skip("Triton was imported before TRITON_INTERPRET=1 was set: cannot run kernels on CPU")
    return triton_kernels


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def kernel_noise(n: int, key: NoiseKey, block: int = 4096) -> torch.Tensor:
    """The in-kernel noise itself: the SGLD update of θ = 0, g = 0 with η = T = 1 is ξ."""
    x = torch.zeros(n, device=device())
    return fused.sgld_update_(x, torch.zeros_like(x), step_size=1.0, temperature=1.0, noise=key,
                              backend="triton", block=block)


# ----------------------------------------------------------------------------- the generator
def test_philox_reference_matches_random123_known_answers():
    def run(ctr, key):
        out = reference.philox4x32(key[0] | key[1] << 32, *(torch.tensor([c]) for c in ctr))
        return [int(o) for o in out]

    assert run([0, 0, 0, 0], [0, 0]) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    assert run([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2) == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]
    assert run([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0]) == [
        0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]


def test_reference_noise_is_a_function_of_the_counter_only():
    full = philox_normal(SEED, 7, 2, 1000)
    assert torch.equal(philox_normal(SEED, 7, 2, 300, start=500), full[500:800])
    assert not torch.equal(philox_normal(SEED, 8, 2, 1000), full)


def test_in_kernel_noise_is_the_reference_stream_and_block_invariant(tk):
    key = NoiseKey(SEED, 41, 3)
    n = 8190  # not a multiple of the block: the tail is masked
    small, large = kernel_noise(n, key, block=128), kernel_noise(n, key, block=1024)
    assert torch.equal(small, large)
    assert torch.equal(kernel_noise(n, key, block=1024), large)  # same (seed, step) → same noise
    torch.testing.assert_close(large.cpu(), philox_normal(SEED, 41, 3, n), rtol=0, atol=2e-6)


def test_in_kernel_noise_moments_and_independence(tk):
    n = 1 << 16
    z = kernel_noise(n, NoiseKey(SEED, 5, 0)).double().cpu()
    se = 1 / math.sqrt(n)
    assert abs(z.mean()) < 5 * se
    assert abs(z.var() - 1) < 5 * math.sqrt(2) * se
    assert abs((z**3).mean()) < 5 * math.sqrt(15) * se  # skewness 0
    assert abs((z**4).mean() - 3) < 5 * math.sqrt(96) * se  # kurtosis 3
    assert stats.kstest(z.numpy(), "norm").pvalue > 1e-3
    # neighbours (same Philox call for lags 1-3, next call for 4) and other keys are uncorrelated
    for lag in (1, 2, 3, 4):
        assert abs(torch.corrcoef(torch.stack((z[:-lag], z[lag:])))[0, 1]) < 5 * se
    for other in (NoiseKey(SEED + 1, 5, 0), NoiseKey(SEED, 6, 0), NoiseKey(SEED, 5, 1)):
        y = kernel_noise(n, other).double().cpu()
        assert abs(torch.corrcoef(torch.stack((z, y)))[0, 1]) < 5 * se


# ----------------------------------------------------------------------------- flat (p)SGLD update
@pytest.mark.parametrize("psgld", [False, True], ids=["sgld", "psgld"])
def test_fused_sgld_matches_reference_with_passed_noise(tk, psgld):
    g = torch.Generator().manual_seed(0)
    n = 5003
    theta, grad, noise = (torch.randn(n, generator=g) for _ in range(3))
    v = torch.rand(n, generator=g) if psgld else None
    out = {}
    for backend in ("torch", "triton"):
        th, vv = theta.clone().to(device()), None if v is None else v.clone().to(device())
        fused.sgld_update_(th, grad.to(device()), step_size=3e-3, temperature=0.5, noise=noise.to(device()),
                           v=vv, alpha=0.9, eps=1e-4, backend=backend)
        out[backend] = (th.cpu(), None if vv is None else vv.cpu())
    torch.testing.assert_close(out["triton"][0], out["torch"][0], rtol=1e-6, atol=1e-6)
    if psgld:
        torch.testing.assert_close(out["triton"][1], out["torch"][1], rtol=1e-6, atol=1e-7)


def test_fused_sgld_with_in_kernel_noise_matches_reference_with_the_same_key(tk):
    g = torch.Generator().manual_seed(1)
    theta, grad, v = torch.randn(3000, generator=g), torch.randn(3000, generator=g), torch.rand(3000, generator=g)
    key = NoiseKey(SEED, 9, 0)
    a, va = theta.clone(), v.clone()
    fused.sgld_update_(a, grad, step_size=1e-2, temperature=1.0, noise=key, v=va, backend="torch")
    b, vb = theta.clone().to(device()), v.clone().to(device())
    fused.sgld_update_(b, grad.to(device()), step_size=1e-2, temperature=1.0, noise=key, v=vb, backend="triton")
    torch.testing.assert_close(b.cpu(), a, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(vb.cpu(), va, rtol=1e-6, atol=1e-7)


def test_torch_backend_is_the_integrators_update_bit_for_bit():
    g = torch.Generator().manual_seed(2)
    theta, grad = torch.randn(100, generator=g), torch.randn(100, generator=g)
    precond = RMSprop(alpha=0.95, eps=1e-4)
    va, vb = precond.init(theta), precond.init(theta)
    a = theta.clone()
    from pyrodps.sgmcmc.integrators import langevin_step_, langevin_update_

    langevin_update_(a, grad.clone(), 1e-2, 0.3, generator=torch.Generator().manual_seed(5), step=0,
                     preconditioner=precond, v=va)
    b = theta.clone()
    inv = precond.update_(vb, grad.clone())
    langevin_step_(b, grad.clone(), 1e-2, 0.3, torch.randn(100, generator=torch.Generator().manual_seed(5)), inv)
    assert torch.equal(a, b) and torch.equal(va, vb)


# ----------------------------------------------------------------------------- weight-table block
PRIORS = [UniformWeight(), BetaWeight(2.0, 3.0), TruncatedGaussianWeight(0.3, 0.2)]


class ShiftedUniform(UniformWeight):
    """A prior the kernel has no closed form for: its gradient is passed in."""

    def grad_log_prob_u(self, u: torch.Tensor) -> torch.Tensor:
        return super().grad_log_prob_u(u) + 0.25


def weight_problem(n: int = 300, b: int = 77):
    g = torch.Generator().manual_seed(3)
    u = 2 * torch.randn(n, generator=g)
    idx = torch.randperm(n, generator=g)[:b]
    nll, cnll, noise = torch.rand(b, generator=g) * 3, torch.rand(b, generator=g) * 3, torch.randn(b, generator=g)
    return u, idx, nll, cnll, noise


@pytest.mark.parametrize("prior", [*PRIORS, ShiftedUniform()], ids=["uniform", "beta", "truncgauss", "custom"])
@pytest.mark.parametrize("companion", [False, True], ids=["ignore", "companion"])
def test_fused_weight_block_matches_reference(tk, prior, companion):
    u, idx, nll, cnll, noise = weight_problem()
    out = {}
    for backend in ("torch", "triton"):
        d = device()
        uu = u.clone().to(d)
        w = fused.weight_block_update_(uu, idx.to(d), step_size=0.3, temperature=0.7, rho_theta=2.0,
                                       noise=noise.to(d), grad_base=prior.grad_log_prob_u(u[idx]).to(d),
                                       nll=nll.to(d),
                                       companion_nll=cnll.to(d) if companion else None, backend=backend)
        out[backend] = (uu.cpu(), w.cpu())
    (ua, wa), (ub, wb) = out["torch"], out["triton"]
    rest = torch.ones(u.numel(), dtype=torch.bool)
    rest[idx] = False
    assert torch.equal(ub[rest], u[rest])  # only the batch entries are written
    torch.testing.assert_close(ub, ua, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(wb, wa, rtol=1e-6, atol=1e-6)


def test_fused_weight_block_with_passed_gradient_and_in_kernel_noise(tk):
    u, idx, nll, _, _ = weight_problem()
    base = BetaWeight(2.0, 3.0).grad_log_prob_u(u[idx])
    key = NoiseKey(SEED, 3, fused.STREAM_U)
    ua, ub = u.clone(), u.clone().to(device())
    wa = fused.weight_block_update_(ua, idx, step_size=0.1, temperature=1.0, rho_theta=5.0, noise=key,
                                    grad_base=base.clone(), nll=nll, backend="torch")
    wb = fused.weight_block_update_(ub, idx.to(device()), step_size=0.1, temperature=1.0, rho_theta=5.0, noise=key,
                                    grad_base=base.to(device()), nll=nll.to(device()), backend="triton", block=32)
    torch.testing.assert_close(ub.cpu(), ua, rtol=1e-6, atol=2e-6)
    torch.testing.assert_close(wb.cpu(), wa, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- dispatch
def test_dispatch_rule(monkeypatch):
    monkeypatch.delenv(fused.ENV_VAR, raising=False)
    assert fused.resolve_backend(None, "cpu") == "torch"
    assert fused.resolve_backend("auto", "cpu") == "torch"
    assert fused.resolve_backend("torch", "cuda") == "torch"
    monkeypatch.setenv(fused.ENV_VAR, "torch")
    assert fused.resolve_backend(None, "cuda") == "torch"
    monkeypatch.setenv(fused.ENV_VAR, "fast")
    with pytest.raises(ValidationError, match="PYRODPS_KERNELS"):
        fused.resolve_backend(None, "cpu")
    with pytest.raises(ValidationError, match="backend"):
        fused.check_backend("cuda")
    monkeypatch.setattr(dispatch, "_triton_module", lambda: None)  # as without Triton installed
    assert fused.resolve_backend("auto", "cuda") == "torch"
    with pytest.raises(ValidationError, match="pip install"):
        fused.resolve_backend("triton", "cpu")


def test_forced_triton_runs_the_kernels_on_cpu_under_the_interpreter(tk, monkeypatch):
    monkeypatch.setenv(fused.ENV_VAR, "triton")
    assert fused.resolve_backend(None, device()) == "triton"
    assert fused.resolve_backend("auto", "cuda") == "triton"


# ----------------------------------------------------------------------------- wired into the sampler
def small_problem(log_z: str = "ignore"):
    g = torch.Generator().manual_seed(0)
    data = SelectionData(torch.randn(60, 4, generator=g), torch.randint(0, 3, (60,), generator=g),
                         torch.randn(9, 4, generator=g), torch.randint(0, 3, (9,), generator=g))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).to(device())
    data = SelectionData(*(t.to(device()) for t in (data.x_train, data.y_train, data.x_meta, data.y_meta)))
    return data, BADSModel(net, Categorical(3), 60, 9, rho_theta=2.0, log_z=log_z)


def test_bads_kernel_on_triton_is_the_reference_update_with_the_same_noise(tk):
    """One companion pSGLD step on the Triton backend = the torch reference fed the counter-based noise."""
    data, model = small_problem("companion")
    kernel = BADSKernel(model, step_size=1e-3, weight_step_size=0.3, temperature=0.5, preconditioner=RMSprop(),
                        backend="triton")
    state = kernel.init(3)
    batch = MinibatchStream(data, 16, 4, torch.Generator().manual_seed(1)).next()
    seed, p, idx = state.generator.initial_seed(), model.layout.size, batch.idx_train
    theta, comp, u = state.theta.clone(), state.companion.clone(), state.u.clone()
    v, vc = state.theta_aux.clone(), state.companion_aux.clone()
    est = kernel.gradient(theta, u[idx], batch, True, False)
    ce = kernel.gradient.companion(comp, est.w, batch)

    def xi(stream: int, n: int) -> torch.Tensor:
        return philox_normal(seed, 0, stream, n, device=theta.device)

    reference.sgld_update_(theta, est.grad_theta, xi(fused.STREAM_THETA, p), 1e-3, 0.5, v)
    reference.sgld_update_(comp, ce.grad_theta, xi(fused.STREAM_COMPANION, p), 1e-3, 0.5, vc)
    w = reference.weight_block_update_(u, idx, xi(fused.STREAM_U, idx.numel()), 0.3, 0.5, model.rho_theta,
                                       grad_base=est.grad_u, companion_nll=ce.nll_train)
    state, info = kernel.step(state, batch)
    for got, want in ((state.theta, theta), (state.companion, comp), (state.u, u), (state.theta_aux, v),
                      (state.companion_aux, vc), (info["w"], w)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_bads_kernel_on_triton_is_reproducible(tk):
    data, model = small_problem()
    runs = []
    for _ in range(2):
        kernel = BADSKernel(model, step_size=1e-3, weight_step_size=0.3, backend="triton")
        state = kernel.init(7)
        stream = MinibatchStream(data, 16, 4, torch.Generator().manual_seed(1))
        for _ in range(3):
            state, _ = kernel.step(state, stream.next(), diagnostics=False)
        runs.append(state)
    assert torch.equal(runs[0].theta, runs[1].theta) and torch.equal(runs[0].u, runs[1].u)
    assert state.step == 3


# ----------------------------------------------------------------------------- real GPU
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("n", [1_000_003, 10_000_000])
def test_gpu_fused_psgld_matches_torch_with_the_same_noise(tk, n):
    g = torch.Generator(device="cuda").manual_seed(0)
    theta, grad, noise = (torch.randn(n, generator=g, device="cuda") for _ in range(3))
    v = torch.rand(n, generator=g, device="cuda")
    a, va, b, vb = theta.clone(), v.clone(), theta.clone(), v.clone()
    fused.sgld_update_(a, grad, step_size=1e-3, temperature=1.0, noise=noise, v=va, backend="torch")
    fused.sgld_update_(b, grad, step_size=1e-3, temperature=1.0, noise=noise, v=vb, backend="triton")
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(vb, va, rtol=1e-5, atol=1e-7)
    z = kernel_noise(n, NoiseKey(SEED, 1, 0), block=1024)
    # same uniforms bit for bit; the GPU's fast log/cos/sin may differ in the last bits, and where
    # u₁ ≈ 1 the r = sqrt(-2 log u₁) of Box-Muller magnifies that: allow a few such elements
    err = (z - philox_normal(SEED, 1, 0, n, device="cuda")).abs()
    assert float((err > 1e-5).double().mean()) < 1e-4 and float(err.max()) < 1e-2
    assert abs(float(z.double().mean())) < 5 / math.sqrt(n) and abs(float(z.double().var()) - 1) < 8 / math.sqrt(n)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_weight_block_and_sampler_auto_backend(tk):
    u, idx, nll, cnll, noise = (t.cuda() for t in weight_problem(n=100_000, b=4096))
    ua, ub = u.clone(), u.clone()
    common = {"step_size": 0.3, "temperature": 0.7, "rho_theta": 2.0, "noise": noise,
              "grad_base": BetaWeight(2.0, 3.0).grad_log_prob_u(u[idx]), "nll": nll, "companion_nll": cnll}
    wa = fused.weight_block_update_(ua, idx, backend="torch", **common)
    wb = fused.weight_block_update_(ub, idx, backend="auto", **common)
    torch.testing.assert_close(ub, ua, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(wb, wa, rtol=1e-5, atol=1e-6)
    data, model = small_problem()
    kernel = BADSKernel(model, step_size=1e-3, weight_step_size=0.3, preconditioner=RMSprop(), backend="auto")
    state = kernel.init(0)
    stream = MinibatchStream(data, 16, 4, torch.Generator(device="cpu").manual_seed(1))
    for _ in range(5):
        state, info = kernel.step(state, stream.next())
    assert torch.isfinite(state.theta).all() and torch.isfinite(info["energy"])
