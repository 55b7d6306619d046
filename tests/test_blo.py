"""The bi-level optimisation baselines: L2RW and Meta-Weight-Net against independent plain-autograd
implementations, their options, validation, and their runs through ``run_method`` and the CLI."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pyrodps.app.cli import main
from pyrodps.app.methods import METHODS, run_method
from pyrodps.baselines.blo import BLOBatch
from pyrodps.baselines.l2rw import (
    L2RWConfig,
    fit_l2rw,
    l2rw_meta_gradient,
    l2rw_step,
    normalised_positive_part,
)
from pyrodps.baselines.mwn import MWNConfig, fit_mwn, mwn_meta_gradient, mwn_step, weight_network
from pyrodps.data import make_scenario
from pyrodps.errors import ValidationError
from pyrodps.models.likelihoods import Gaussian

B, M, D, C = 12, 7, 5, 3  # train batch, meta batch, input features, classes


@pytest.fixture(scope="module")
def problem():
    return make_scenario("digits-label-noise", seed=0)


def tiny_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, 8), nn.ReLU(), nn.Linear(8, C)).double()


def tiny_batch(seed: int = 1) -> BLOBatch:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (B,), generator=g)
    x_meta = torch.randn(M, D, generator=g, dtype=torch.float64)
    y_meta = torch.randint(0, C, (M,), generator=g)
    return BLOBatch(x, y, x_meta, y_meta)


def l2rw_weights(net, params, batch, *options):
    return normalised_positive_part(l2rw_meta_gradient(net, params, batch, *options))


def params_of(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in net.named_parameters()}


def mlp_forward(p: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The tiny MLP written out by hand: ``W2 relu(W1 x + b1) + b2``."""
    w1, b1, w2, b2 = p
    return torch.relu(x @ w1.T + b1) @ w2.T + b2


def leaf_copies(net: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone().requires_grad_(True) for p in net.parameters()]


# ---------------------------------------------------------------------------------------------
# L2RW


def cross_entropy(out, y):
    return F.cross_entropy(out, y, reduction="none")


def reference_l2rw_u(net, x, y, x_meta, y_meta, alpha=1.0, reduction="sum", loss=cross_entropy):
    """Plain autograd, as the official code: ε = 0, θ̂ = θ - α ∇θ Σ ε_i l_i, u = -∂ meta / ∂ε."""
    theta = leaf_copies(net)
    eps = torch.zeros(x.shape[0], dtype=x.dtype, requires_grad=True)
    train = (eps * loss(mlp_forward(theta, x), y)).sum()
    if reduction == "mean":
        train = train / x.shape[0]
    grads = torch.autograd.grad(train, theta, create_graph=True)
    lookahead = [p - alpha * g for p, g in zip(theta, grads, strict=True)]
    meta = loss(mlp_forward(lookahead, x_meta), y_meta).mean()
    return -torch.autograd.grad(meta, eps)[0]


