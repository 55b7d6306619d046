"""The minibatch gradient of the BADS density, computed by several ranks on shares of one global batch.

Every rank holds the same global batch ``B_t`` (``B`` train points) and ``B_m`` (``B_m`` meta points).
Rank ``r`` of ``W`` runs the network on the batch **positions** ``r, r + W, r + 2W, ...`` of each (a
balanced share: ``⌈B/W⌉`` or ``⌊B/W⌋`` points, whichever rank owns the points' table entries) and
computes, with the coefficients of the **global** batch (:meth:`~pyrodps.models.potential.BADSPotential.loss_coefficients`
with ``batch_sizes=(B, B_m)``),

    g_r = ∇_θ Σ_{k ∈ share_r} c_k d_k(θ),     c_i = ρ_θ (N/B) w_i,   c_j = ρ_m (M/B_m),

and its losses ``l_k``. One all-reduce sums ``g_r`` over the ranks and places every rank's losses at their
batch positions, so every rank holds

    ∇_θ Û = Σ_r g_r - ∇_θ log p_0(θ)       (the prior counted once, after the sum)

and the losses of the whole batch: exactly what :class:`~pyrodps.models.potential.FusedGradient`
computes on one process, up to the order of the floating-point sum. The weight block's quantities
(the deviances ``δ_i``, ``∂ℓ_i/∂u_i``, ``w_i``, the energy) are then computed on every rank from the
gathered losses by the same formulas as on one process.
"""

from __future__ import annotations

import torch

from pyrodps.errors import ValidationError
from pyrodps.models.bads import BADSModel
from pyrodps.models.data import Batch
from pyrodps.models.potential import CompanionEstimate, FusedGradient, GradientEstimate
from pyrodps.parallel.sharded import Comm


def check_table_model(model: BADSModel) -> None:
    """Data-parallel sampling supports the weight table (``weights="table"``, with ``log_z`` ``"ignore"``
    or ``"companion"``); refuse a weight network by the argument that chose it."""
    if model.weight_net is not None:
        kind = "product" if model.product else "network"
        raise ValidationError("weights", f"data-parallel sampling supports the weight table (weights='table'), "
                              f"not weights={kind!r} (a weight network: the methods bads-weightnet, bads-grouped, "
                              "bads-point-group); run it on one process")


class ShardGradient(FusedGradient):
    """What :class:`~pyrodps.models.potential.FusedGradient` gives, from this rank's share of the batch
    and one all-reduce (module docstring). A drop-in for the kernel's ``gradient``: called with the
    global batch and the batch's table entries ``u_B``; the network runs on the share as
    :meth:`FusedGradient._forward` runs it."""

    def __init__(self, model: BADSModel, comm: Comm) -> None:
        check_table_model(model)
        super().__init__(model)
        self.comm = comm

    def positions(self, size: int, device: torch.device) -> torch.Tensor:
        """The batch positions this rank evaluates: ``rank, rank + W, ...`` below ``size``."""
        if size < self.comm.world_size:
            raise ValidationError("batch_size", f"a batch of {size} points cannot be shared by "
                                  f"{self.comm.world_size} ranks: every batch (train and meta) needs at least "
                                  "one point per rank")
        return torch.arange(self.comm.rank, size, self.comm.world_size, device=device)

    def _share(self, batch: Batch, meta: bool) -> tuple[torch.Tensor, torch.Tensor | None, Batch]:
        pt = self.positions(batch.x_train.shape[0], batch.x_train.device)
        pm = self.positions(batch.x_meta.shape[0], batch.x_meta.device) if meta else None
        empty = batch.idx_meta[:0]
        share = Batch(batch.idx_train.index_select(0, pt), batch.x_train.index_select(0, pt),
                      batch.y_train.index_select(0, pt),
                      empty if pm is None else batch.idx_meta.index_select(0, pm),
                      batch.x_meta[:0] if pm is None else batch.x_meta.index_select(0, pm),
                      batch.y_meta[:0] if pm is None else batch.y_meta.index_select(0, pm))
        return pt, pm, share

    def _reduce(self, grad: torch.Tensor | None, nll: torch.Tensor, positions: torch.Tensor,
                length: int) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(Σ_r grad_r, losses of the whole batch)``: one all-reduce of the gradient and the losses
        placed at their ``positions`` in a zero vector of ``length``."""
        p = 0 if grad is None else grad.shape[0]
        buf = nll.new_zeros(p + length)
        if grad is not None:
            buf[:p] = grad
        buf[p + positions] = nll
        self.comm.all_reduce_(buf)
        return (None if grad is None else buf[:p]), buf[p:]

    def __call__(self, theta: torch.Tensor, weights: torch.Tensor, batch: Batch, need_theta: bool = True,
                 need_energy: bool = True) -> GradientEstimate:
        m, pot = self.model, self.potential
        if not isinstance(weights, torch.Tensor):
            raise ValidationError("weights", "the data-parallel gradient takes the batch's table entries u_B")
        self.flat.bind(theta)
        b, b_m = batch.x_train.shape[0], batch.x_meta.shape[0]
        pt, pm, share = self._share(batch, meta=True)
        w = torch.sigmoid(weights).detach()  # the whole batch's weights
        with torch.set_grad_enabled(need_theta):
            dev, nll = pot.deviances(*self._forward(share, meta=True), share)
            grad = None
            if need_theta:
                weighted = torch.dot(dev, pot.loss_coefficients(w.index_select(0, pt), pm.shape[0], (b, b_m)))
                grad = self.flat.grad(weighted)
        with torch.no_grad():
            grad, losses = self._reduce(grad, nll.detach(), torch.cat((pt, b + pm)), b + b_m)
            if grad is not None:
                grad.sub_(m.theta_prior.grad_log_prob(theta, m.layout))
            nll_t, nll_m = losses[:b], losses[b:]
            dev_t = nll_t - m.reference_nll(batch.y_train)
            grad_u = pot.weight_conditional_grad(weights, dev_t, w)
            energy = None
            if need_energy:
                dev_all = torch.cat((dev_t, nll_m))  # the meta points' reference is 0
                weighted_all = torch.dot(dev_all, pot.loss_coefficients(w, b_m))
                energy = -pot.log_density(theta, dev_all, w, weights, None, weighted=weighted_all)
        return GradientEstimate(energy, grad, grad_u, nll_t, nll_m, w, None, dev_t, None, None)

    def companion(self, theta: torch.Tensor, w_batch: torch.Tensor, batch: Batch) -> CompanionEstimate:
        """The companion target's gradient ``∇_θ' [ρ_θ (N/B) Σ_i w_i d_i(θ') - log p_0(θ')]`` and the losses
        ``l_i(θ')`` of the whole train batch, from this rank's share and one all-reduce."""
        m, pot = self.model, self.potential
        self.flat.bind(theta)
        b = batch.x_train.shape[0]
        pt, _, share = self._share(batch, meta=False)
        with torch.enable_grad():
            dev, nll = pot.deviances(*self._forward(share, meta=False), share)
            weighted = torch.dot(dev, pot.loss_coefficients(w_batch.detach().index_select(0, pt), 0, (b, 0)))
            grad = self.flat.grad(weighted)
        with torch.no_grad():
            grad, losses = self._reduce(grad, nll.detach(), pt, b)
            grad.sub_(m.theta_prior.grad_log_prob(theta, m.layout))
        return CompanionEstimate(grad, losses)
