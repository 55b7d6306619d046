"""The sampler's fused gradient equals autograd of the Pyro trace (the specification)."""

import pytest
import torch

from pyrodps.models import Batch, Categorical, Gaussian
from pyrodps.models.potential import AutogradGradient, FusedGradient
from tests.test_model import PRIORS, classification_data, make_model, regression_data


@pytest.mark.parametrize("prior", PRIORS, ids=repr)
@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
@pytest.mark.parametrize("need_theta", [True, False])
def test_fused_gradient_matches_pyro_reference(prior, kind, need_theta):
    if kind == "categorical":
        model, data = make_model(Categorical(3), 3, prior), classification_data()
    else:
        model, data = make_model(Gaussian(0.5), 1, prior), regression_data()
    fused, ref, functional = FusedGradient(model), AutogradGradient(model, "reference"), AutogradGradient(model)
    g = torch.Generator().manual_seed(11)
    for trial in range(4):
        theta = model.initial_theta() + 0.5 * torch.randn(model.layout.size, generator=g)
        u = 2.0 * torch.randn(20, generator=g)
        it = torch.randperm(20, generator=g)[: 4 + trial]
        im = torch.randperm(6, generator=g)[: 2 + trial % 3]
        batch = Batch.gather(data, it, im)
        a = fused(theta, u[it], batch, need_theta)
        for other in (ref(theta, u[it], batch, need_theta), functional(theta, u[it], batch, need_theta)):
            torch.testing.assert_close(a.energy, other.energy, rtol=1e-5, atol=1e-4)
            torch.testing.assert_close(a.grad_u, other.grad_u, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(a.nll_train, other.nll_train, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(a.nll_meta, other.nll_meta, rtol=1e-5, atol=1e-6)
            if need_theta:
                torch.testing.assert_close(a.grad_theta, other.grad_theta, rtol=1e-4, atol=1e-4)
            else:
                assert a.grad_theta is None and other.grad_theta is None


@pytest.mark.parametrize("prior", PRIORS, ids=repr)
def test_closed_form_weight_prior_gradient(prior):
    u = torch.linspace(-8, 8, 201, dtype=torch.float64)
    auto = super(type(prior), prior).grad_log_prob_u(u)
    torch.testing.assert_close(prior.grad_log_prob_u(u), auto)


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_fused_companion_gradient_matches_pyro_reference(kind):
    if kind == "categorical":
        model, data = make_model(Categorical(3), 3, PRIORS[1]), classification_data()
    else:
        model, data = make_model(Gaussian(0.5), 1, PRIORS[2]), regression_data()
    fused, ref, functional = FusedGradient(model), AutogradGradient(model, "reference"), AutogradGradient(model)
    g = torch.Generator().manual_seed(3)
    for trial in range(3):
        theta = model.initial_theta() + 0.5 * torch.randn(model.layout.size, generator=g)
        it = torch.randperm(20, generator=g)[: 4 + trial]
        w = torch.rand(it.shape[0], generator=g)
        batch = Batch.gather(data, it, torch.arange(3))
        a = fused.companion(theta, w, batch)
        for other in (ref.companion(theta, w, batch), functional.companion(theta, w, batch)):
            torch.testing.assert_close(a.grad_theta, other.grad_theta, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(a.nll_train, other.nll_train, rtol=1e-5, atol=1e-6)


WEIGHT_NETS = [(("loss", "label"), 6), (("input",), 6), (("input", "label", "loss"), 6), (("group",), 0),
               (("group", "loss"), 0), (("embedding", "label"), 6)]


@pytest.mark.parametrize("features,hidden,kind", [(f, h, k) for f, h in WEIGHT_NETS for k in ("categorical", "gaussian")]
                         + [(("label",), 0, "categorical")])  # one latent per class needs class labels
def test_weight_network_gradients_match_pyro_reference(features, hidden, kind):
    """Amortised weights, grouped weights among them (``hidden=0``: ``u_i = φ · h_i``)."""
    from pyrodps.models import BADSModel
    from pyrodps.models.weight_net import WeightNet

    base = make_model(Categorical(3), 3, PRIORS[1]) if kind == "categorical" else make_model(Gaussian(0.5), 1, PRIORS[2])
    data = classification_data() if kind == "categorical" else regression_data()
    groups = torch.arange(20) % 4
    from pyrodps.models.networks import last_linear

    wn = WeightNet((5,), 3 if kind == "categorical" else None, features=features, hidden=hidden, rho_phi=2.0, seed=1,
                   groups=groups, embedding_dim=last_linear(base.net).in_features)
    model = BADSModel(base.net, base.likelihood, 20, 6, weight_prior=base.weight_prior, rho_theta=3.0,
                      rho_meta=2.0, theta_prior=base.theta_prior, weight_net=wn)
    fused, ref = FusedGradient(model), AutogradGradient(model, "reference")
    g = torch.Generator().manual_seed(5)
    for trial in range(3):
        theta = model.initial_theta() + 0.5 * torch.randn(model.layout.size, generator=g)
        phi = wn.initial_phi() + 0.5 * torch.randn(wn.layout.size, generator=g)
        batch = Batch.gather(data, torch.randperm(20, generator=g)[: 5 + trial], torch.arange(2 + trial))
        a, b = fused(theta, phi, batch), ref(theta, phi, batch)
        torch.testing.assert_close(a.energy, b.energy, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(a.grad_theta, b.grad_theta, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(a.grad_phi, b.grad_phi, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(a.w, b.w, rtol=1e-5, atol=1e-6)
        assert a.grad_u is None


@pytest.mark.parametrize("hidden", [0, 6])
def test_the_log_z_term_reaches_phi_as_autograd_of_its_pyro_form(hidden):
    """``companion_phi_grad`` is ``-∇_φ`` of ``ρ_θ (N/B) Σ_i w_i(φ) d̄_i``, the term whose w-gradient is
    ``-∂ log Z/∂w_i``; checked against autograd of that term with w_i(φ) read off the Pyro trace."""
    from pyrodps.models import BADSModel
    from pyrodps.models.potential import BADSPotential
    from pyrodps.models.weight_net import WeightNet

    base = make_model(Categorical(3), 3, PRIORS[1])
    data = classification_data()
    wn = WeightNet((5,), 3, features=("group", "loss"), hidden=hidden, rho_phi=2.0, seed=1, groups=torch.arange(20) % 4)
    model = BADSModel(base.net, base.likelihood, 20, 6, weight_prior=base.weight_prior, rho_theta=3.0, rho_meta=2.0,
                      theta_prior=base.theta_prior, weight_net=wn, log_z="companion")
    g = torch.Generator().manual_seed(2)
    theta = model.initial_theta() + 0.5 * torch.randn(model.layout.size, generator=g)
    phi = (wn.initial_phi() + 0.5 * torch.randn(wn.layout.size, generator=g)).requires_grad_(True)
    batch = Batch.gather(data, torch.randperm(20, generator=g)[:7], torch.arange(3))
    d_bar = torch.rand(7, generator=g)
    trace = model.reference_trace(theta, phi, batch)
    deviance = trace.nodes["train_nll"]["value"] - model.reference_nll(batch.y_train)
    w = -trace.nodes["train_loss"]["fn"].log_factor / (model.rho_theta * deviance)  # w_i(φ) from the factor
    term = torch.dot(w, d_bar) * model.rho_theta * 20 / 7
    (expected,) = torch.autograd.grad(-term, (phi,))
    features = BADSPotential(model).weight_features(batch, deviance, theta)
    got = BADSPotential(model).companion_phi_grad(phi.detach(), features, d_bar)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("features,hidden,kind", [(("group",), 0, "categorical"), (("group",), 0, "gaussian"),
                                                  (("loss", "label"), 6, "categorical")])
def test_product_weights_gradients_match_pyro_reference(features, hidden, kind):
    """Per-point times group weights, ``w_i = sigmoid(u_i) sigmoid(g_φ(h_i))``: energy, ∇θ, ∇φ and the
    table entries' conditional gradient of the fused path equal autograd of the Pyro trace; the table's
    conditional is the plain one with ``δ_i = v_i d_i``."""
    from pyrodps.models import BADSModel
    from pyrodps.models.potential import BADSPotential
    from pyrodps.models.weight_net import WeightNet

    base = make_model(Categorical(3), 3, PRIORS[1]) if kind == "categorical" else make_model(Gaussian(0.5), 1, PRIORS[2])
    data = classification_data() if kind == "categorical" else regression_data()
    wn = WeightNet((5,), 3 if kind == "categorical" else None, features=features, hidden=hidden, rho_phi=2.0, seed=1,
                   groups=torch.arange(20) % 4)
    model = BADSModel(base.net, base.likelihood, 20, 6, weight_prior=base.weight_prior, rho_theta=3.0,
                      rho_meta=2.0, theta_prior=base.theta_prior, weight_net=wn, product=True)
    fused, ref, functional = FusedGradient(model), AutogradGradient(model, "reference"), AutogradGradient(model)
    g = torch.Generator().manual_seed(7)
    for trial in range(3):
        theta = model.initial_theta() + 0.5 * torch.randn(model.layout.size, generator=g)
        phi = wn.initial_phi() + 0.5 * torch.randn(wn.layout.size, generator=g)
        batch = Batch.gather(data, torch.randperm(20, generator=g)[: 5 + trial], torch.arange(2 + trial))
        u = torch.randn(batch.idx_train.shape[0], generator=g)
        a, b, c = fused(theta, (u, phi), batch), ref(theta, (u, phi), batch), functional(theta, (u, phi), batch)
        for other in (b, c):
            torch.testing.assert_close(a.energy, other.energy, rtol=1e-5, atol=1e-4)
            torch.testing.assert_close(a.grad_theta, other.grad_theta, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(a.grad_phi, other.grad_phi, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(a.grad_u, other.grad_u, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(a.w, other.w, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(a.weight_scale, other.weight_scale, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a.w, torch.sigmoid(u) * a.weight_scale)
        expected = BADSPotential(model).weight_conditional_grad(u, a.deviance_train * a.weight_scale, torch.sigmoid(u))
        torch.testing.assert_close(a.grad_u, expected)
    from pyrodps.errors import ValidationError

    with pytest.raises(ValidationError, match="weights"):
        fused(theta, phi, batch)  # product weights need the pair (u_B, φ)
