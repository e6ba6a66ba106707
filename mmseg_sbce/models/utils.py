# Copyright (c) mmseg-sbce contributors.
"""Pixel labelling rules shared by the segmentor and pseudo-label generation (paper eq. 9).

The single definition of each rule; ``SBCEClassifier.predict`` and
``mmseg_sbce.apis.pseudo_label`` (the streaming runner, its tools and the Q-update hook) both
call these, so training-time evaluation and pseudo-label export label pixels identically:

* the threshold mapping ``t' = sigmoid(logit(t) / s)``: :func:`map_threshold`;
* eq. 9 with per-class thresholds: :func:`eq9_scores`, :func:`label_eq9`;
* the fixed background threshold (CAM style, optional max-normalisation):
  :func:`normalize_max`, :func:`cam_scores`, :func:`label_cam`;
* the optional "unsure -> 255" margin rule: :func:`labels_from_scores`.

Scores are ``[0, S_1, ..., S_C]`` along the class axis (background score 0 first), so the
label is their ``argmax``: a pixel is foreground only where ``max_c S_c > 0`` (ties with the
background go to the background; ties between classes to the lower class index).
"""
from typing import Optional, Union

import torch
from torch import Tensor

# Score given to classes outside the image label set: below any ``p - t'`` (>= -1) and below
# the background score 0, so such classes can never be chosen.
ABSENT_SCORE = -2.0

# Label of the pixels left unsure by the margin rule (the ignore index).
UNSURE_INDEX = 255


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


def normalize_max(probs: Tensor, eps: float = 1e-5) -> Tensor:
    """Max-normalise each class map over the image: ``p_c / max(max_pixels p_c, eps)``.

    The PSA/IRN CAM convention, under which fixed background thresholds such as 0.2-0.4 are
    meaningful. Never combined with the adaptive threshold (``t'`` lives in the space of the
    raw probabilities).

    Args:
        probs (Tensor): ``[C, H, W]`` or ``[B, C, H, W]`` class maps.
        eps (float): lower bound of the divisor (an all-zero map stays zero).

    Returns:
        Tensor: normalised maps with the shape of ``probs``.
    """
    if probs.numel() == 0:
        return probs.clone()
    peak = probs.flatten(-2).amax(dim=-1).clamp(min=eps)
    return probs / peak[..., None, None]


def cam_scores(probs: Tensor,
               bg_thr: float,
               labels_mask: Optional[Tensor] = None,
               normalize: bool = True) -> Tensor:
    """Scores of the fixed background-threshold (CAM-style) rule, background first.

    ``S_c = p̂_c - bg_thr`` with ``p̂ = normalize_max(p)`` when ``normalize`` else ``p``, i.e.
    :func:`eq9_scores` with one constant threshold: the label is ``argmax_c p̂_c`` over the
    allowed classes where ``max_c p̂_c > bg_thr``, else background.

    Args:
        probs (Tensor): ``[C, H, W]`` or ``[B, C, H, W]`` class maps.
        bg_thr (float): the background threshold.
        labels_mask (Tensor, optional): ``[C]`` / ``[B, C]`` allowed classes; all if None.
        normalize (bool): max-normalise each class map first (:func:`normalize_max`).

    Returns:
        Tensor: scores ``[C + 1, H, W]`` or ``[B, C + 1, H, W]``.
    """
    return eq9_scores(normalize_max(probs) if normalize else probs, float(bg_thr),
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


def label_cam(probs: Tensor,
              bg_thr: float,
              labels_mask: Optional[Tensor] = None,
              normalize: bool = True,
              unsure_margin: Optional[float] = None) -> Tensor:
    """Label pixels by the fixed background threshold (see :func:`cam_scores`).

    Args:
        probs (Tensor): ``[C, H, W]`` or ``[B, C, H, W]`` class maps.
        bg_thr (float): the background threshold.
        labels_mask (Tensor, optional): ``[C]`` / ``[B, C]`` allowed classes.
        normalize (bool): max-normalise each class map first.
        unsure_margin (float, optional): 255 where ``|max_c p̂_c - bg_thr| <= margin``.

    Returns:
        Tensor: long labels ``[H, W]`` / ``[B, H, W]``: 0 background, ``c + 1`` class ``c``
        (255 unsure).
    """
    return labels_from_scores(cam_scores(probs, bg_thr, labels_mask, normalize), unsure_margin)
