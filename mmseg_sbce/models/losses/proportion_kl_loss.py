# Copyright (c) mmseg-sbce contributors.
"""T/NT proportion KL term (paper eq. 6-8), in foreground-fraction form."""
from typing import Optional

import torch
from torch import Tensor

from mmseg.registry import MODELS
from .base_loss import BaseLoss, upcast_half
from .percentile import valid_pixel_rows


def binary_kl(pred: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    """Two-bin KL divergence ``KL(P || Q)`` over {foreground, background}, elementwise.

    ``P log(P / Q) + (1 - P) log((1 - P) / (1 - Q))``. Every argument of a log is clamped to
    ``>= eps``, so the value and its gradient are finite for ``P`` and ``Q`` anywhere in
    ``[0, 1]``, including the ends: at ``Q = 0`` (class labelled present but absent from the
    Q map) the term is ``P * log(P / eps)``, a strong but finite pull of ``P`` towards 0.
    A term whose weight ``P`` (or ``1 - P``) is 0 contributes exactly 0.

    Args:
        pred (Tensor): predicted fractions ``P`` in ``[0, 1]``.
        target (Tensor): target fractions ``Q`` in ``[0, 1]``, same shape.
        eps (float): lower clamp inside the logs.

    Returns:
        Tensor: elementwise KL, same shape.
    """
    target = target.to(pred.dtype)
    fg = pred * (pred.clamp(min=eps).log() - target.clamp(min=eps).log())
    bg = (1 - pred) * ((1 - pred).clamp(min=eps).log() - (1 - target).clamp(min=eps).log())
    return fg + bg


def proportion_kl_loss(logits: Tensor,
                       labels: Tensor,
                       target_fraction: Tensor,
                       valid: Optional[Tensor] = None,
                       eps: float = 1e-8,
                       valid_pixels: Optional[Tensor] = None) -> Tensor:
    """KL between predicted and target foreground fractions of the positive classes.

    The predicted fraction of map ``(b, c)`` is ``P = mean_hw(sigmoid(logits))`` (the
    released code's form of eq. 7; the paper's ratio relates by ``fraction = Q / (1 + Q)``).
    The loss is the two-bin KL (:func:`binary_kl`) summed over positive, valid
    ``(b, c)`` pairs and divided by their number; 0 when there is none.

    Float16 / bfloat16 logits (AMP) are cast to float32 first, as in
    :func:`~mmseg_sbce.models.losses.spatial_bce_loss`: the spatial means and the ``eps``
    clamps inside the logs (``1e-8`` is below float16's smallest normal) need float32.

    Args:
        logits (Tensor): ``[B, C, H, W]`` logits, already multiplied by the logit scale.
        labels (Tensor): ``[B, C]`` multi-hot image labels (``> 0.5`` is positive).
        target_fraction (Tensor): ``[B, C]`` target fractions in ``[0, 1]``.
        valid (Tensor, optional): bool ``[B]`` (per sample) or ``[B, C]`` (per map);
            excluded pairs (e.g. samples without a Q map) do not count at all.
        eps (float): lower clamp inside the logs.
        valid_pixels (Tensor, optional): bool ``[B, H, W]``, the pixels of each sample that
            lie on the image; given, ``P`` is the mean over those pixels only (padding is
            not part of the image whose fraction ``Q`` describes).

    Returns:
        Tensor: scalar loss, float32 for half-precision logits.
    """
    if logits.dim() != 4:
        raise ValueError(f'logits must be [B, C, H, W], got {tuple(logits.shape)}')
    B, C = logits.shape[:2]
    if labels.shape != (B, C) or target_fraction.shape != (B, C):
        raise ValueError(f'labels and target_fraction must be [B, C] = {(B, C)}, got '
                         f'{tuple(labels.shape)} and {tuple(target_fraction.shape)}')
    mask = labels > 0.5
    if valid is not None:
        valid = valid.to(torch.bool)
        if valid.shape == (B, ):
            valid = valid[:, None]
        elif valid.shape != (B, C):
            raise ValueError(f'valid must be [B] or [B, C], got {tuple(valid.shape)}')
        mask = mask & valid
    logits = upcast_half(logits)
    mask = mask.to(logits.dtype)
    if valid_pixels is None:
        pred = logits.sigmoid().mean(dim=(2, 3))
    else:
        H, W = logits.shape[2:]
        pix = valid_pixel_rows(valid_pixels, B, H, W).to(logits.dtype).view(B, 1, H, W)
        pred = (logits.sigmoid() * pix).sum(dim=(2, 3)) / pix.sum(dim=(2, 3))
    kl = binary_kl(pred, target_fraction, eps) * mask
    # No positive pair: 0 / 1 keeps the graph (zero gradients) instead of 0 / 0.
    return kl.sum() / mask.sum().clamp(min=1)


@MODELS.register_module()
class ProportionKLLoss(BaseLoss):
    """T/NT proportion KL loss module (paper eq. 6-8), mmseg loss API.

    Args:
        loss_weight (float): multiplier of the loss (1.0 in the paper).
        eps (float): lower clamp inside the logs.
        loss_name (str): key of the loss in the loss dict.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 eps: float = 1e-8,
                 loss_name: str = 'loss_kl') -> None:
        super().__init__(loss_weight, loss_name)
        self.eps = eps

    def forward(self, logits: Tensor, labels: Tensor, target_fraction: Tensor,
                valid: Optional[Tensor] = None,
                valid_pixels: Optional[Tensor] = None) -> Tensor:
        """Compute the loss; see :func:`proportion_kl_loss` for the arguments."""
        return self.loss_weight * proportion_kl_loss(
            logits, labels, target_fraction, valid=valid, eps=self.eps,
            valid_pixels=valid_pixels)
