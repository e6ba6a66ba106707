# Copyright (c) mmseg-sbce contributors.
"""Pixel labelling rules shared by the segmentor and pseudo-label generation (paper eq. 9).

The single definition of each rule; ``SBCEClassifier`` (its ``predict`` and the threshold
mapping it offers the multi-scale inference) and :mod:`mmseg_sbce.apis.label_maps` (the
pseudo-label export, its tools and the Q-update hook) both call these, so training-time
evaluation and pseudo-label export label pixels identically:

* the threshold mapping ``t' = sigmoid(logit(t) / s)``: :func:`map_threshold`;
* the per-map thresholds of eq. 9, learned or Otsu's split: :func:`per_map_thresholds`;
* eq. 9 with per-class thresholds: :func:`eq9_scores`, :func:`label_eq9`;
* the fixed background threshold on CAMs (max-normalised ReLU of the logits) or on
  probabilities: :func:`cam_from_logits`, :func:`fixed_threshold_maps`, :func:`cam_scores`,
  :func:`label_cam`;
* the optional "unsure -> 255" margin rule: :func:`labels_from_scores`.

Scores are ``[0, S_1, ..., S_C]`` along the class axis (background score 0 first), so the
label is their ``argmax``: a pixel is foreground only where ``max_c S_c > 0`` (ties with the
background go to the background; ties between classes to the lower class index).
"""
from typing import Optional, Union

import torch
from torch import Tensor

from ..utils.io import IGNORE_INDEX
from .losses.otsu import otsu_threshold

# Score given to classes outside the image label set: below any ``p - t'`` (>= -1) and below
# the background score 0, so such classes can never be chosen.
ABSENT_SCORE = -2.0

# Label of the pixels left unsure by the margin rule: the ignore index.
UNSURE_INDEX = IGNORE_INDEX


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


def per_map_thresholds(probs: Tensor, thr, rule: str) -> Tensor:
    """The ``t'`` of each class map for eq. 9 under a per-map threshold rule.

    Args:
        probs (Tensor): ``[K, H, W]`` unscaled probabilities ``sigmoid(x)`` of the image's
            classes (fused over the passes, before dCRF).
        thr: ``[K]`` mapped thresholds of the threshold branch (``'adaptive'``); ignored
            by ``'otsu'``, may be None there.
        rule (str): ``'adaptive'`` (the learned ``t'``) or ``'otsu'`` (Otsu's split of each
            map's probabilities over ``[0, 1]``, :func:`~.losses.otsu_threshold`).

    Returns:
        Tensor: float32 ``[K]`` thresholds.
    """
    if rule == 'otsu':
        return otsu_threshold(probs[None].float())[0]
    if rule != 'adaptive':
        raise ValueError(f'unknown per-map threshold rule {rule!r}')
    if thr is None:
        raise ValueError('threshold="adaptive" needs a model with a threshold branch; '
                         'use threshold="otsu" or a fixed background threshold for this '
                         'model')
    return torch.as_tensor(thr, dtype=torch.float32).reshape(-1)


def _per_class(value: Tensor, num_classes: int, name: str) -> Tensor:
    """``[C]`` / ``[B, C]`` -> ``[1 or B, C]`` (also for ``C == 0``)."""
    if value.numel() == num_classes:
        return value.reshape(1, num_classes)
    if num_classes == 0 or value.numel() % num_classes:
        raise ValueError(f'{name} must be [C] or [B, C] with C={num_classes}, got '
                         f'{tuple(value.shape)}')
    return value.reshape(-1, num_classes)


