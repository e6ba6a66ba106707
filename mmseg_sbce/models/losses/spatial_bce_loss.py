# Copyright (c) mmseg-sbce contributors.
"""Spatial-BCE loss (paper eq. 1-5)."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS
from .base_loss import BaseLoss, upcast_half

REDUCTIONS = ('none', 'sum', 'mean', 'side_mean')


def positive_uncertainty(probs: Tensor,
                         thr: Tensor,
                         min_thr: float = 1e-4,
                         min_sq: float = 1e-8) -> Tensor:
    """Uncertainty ``R(p)`` of a positive class (eq. 3-5).

    ``p <= t``: ``1 - (1 - p / t)^2`` (eq. 4, ``beta = 1 / t^2``);
    ``p > t``: ``1 - ((p - t) / (1 - t))^2`` (eq. 3, ``alpha = 1 / (1 - t)^2``).
    Both halves are 1 at ``p = t`` and 0 at ``p = 0`` / ``p = 1``; the derivative in ``p`` is
    0 at ``p = t``, positive below it and negative above it, so gradient descent pushes
    pixels away from the threshold.

    Args:
        probs (Tensor): probabilities, any shape.
        thr (Tensor): thresholds broadcastable to ``probs``.
        min_thr (float): lower clamp of ``t`` (keeps ``1 / t^2`` finite).
        min_sq (float): lower clamp of ``(1 - t)^2`` (keeps ``alpha`` finite at ``t = 1``).

    Returns:
        Tensor: ``R`` with the broadcast shape, in ``[1 - 1 / min_sq, 1]``.
    """
    t = thr.clamp(min=min_thr)
    d = probs - t
    # Both denominators are clamped away from 0, so the branch torch.where does not select
    # stays finite too and cannot leak NaN into the backward pass.
    denom = torch.where(d <= 0, t * t, ((1 - t) * (1 - t)).clamp(min=min_sq))
    return 1 - d * d / denom


def positive_uncertainty_from_logits(logits: Tensor, thr_logits: Tensor) -> Tensor:
    """:func:`positive_uncertainty` computed from logits, exact and stable when saturated.

    With ``p = sigmoid(x)`` and ``t = sigmoid(x_t)`` both halves are ``R = 1 - (1 - r)^2``:

    - ``x <= x_t``: ``r = p / t = exp(softplus(-x_t) - softplus(-x))``;
    - ``x > x_t``: ``r = (1 - p) / (1 - t) = exp(softplus(x_t) - softplus(x))``.

    The probability form cannot be evaluated once logits are large: a classifier trained
    with GAP-BCE and the logit scale ``s = 10`` easily has scaled logits in the hundreds,
    where ``sigmoid`` is exactly 1 in float32. The percentile threshold is then ``t = 1``,
    every pixel counts as "below" and the loss pushes the whole object towards 0 (seen on the
    demo, docs/results.md). Here the side of a pixel is
    decided by its logit and ``r`` is a ratio of log-sigmoids, so ranks are kept however
    large the logits are.

    Args:
        logits (Tensor): scaled logits ``x``, any shape.
        thr_logits (Tensor): threshold logits ``x_t = logit(t)``, broadcastable to
            ``logits``.

    Returns:
        Tensor: ``R`` in ``[0, 1]`` with the broadcast shape.
    """
    r = _ratio(logits, thr_logits, F.softplus(logits))
    return r * (2 - r)


def _ratio(x: Tensor, xt: Tensor, softplus_x: Tensor) -> Tensor:
    """``r`` of :func:`positive_uncertainty_from_logits`, given ``softplus(x)``.

    ``softplus(-x) = softplus(x) - x``, so both halves are ``softplus(x_t) - softplus(x)``
    plus ``(x - x_t)`` below the threshold: one softplus per pixel, which the loss shares
    with its negative-class term.
    """
    log_r = F.softplus(xt) - softplus_x + (x - xt).clamp(max=0)
    return log_r.clamp(max=0).exp()


class _SpatialBCESum(torch.autograd.Function):
    """Weighted sum of all Spatial-BCE terms, with a hand-written backward.

    Autograd through the row gather of the positive maps costs a full-size ``index_add``
    plus a full-size gradient accumulation, and ``softplus_backward`` another pass. Here
    the whole logit gradient is one ``sigmoid`` and one scaling pass (the negative term's
    derivative), with the few positive rows overwritten in place. First-order only.
    """

    @staticmethod
    def forward(ctx, x: Tensor, thr: Tensor, pos_rows: Tensor, w_pos: Tensor,
                w_neg: Tensor) -> Tensor:
        # x [R, N] logits, thr [R] threshold logits, pos_rows [P], w_pos / w_neg [R]
        softplus = F.softplus(x)
        total = (softplus.sum(1) * w_neg).sum()
        xp = x.index_select(0, pos_rows)
        xt = thr.index_select(0, pos_rows).unsqueeze(1)
        below = xp <= xt
        r = _ratio(xp, xt, softplus.index_select(0, pos_rows))
        w_rows = w_pos.index_select(0, pos_rows).unsqueeze(1)
        total = total + (r * (2 - r) * w_rows).sum()
        ctx.save_for_backward(x, xp, xt, pos_rows, w_neg, below, r, w_rows)
        ctx.thr_shape = thr.shape
        return total

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, xp, xt, pos_rows, w_neg, below, r, w_rows = ctx.saved_tensors
        grad_x = grad_thr = None
        # R = r (2 - r): dR/dr = 2 (1 - r). Below: dr/dx = r sigmoid(-x) = r (1 - sigmoid(x)),
        # dr/dx_t = -r sigmoid(-x_t); above: dr/dx = -r sigmoid(x), dr/dx_t = r sigmoid(x_t).
        # So dR/dx = 2 (1 - r) r ([below] - sigmoid(x)), dR/dx_t = 2 (1 - r) r
        # (sigmoid(x_t) - [below]).
        scale = 2 * (1 - r) * r * w_rows * grad_out
        below = below.to(scale.dtype)
        if ctx.needs_input_grad[0]:
            # d softplus(x) / dx = sigmoid(x); positive rows have w_neg = 0 and are
            # overwritten with their own gradient.
            sig = torch.sigmoid(x)
            grad_pos = scale * (below - sig.index_select(0, pos_rows))
            grad_x = sig.mul_((w_neg * grad_out).unsqueeze(1))
            grad_x.index_copy_(0, pos_rows, grad_pos)
        if ctx.needs_input_grad[1]:
            grad_t = scale * (torch.sigmoid(xt) - below)
            grad_thr = torch.zeros(ctx.thr_shape, dtype=grad_t.dtype, device=grad_t.device)
            grad_thr.index_copy_(0, pos_rows, grad_t.sum(1))
        return grad_x, grad_thr, None, None, None


def spatial_bce_loss(logits: Tensor,
                     labels: Tensor,
                     thr_logits: Tensor,
                     weight: Optional[Tensor] = None,
                     reduction: str = 'mean',
                     avg_factor: Optional[float] = None) -> Tensor:
    """Spatial-BCE: ``R(p)`` for positive classes, ``-log(1 - p)`` for negative ones (eq. 1).

    ``p = sigmoid(logits)`` and ``t = sigmoid(thr_logits)``; ``R`` is evaluated in the
    stable logit form of :func:`positive_uncertainty_from_logits` (equal to the paper's
    :func:`positive_uncertainty` wherever that one is representable), and the negative term
    is ``softplus(logits)``, the exact form of ``-log(1 - sigmoid(x))``. No clamps are
    needed: every term and gradient is finite for finite inputs.

    Reductions:

    - ``'mean'`` (classifier sub-phase): sum of all weighted terms divided by the number of
      weighted elements, ``H * W * sum(weight)``; with no weight that is ``B * C * H * W``,
      the released code's reduction.
    - ``'side_mean'`` (threshold sub-phase): ``sum(R below t) / #(below-t pixels) +
      sum(R above t) / #(above-t pixels)`` over the pixels of positive classes, counts taken
      over the whole batch (weighted). A side with no pixels contributes 0 (the released
      code divides by zero there). Negative classes are NOT included: in this sub-phase
      ``p`` is detached, ``t`` only enters positive terms, so negative terms would add a
      gradient-free constant to the logged value and nothing to training.
    - ``'sum'``: sum of all weighted terms; ``'none'``: the weighted ``[B, C, H, W]`` terms.

    The computation is arranged for speed (see ``benchmarks/bench_spatial_bce.py``): the
    negative term is reduced per map with a ``[B, C]`` weight, the uncertainty is evaluated
    only on the (few) positive maps, and ``'mean'`` / ``'sum'`` use a hand-written backward
    (first-order only; checked against autograd by ``gradcheck`` in the tests).

    Mixed precision: float16 / bfloat16 logits (what a head emits under AMP) are cast to
    float32 before anything else (:func:`~mmseg_sbce.models.losses.base_loss.upcast_half`),
    so the sums over ``B x C x H x W`` terms cannot overflow and the result is float32; the
    gradient returns to the logits in their own dtype. An explicit cast rather than
    ``torch.amp.custom_fwd(cast_inputs=torch.float32)`` on the autograd function: the cast
    then also covers the ``'side_mean'`` and ``'none'`` paths and the inputs given outside
    an autocast region, and it is device-independent (``custom_fwd`` is bound to one device
    type). Every op after the cast is float32-safe under autocast (none is on autocast's
    lower-precision lists), so the loss needs no autocast-disabled region; float32 and
    float64 inputs go through exactly the same ops as without the cast.

    Args:
        logits (Tensor): ``[B, C, H, W]`` logits, already multiplied by the logit scale;
            float16 / bfloat16 are computed in float32.
        labels (Tensor): ``[B, C]`` multi-hot image labels (``> 0.5`` is positive).
        thr_logits (Tensor): ``[B, C]`` thresholds as logits, ``logit(t)`` (the percentile
            of the scaled logits, or the threshold branch's pooled logits).
        weight (Tensor, optional): ``[B, C]`` non-negative per-map weights (e.g. 0 drops
            the positive terms of a sample without a Q map).
        reduction (str): one of ``'none' | 'sum' | 'mean' | 'side_mean'``.
        avg_factor (float, optional): denominator overriding the one of ``'mean'``.

    Returns:
        Tensor: the reduced loss (a scalar) or ``[B, C, H, W]`` for ``'none'``; float32
        for half-precision logits, else the dtype of ``logits``.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f'reduction must be one of {REDUCTIONS}, got {reduction!r}')
    if logits.dim() != 4:
        raise ValueError(f'logits must be [B, C, H, W], got {tuple(logits.shape)}')
    B, C, H, W = logits.shape
    if labels.shape != (B, C) or thr_logits.shape != (B, C):
        raise ValueError(f'labels and thr_logits must be [B, C] = {(B, C)}, got '
                         f'{tuple(labels.shape)} and {tuple(thr_logits.shape)}')
    # Half-precision logits (AMP) are summed in float32; float32 input is left as it is.
    logits = upcast_half(logits)
    x = logits.reshape(B * C, H * W)
    is_pos = labels.reshape(-1) > 0.5
    if weight is None:
        w = torch.ones_like(is_pos, dtype=logits.dtype)
    else:
        if weight.shape != (B, C):
            raise ValueError(f'weight must be [B, C] = {(B, C)}, got {tuple(weight.shape)}')
        w = weight.reshape(-1).to(logits.dtype)
    w_pos = torch.where(is_pos, w, torch.zeros_like(w))
    w_neg = w - w_pos
    # Positive rows are usually a small minority (1-3 classes per image): work on them only.
    pos_rows = torch.nonzero(is_pos & (w != 0)).squeeze(1)
    xt_all = thr_logits.reshape(-1).to(logits.dtype)
    if reduction in ('sum', 'mean'):
        total = _SpatialBCESum.apply(x, xt_all, pos_rows, w_pos, w_neg)
        if reduction == 'sum':
            return total
        if avg_factor is None:
            avg_factor = w.sum() * (H * W)
            # All weights zero: the sum is zero as well, return it rather than 0 / 0.
            avg_factor = torch.where(avg_factor > 0, avg_factor, torch.ones_like(avg_factor))
        return total / avg_factor

    x_pos = x.index_select(0, pos_rows)
    xt_pos = xt_all.index_select(0, pos_rows).unsqueeze(1)
    unc = positive_uncertainty_from_logits(x_pos, xt_pos)
    w_rows = w_pos.index_select(0, pos_rows).unsqueeze(1)
    if reduction == 'side_mean':
        below = (x_pos <= xt_pos).to(unc.dtype) * w_rows
        above = w_rows - below
        n_below, n_above = below.sum(), above.sum()
        # A side without pixels has a zero sum: divide by 1 there instead of 0.
        one = torch.ones_like(n_below)
        return ((unc * below).sum() / torch.where(n_below > 0, n_below, one) +
                (unc * above).sum() / torch.where(n_above > 0, n_above, one))
    out = F.softplus(x) * w_neg.unsqueeze(1)  # reduction == 'none'
    out = out.index_copy(0, pos_rows, unc * w_rows)
    return out.view(B, C, H, W)


@MODELS.register_module()
class SpatialBCELoss(BaseLoss):
    """Spatial-BCE loss module (paper eq. 1-5), mmseg loss API.

    Args:
        reduction (str): default reduction, ``'mean'`` (classifier sub-phase) or
            ``'side_mean'`` (threshold sub-phase), also ``'sum'`` / ``'none'``.
        loss_weight (float): multiplier of the loss.
        loss_name (str): key of the loss in the loss dict; must start with ``loss_`` to
            be back-propagated.
    """

    def __init__(self,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_sbce') -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f'reduction must be one of {REDUCTIONS}, got {reduction!r}')
        super().__init__(loss_weight, loss_name)
        self.reduction = reduction

    def forward(self,
                logits: Tensor,
                labels: Tensor,
                thr_logits: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss; see :func:`spatial_bce_loss` for the arguments."""
        reduction = reduction_override or self.reduction
        return self.loss_weight * spatial_bce_loss(
            logits, labels, thr_logits, weight=weight, reduction=reduction,
            avg_factor=avg_factor)
