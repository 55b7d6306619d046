"""``ZeroMeanNormal`` is ``Normal(0, s).expand([P]).to_event(1)`` in closed form: the same density and
gradient (scalar and per-coordinate scales, batched values), its draws have its moments, and in a plate it
expands as Pyro expects."""

from __future__ import annotations

import math

import pyro.distributions as dist
import pytest
import torch

from pyrodps.models.zero_mean_normal import ZeroMeanNormal


@pytest.mark.parametrize("scale", [0.3, torch.tensor([0.5, 1.0, 2.0, 0.1, 3.0])])
def test_density_and_gradient_equal_torchs_normal(scale):
    reference = dist.Normal(0.0, scale).expand([5]).to_event(1)
    closed = ZeroMeanNormal(scale, 5)
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0)).mul(2).requires_grad_(True)
    torch.testing.assert_close(closed.log_prob(x), reference.log_prob(x))
    (g_closed,) = torch.autograd.grad(closed.log_prob(x).sum(), x)
    (g_reference,) = torch.autograd.grad(reference.log_prob(x).sum(), x)
    torch.testing.assert_close(g_closed, g_reference)
    assert closed.event_shape == (5,) and closed.batch_shape == ()


def test_draws_have_the_distributions_moments_and_a_plate_expands_it():
    torch.manual_seed(0)
    scale = torch.tensor([0.5, 2.0])
    draws = ZeroMeanNormal(scale, 2).sample((20_000,))
    # sd of a sample sd is about s / sqrt(2n): 4.5 of them is 3 %; of the mean, s / sqrt(n): 3 %
    assert torch.allclose(draws.std(0), scale, rtol=0.03)
    assert (draws.mean(0).abs() < 4.5 * scale / math.sqrt(20_000)).all()
    expanded = ZeroMeanNormal(1.0, 3).expand([4])
    assert expanded.batch_shape == (4,) and expanded.log_prob(torch.zeros(4, 3)).shape == (4,)


def test_a_wrong_scale_shape_is_refused():
    with pytest.raises(ValueError, match="expected \\(3,\\)"):
        ZeroMeanNormal(torch.ones(2), 3)