def eq9_scores(probs: Tensor,
               thr: Union[Tensor, float],
               labels_mask: Optional[Tensor] = None) -> Tensor:
    """Per-pixel scores whose argmax is the eq. 9 label, background first.

    Channel 0 is the background score 0; channel ``c + 1`` is ``p_c - t_c`` for classes in
    the label set and ``ABSENT_SCORE`` otherwise. ``argmax`` returns the first maximum, so
    a pixel whose best ``p_c - t_c`` is ``<= 0`` is background, exactly eq. 9.

    Args:
        probs (Tensor): foreground probabilities ``[C, H, W]`` or ``[B, C, H, W]``, in the
            same space as ``thr`` (unscaled ``p`` with mapped ``t'``). ``C`` may be 0.
        thr (Tensor | float): per-class thresholds ``[C]`` / ``[B, C]``, or one float for
            all classes: a fixed background threshold (``argmax_c p_c`` if its value exceeds
            the threshold, else background) is eq. 9 with a constant ``t``
            (:func:`cam_scores` adds the optional max-normalisation).
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
        thr = _per_class(thr.to(probs), C, 'thr')
        if thr.shape[0] not in (1, B):
            raise ValueError(f'thr must be [C] or [B, C], got {tuple(thr.shape)}')
        thr = thr[:, :, None, None]
    scores = probs - thr
    if labels_mask is not None:
        keep = _per_class(torch.as_tensor(labels_mask, device=probs.device), C,
                          'labels_mask') > 0.5
        scores = torch.where(keep[:, :, None, None], scores, scores.new_tensor(ABSENT_SCORE))
    scores = torch.cat([scores.new_zeros((B, 1) + probs.shape[2:]), scores], dim=1)
    return scores if batched else scores[0]


def cam_from_logits(logits: Tensor, eps: float = 1e-5) -> Tensor:
    """Class activation maps: ``relu(x_c) / max(max_pixels relu(x_c), eps)`` per class map.

    The CAM convention of PSA/IRN (max-normalised ReLU of the class score map), under which
    fixed background thresholds such as 0.2-0.4 are meaningful. It is computed from the
    logits, never from probabilities: ``sigmoid`` saturates (float32 rounds it to 1 beyond
    ``x ~ 17``, float16 beyond ``x ~ 7.6``) and a GAP-BCE classifier's logits reach tens, so
    normalising probabilities would flatten the CAM into a plateau and make every threshold
    below ~0.99 label a halo around the objects. Never combined with the adaptive threshold
    (``t'`` lives in the space of the unscaled probabilities).

    Args:
        logits (Tensor): ``[C, H, W]`` or ``[B, C, H, W]`` unscaled class logits ``x``.
        eps (float): lower bound of the divisor (a map without positive logits is all 0).

    Returns:
        Tensor: CAMs in ``[0, 1]`` with the shape of ``logits``.
    """
    cam = logits.clamp(min=0)
    if cam.numel() == 0:
        return cam
    peak = cam.flatten(-2).amax(dim=-1).clamp(min=eps)
    return cam / peak[..., None, None]


def fixed_threshold_maps(logits: Tensor, normalize_cam: bool = True) -> Tensor:
    """What a fixed background threshold is compared with: the CAM
    (:func:`cam_from_logits`) with ``normalize_cam``, else the probability ``sigmoid(x)``.

    Args:
        logits (Tensor): ``[C, H, W]`` or ``[B, C, H, W]`` unscaled class logits.
        normalize_cam (bool): CAMs (max-normalised ReLU) rather than probabilities.

    Returns:
        Tensor: maps with the shape of ``logits``.
    """
    return cam_from_logits(logits) if normalize_cam else logits.sigmoid()


def cam_scores(logits: Tensor,
               bg_thr: float,
               labels_mask: Optional[Tensor] = None,
               normalize_cam: bool = True) -> Tensor:
    """Scores of the fixed background-threshold (CAM-style) rule, background first.

    ``S_c = m_c - bg_thr`` with ``m = cam_from_logits(x)`` when ``normalize_cam`` else the
    probability ``m = sigmoid(x)``, i.e. :func:`eq9_scores` with one constant threshold: the
    label is ``argmax_c m_c`` over the allowed classes where ``max_c m_c > bg_thr``, else
    background.

    Args:
        logits (Tensor): ``[C, H, W]`` or ``[B, C, H, W]`` unscaled class logits.
        bg_thr (float): the background threshold.
        labels_mask (Tensor, optional): ``[C]`` / ``[B, C]`` allowed classes; all if None.
        normalize_cam (bool): threshold the CAM (:func:`cam_from_logits`) rather than the
            probability.

    Returns:
        Tensor: scores ``[C + 1, H, W]`` or ``[B, C + 1, H, W]``.
    """
    return eq9_scores(fixed_threshold_maps(logits, normalize_cam), float(bg_thr),
                      labels_mask)


def labels_from_scores(scores: Tensor, unsure_margin: Optional[float] = None) -> Tensor:
    """Labels from background-first scores, with the optional unsure rule.

    The label is ``argmax`` over ``[0, S_1..S_C]``: 0 (background) where
    ``max_c S_c <= 0``, else ``1 + argmax_c S_c`` (first maximum). With ``unsure_margin = m``
    a pixel whose best class score lies within ``[-m, m]`` (too close to the
    foreground/background decision) is labelled ``UNSURE_INDEX`` (255); a pixel without any
    allowed class (every score ``ABSENT_SCORE``) stays background.

    Args:
        scores (Tensor): ``[C + 1, H, W]`` or ``[B, C + 1, H, W]`` from :func:`eq9_scores`
            or :func:`cam_scores`.
        unsure_margin (float, optional): the unsure rule's margin ``m >= 0``; None = off.

    Returns:
        Tensor: long labels ``[H, W]`` / ``[B, H, W]``: 0 background, ``c + 1`` class ``c``,
        255 unsure.
    """
    labels = scores.argmax(dim=-3)
    if unsure_margin is not None and scores.shape[-3] > 1:
        best = scores.narrow(-3, 1, scores.shape[-3] - 1).amax(dim=-3)
        # Scores of probabilities are >= -1, so ``> ABSENT_SCORE`` means "some class allowed".
        unsure = (best.abs() <= unsure_margin) & (best > ABSENT_SCORE)
        labels = labels.masked_fill(unsure, UNSURE_INDEX)
    return labels


def label_eq9(probs: Tensor,
              thr: Union[Tensor, float],
              labels_mask: Optional[Tensor] = None,
              unsure_margin: Optional[float] = None) -> Tensor:
    """Label pixels by eq. 9: ``argmax_c (p_c - t_c)`` over allowed classes, 0 if ``<= 0``.

    Args:
        probs (Tensor): ``[C, H, W]`` or ``[B, C, H, W]`` foreground probabilities.
        thr (Tensor | float): ``[C]`` / ``[B, C]`` thresholds or one background threshold.
        labels_mask (Tensor, optional): ``[C]`` / ``[B, C]`` allowed classes.
        unsure_margin (float, optional): 255 where ``|max_c S_c| <= margin``
            (see :func:`labels_from_scores`).

    Returns:
        Tensor: long labels ``[H, W]`` / ``[B, H, W]``: 0 background, ``c + 1`` class ``c``
        (255 unsure).
    """
    return labels_from_scores(eq9_scores(probs, thr, labels_mask), unsure_margin)


def label_cam(logits: Tensor,
              bg_thr: float,
              labels_mask: Optional[Tensor] = None,
              normalize_cam: bool = True,
              unsure_margin: Optional[float] = None) -> Tensor:
    """Label pixels by the fixed background threshold (see :func:`cam_scores`).

    Args:
        logits (Tensor): ``[C, H, W]`` or ``[B, C, H, W]`` unscaled class logits.
        bg_thr (float): the background threshold.
        labels_mask (Tensor, optional): ``[C]`` / ``[B, C]`` allowed classes.
        normalize_cam (bool): threshold the CAM rather than the probability.
        unsure_margin (float, optional): 255 where ``|max_c m_c - bg_thr| <= margin``.

    Returns:
        Tensor: long labels ``[H, W]`` / ``[B, H, W]``: 0 background, ``c + 1`` class ``c``
        (255 unsure).
    """
    return labels_from_scores(cam_scores(logits, bg_thr, labels_mask, normalize_cam),
                              unsure_margin)
