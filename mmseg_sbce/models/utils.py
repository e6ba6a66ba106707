# Copyright (c) mmseg-sbce contributors.
"""Inference helpers shared by the segmentor and pseudo-label generation (paper eq. 9).

``mmseg_sbce.apis.pseudo_label`` imports these, so that training-time evaluation
(``SBCEClassifier.predict``) and pseudo-label export label pixels by the same rule.
"""
from typing import Optional, Union

import torch
from torch import Tensor

# Score given to classes outside the image label set: below any ``p - t'`` (>= -1) and below
# the background score 0, so such classes can never be chosen.
ABSENT_SCORE = -2.0


def map_threshold(thr: Tensor,
                  scale: Union[Tensor, float],
                  from_logits: bool = False,
                  eps: float = 1e-6) -> Tensor:
    """Map a threshold learned on scaled probabilities into the unscaled space.

    Training compares ``sigmoid(s * x)`` with ``t``; inference uses ``p = sigmoid(x)``.
    The pixel on the boundary satisfies ``sigmoid(s * x) = t``, i.e.
    ``x = logit(t) / s``, so the boundary in the unscaled space is
    ``t' = sigmoid(logit(t) / s)``.

    Args:
        thr (Tensor): thresholds ``[..., C]``: probabilities ``t`` in ``(0, 1)``, or the
            threshold branch's pre-sigmoid logits when ``from_logits`` (more precise: no
            round trip through a saturating sigmoid).
        scale (Tensor | float): logit scale ``s = exp(T)``, ``[C]`` or a scalar.
        from_logits (bool): whether ``thr`` holds logits.
        eps (float): clamp of ``t`` into ``[eps, 1 - eps]`` before ``logit``.

    Returns:
        Tensor: ``t'`` with the shape of ``thr``.
    """
    logit = thr if from_logits else torch.logit(thr, eps=eps)
    if not torch.is_tensor(scale):
        scale = torch.as_tensor(scale, dtype=logit.dtype, device=logit.device)
    return torch.sigmoid(logit / scale.to(logit))


def eq9_scores(probs: Tensor,
               thr: Union[Tensor, float],
               labels_mask: Optional[Tensor] = None) -> Tensor:
    """Per-pixel scores whose argmax is the eq. 9 label, background first.

    Channel 0 is the background score 0; channel ``c + 1`` is ``p_c - t_c`` for classes in
    the label set and ``ABSENT_SCORE`` otherwise. ``argmax`` returns the first maximum, so
    a pixel whose best ``p_c - t_c`` is ``<= 0`` is background, exactly eq. 9.

    Args:
        probs (Tensor): foreground probabilities ``[C, H, W]`` or ``[B, C, H, W]``, in the
            same space as ``thr`` (unscaled ``p`` with mapped ``t'``).
        thr (Tensor | float): per-class thresholds ``[C]`` / ``[B, C]``, or one float for
            all classes: a fixed background threshold (``argmax_c p_c`` if its value exceeds
            the threshold, else background) is eq. 9 with a constant ``t``.
        labels_mask (Tensor, optional): bool/float ``[C]`` / ``[B, C]``, the classes allowed
            (image labels); all classes when None.

    Returns:
        Tensor: scores ``[C + 1, H, W]`` or ``[B, C + 1, H, W]``.
    """
    batched = probs.dim() == 4
    if not batched:
        if probs.dim() != 3:
            raise ValueError(f'probs must be [C, H, W] or [B, C, H, W], got '
                             f'{tuple(probs.shape)}')
        probs = probs.unsqueeze(0)
    B, C = probs.shape[:2]
    if torch.is_tensor(thr):
        thr = thr.to(probs).reshape(-1, C)
        if thr.shape[0] not in (1, B):
            raise ValueError(f'thr must be [C] or [B, C], got {tuple(thr.shape)}')
        thr = thr[:, :, None, None]
    scores = probs - thr
    if labels_mask is not None:
        keep = labels_mask.to(device=probs.device).reshape(-1, C) > 0.5
        scores = torch.where(keep[:, :, None, None], scores, scores.new_tensor(ABSENT_SCORE))
    scores = torch.cat([scores.new_zeros((B, 1) + probs.shape[2:]), scores], dim=1)
    return scores if batched else scores[0]


def label_eq9(probs: Tensor,
              thr: Union[Tensor, float],
              labels_mask: Optional[Tensor] = None) -> Tensor:
    """Label pixels by eq. 9: ``argmax_c (p_c - t_c)`` over allowed classes, 0 if ``<= 0``.

    Args:
        probs (Tensor): ``[C, H, W]`` or ``[B, C, H, W]`` foreground probabilities.
        thr (Tensor | float): ``[C]`` / ``[B, C]`` thresholds or one background threshold.
        labels_mask (Tensor, optional): ``[C]`` / ``[B, C]`` allowed classes.

    Returns:
        Tensor: long labels ``[H, W]`` / ``[B, H, W]``: 0 background, ``c + 1`` class ``c``.
    """
    return eq9_scores(probs, thr, labels_mask).argmax(dim=-3)