def test_l2rw_uses_the_likelihood_losses():
    """With a Gaussian likelihood (regression) ``l_i = (y_i - f(x_i))² / (2 s²) + const``."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(D, 8), nn.ReLU(), nn.Linear(8, 1)).double()
    g = torch.Generator().manual_seed(2)
    x, x_meta = torch.randn(B, D, generator=g, dtype=torch.float64), torch.randn(M, D, generator=g, dtype=torch.float64)
    y, y_meta = torch.randn(B, generator=g, dtype=torch.float64), torch.randn(M, generator=g, dtype=torch.float64)
    lik = Gaussian(0.5)

    def gaussian(out, t):
        return (out.squeeze(-1) - t).square() / (2 * 0.25) + math.log(0.5 * math.sqrt(2 * math.pi))

    u_ref = reference_l2rw_u(net, x, y, x_meta, y_meta, loss=gaussian)
    u = l2rw_meta_gradient(net, params_of(net), BLOBatch(x, y, x_meta, y_meta), likelihood=lik)
    assert torch.allclose(u, u_ref, rtol=1e-6, atol=1e-12) and (u_ref > 0).any() and (u_ref < 0).any()


def test_l2rw_weights_match_plain_autograd():
    net, (x, y, xm, ym) = tiny_mlp(), tiny_batch()
    u_ref = reference_l2rw_u(net, x, y, xm, ym)
    w_ref = u_ref.clamp(min=0) / u_ref.clamp(min=0).sum()
    u = l2rw_meta_gradient(net, params_of(net), BLOBatch(x, y, xm, ym))
    w = l2rw_weights(net, params_of(net), BLOBatch(x, y, xm, ym))
    assert torch.allclose(u, u_ref, rtol=1e-6, atol=1e-12)
    assert torch.allclose(w, w_ref, rtol=0, atol=1e-6)
    assert (u_ref > 0).any() and (u_ref < 0).any()  # the batch exercises the clamp


def test_l2rw_u_is_the_gradient_alignment():
    """At ε = 0, u_i = α ∇θ l_i(θ) · ∇θ L_meta(θ): the same quantity from per-example gradients."""
    net, (x, y, xm, ym) = tiny_mlp(), tiny_batch()
    theta = leaf_copies(net)
    g_meta = torch.autograd.grad(F.cross_entropy(mlp_forward(theta, xm), ym), theta)
    alignment = []
    for i in range(B):
        g_i = torch.autograd.grad(
            F.cross_entropy(mlp_forward(theta, x[i : i + 1]), y[i : i + 1]), theta
        )
        alignment.append(sum((a * b).sum() for a, b in zip(g_i, g_meta, strict=True)))
    u = l2rw_meta_gradient(net, params_of(net), BLOBatch(x, y, xm, ym), lookahead_lr=0.5)
    assert torch.allclose(u, 0.5 * torch.stack(alignment), rtol=1e-6, atol=1e-12)


def test_l2rw_weights_are_a_distribution_or_zero():
    net, (x, y, xm, ym) = tiny_mlp(), tiny_batch()
    w = l2rw_weights(net, params_of(net), BLOBatch(x, y, xm, ym))
    assert (w >= 0).all() and torch.isclose(w.sum(), torch.tensor(1.0, dtype=w.dtype))
    assert torch.equal(normalised_positive_part(torch.tensor([-1.0, -2.0, 0.0])), torch.zeros(3))
    assert torch.equal(
        normalised_positive_part(torch.tensor([-1.0, 3.0, 1.0])), torch.tensor([0.0, 0.75, 0.25])
    )


def test_l2rw_lookahead_options_only_scale_u():
    """ "mean" divides the lookahead gradient by B, α multiplies it: u scales, the weights do not."""
    net, (x, y, xm, ym) = tiny_mlp(), tiny_batch()
    p = params_of(net)
    u_sum = l2rw_meta_gradient(net, p, BLOBatch(x, y, xm, ym), 1.0, "sum")
    u_mean = l2rw_meta_gradient(net, p, BLOBatch(x, y, xm, ym), 1.0, "mean")
    u_alpha = l2rw_meta_gradient(net, p, BLOBatch(x, y, xm, ym), 3.0, "sum")
    assert torch.allclose(u_mean, u_sum / B, rtol=1e-6, atol=1e-14)
    assert torch.allclose(u_alpha, 3.0 * u_sum, rtol=1e-6, atol=1e-14)
    assert torch.allclose(
        u_mean, reference_l2rw_u(net, x, y, xm, ym, reduction="mean"), rtol=1e-6, atol=1e-14
    )
    w_sum = l2rw_weights(net, p, BLOBatch(x, y, xm, ym), 1.0, "sum")
    assert torch.allclose(l2rw_weights(net, p, BLOBatch(x, y, xm, ym), 1.0, "mean"), w_sum, atol=1e-12)


def test_l2rw_step_is_a_weighted_momentum_sgd_step():
    net, (x, y, xm, ym) = tiny_mlp(), tiny_batch()
    ref = tiny_mlp()
    w_ref = normalised_positive_part(reference_l2rw_u(ref, x, y, xm, ym))
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    (w_ref * F.cross_entropy(ref(x), y, reduction="none")).sum().backward()
    ref_opt.step()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    w = l2rw_step(net, opt, x, y, xm, ym)
    assert torch.allclose(w, w_ref, atol=1e-12)
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Meta-Weight-Net


def reference_mwn_phi_grad(net, vnet, x, y, x_meta, y_meta, alpha, normalisation="mean"):
    """Plain autograd, as the official ``MW-Net.py``: virtual SGD step with create_graph."""
    theta = leaf_copies(net)
    v1, c1, v2, c2 = leaf_copies(vnet)
    cost = F.cross_entropy(mlp_forward(theta, x), y, reduction="none")
    v = torch.sigmoid(torch.relu(cost.detach()[:, None] @ v1.T + c1) @ v2.T + c2).squeeze(1)
    train = (cost * v).sum() / (x.shape[0] if normalisation == "mean" else v.sum())
    grads = torch.autograd.grad(train, theta, create_graph=True)
    virtual = [p - alpha * g for p, g in zip(theta, grads, strict=True)]
    meta = F.cross_entropy(mlp_forward(virtual, x_meta), y_meta)
    return torch.autograd.grad(meta, [v1, c1, v2, c2]), meta


@pytest.mark.parametrize("normalisation", ["mean", "normalised"])
def test_mwn_meta_gradient_matches_plain_autograd(normalisation):
    net, vnet, (x, y, xm, ym) = tiny_mlp(), weight_network(16, seed=3).double(), tiny_batch()
    ref_grads, ref_meta = reference_mwn_phi_grad(net, vnet, x, y, xm, ym, 0.5, normalisation)
    grads, meta = mwn_meta_gradient(
        net, params_of(net), vnet, params_of(vnet), BLOBatch(x, y, xm, ym), 0.5, normalisation
    )
    assert torch.allclose(meta, ref_meta, rtol=1e-10)
    for (name, g), g_ref in zip(grads.items(), ref_grads, strict=True):
        assert g.abs().sum() > 0, f"no gradient reaches {name} through the virtual step"
        assert torch.allclose(g, g_ref, rtol=1e-6, atol=1e-12), name


def test_mwn_step_matches_plain_autograd():
    """One full step: Adam on φ with the meta gradient, then SGD on θ with the new weights."""
    x, y, xm, ym = tiny_batch()
    net, vnet = tiny_mlp(), weight_network(16, seed=3).double()
    ref, ref_vnet = tiny_mlp(), weight_network(16, seed=3).double()
    ref_grads, _ = reference_mwn_phi_grad(ref, ref_vnet, x, y, xm, ym, 0.1)
    ref_vopt = torch.optim.Adam(ref_vnet.parameters(), lr=1e-3, weight_decay=1e-4)
    for p, g in zip(ref_vnet.parameters(), ref_grads, strict=True):
        p.grad = g
    ref_vopt.step()
    cost = F.cross_entropy(ref(x), y, reduction="none")
    v1, c1, v2, c2 = (p.detach() for p in ref_vnet.parameters())
    w_ref = torch.sigmoid(torch.relu(cost.detach()[:, None] @ v1.T + c1) @ v2.T + c2).squeeze(1)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    ((cost * w_ref).sum() / B).backward()
    ref_opt.step()

    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    vopt = torch.optim.Adam(vnet.parameters(), lr=1e-3, weight_decay=1e-4)
    w = mwn_step(net, opt, vnet, vopt, x, y, xm, ym, virtual_lr=0.1)
    assert ((w > 0) & (w < 1)).all()
    assert torch.allclose(w, w_ref, atol=1e-10)
    for a, b in zip(
        [*net.parameters(), *vnet.parameters()],
        [*ref.parameters(), *ref_vnet.parameters()],
        strict=True,
    ):
        assert torch.allclose(a, b, atol=1e-10)


def test_weight_network_output_lies_in_unit_interval():
    vnet = weight_network(100, seed=0)
    out = vnet(torch.linspace(0, 50, 101)[:, None])
    assert out.shape == (101, 1) and ((out > 0) & (out < 1)).all()


# ---------------------------------------------------------------------------------------------
# validation


@pytest.mark.parametrize(
    "config,argument",
    [
        (L2RWConfig(steps=0), "steps"),
        (L2RWConfig(batch_size=0), "batch_size"),
        (L2RWConfig(meta_batch_size=-1), "meta_batch_size"),
        (L2RWConfig(lr=0.0), "lr"),
        (L2RWConfig(momentum=1.0), "momentum"),
        (L2RWConfig(weight_decay=-1e-4), "weight_decay"),
        (L2RWConfig(hidden=(4, "b")), "hidden"),
        (L2RWConfig(momentum=float("nan")), "momentum"),
        (MWNConfig(weight_decay=float("inf")), "weight_decay"),
        (L2RWConfig(hidden=(32, 0)), "hidden"),
        (L2RWConfig(lookahead_lr=float("nan")), "lookahead_lr"),
        (L2RWConfig(lookahead_reduction="max"), "lookahead_reduction"),
        (MWNConfig(weight_net_hidden=0), "weight_net_hidden"),
        (MWNConfig(weight_net_lr=-1.0), "weight_net_lr"),
        (MWNConfig(weight_net_weight_decay=-1.0), "weight_net_weight_decay"),
        (MWNConfig(virtual_lr=0.0), "virtual_lr"),
        (MWNConfig(weight_normalisation="sum"), "weight_normalisation"),
    ],
)
def test_bad_config_raises_before_any_work(problem, monkeypatch, config, argument):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr("pyrodps.baselines.blo.train_blo", no_training)
    method = "l2rw" if isinstance(config, L2RWConfig) else "mwn"
    with pytest.raises(ValidationError) as err:
        run_method(problem, method, progress=False, l2rw_config=config, mwn_config=config)
    assert err.value.argument == argument
    with pytest.raises(ValidationError) as err:
        (fit_l2rw if method == "l2rw" else fit_mwn)(problem, config, progress=False)
    assert err.value.argument == argument


@pytest.mark.parametrize("fit", [fit_l2rw, fit_mwn])
def test_bad_eval_every_raises(problem, fit):
    with pytest.raises(ValidationError, match="eval_every"):
        fit(problem, None, eval_every=0, progress=False)


# ---------------------------------------------------------------------------------------------
# runs


@pytest.mark.parametrize("method", ["l2rw", "mwn"])
def test_run_method_reports_selection_metrics_reproducibly(problem, method):
    assert method in METHODS
    runs = [run_method(problem, method, seed=0, steps=25, progress=False) for _ in range(2)]
    m = runs[0].metrics(problem)
    assert m["selection_auroc"] is not None and m["selection_average_precision"] is not None
    assert "mean_weight_corrupted" in m and "mean_weight_clean" in m and 0 < m["kept_fraction"] <= 1
    assert runs[0].weight_mean.shape == runs[0].weight_std.shape == (problem.num_train,)
    assert np.array_equal(runs[0].weight_mean, runs[1].weight_mean)
    assert np.array_equal(runs[0].test_probs, runs[1].test_probs)
    assert (
        runs[0].config["lr"] == 0.003
        and runs[0].config["meta_batch_size"] == problem.x_meta.shape[0]
    )
    other_seed = run_method(problem, method, seed=1, steps=25, progress=False)
    assert not np.array_equal(runs[0].weight_mean, other_seed.weight_mean)
    if method == "mwn":
        visited = runs[0].weight_mean > 0
        assert ((runs[0].weight_mean[visited] > 0) & (runs[0].weight_mean[visited] < 1)).all()


def test_fit_records_the_accuracy_trace(problem):
    fit = fit_mwn(problem, MWNConfig(steps=20), seed=0, progress=False, eval_every=10)
    assert [t for t, _ in fit.accuracy_trace] == [10, 20]
    assert fit.accuracy_trace[-1][1] == pytest.approx(fit.test_accuracy)
    assert fit.weight_visits.sum() == 20 * 128


def test_cli_run_writes_blo_weights(tmp_path):
    out = tmp_path / "l2rw"
    rc = main(
        [
            "run",
            "--scenario",
            "digits-label-noise",
            "--method",
            "l2rw",
            "--steps",
            "20",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "l2rw" and metrics["selection_auroc"] is not None
    weights = np.load(out / "weights.npz")
    assert weights["mean"].shape == weights["std"].shape == weights["corrupted"].shape
    assert json.loads((out / "config.json").read_text())["config"]["lookahead_reduction"] == "sum"


def test_l2rw_ranks_mislabelled_points_below_clean_ones(problem):
    res = run_method(problem, "l2rw", seed=0, steps=150, progress=False)
    m = res.metrics(problem)
    assert m["selection_auroc"] > 0.7
    assert m["mean_weight_corrupted"] < m["mean_weight_clean"]
