# Copyright (c) mmseg-sbce contributors.
"""Labelling one image from its maps: numpy front ends of :mod:`mmseg_sbce.models.labelling`.

The rules (threshold mapping, eq. 9, the fixed background threshold on CAMs, the unsure
margin) are defined once, on tensors, in :mod:`mmseg_sbce.models.labelling` and shared with
``SBCEClassifier.predict``. This module adapts them to the edges of pseudo-label export and
evaluation: array-likes in, image labels as indices or multi-hot, uint8 numpy label maps
out, and the labelling of one image with its dense CRF (:func:`pseudo_label_from_maps`).

Label ids: ``0`` background, ``c + 1`` for foreground class index ``c`` (``0..C-1``, the
order of the classifier's channels), ``255`` unsure / ignore. A *compact* label map numbers
only the image's positive classes ``pos`` (``k`` for ``pos[k - 1]``);
:func:`scatter_compact` turns it into full ids.
"""
from typing import Any, Optional, Union

import numpy as np
import torch

from ..models import labelling
from ..utils.io import IGNORE_INDEX
from .crf import dense_crf
from .pseudo_cfg import MAP_THRESHOLDS, unsure_margin
from .saliency import class_scores, saliency_compact_labels

# The rules are defined once, on tensors, in mmseg_sbce/models/utils.py (shared with
# ``SBCEClassifier.predict``). The functions here only adapt them to this module's edges:
# array-likes in, image labels as indices or multi-hot, uint8 numpy label maps out.
def map_threshold(t: Any, scale: Union[torch.Tensor, float],
                  eps: float = 1e-6) -> torch.Tensor:
    """:func:`mmseg_sbce.models.labelling.map_threshold` for thresholds of any array-like.

    ``t`` was learned against ``sigmoid(s * x)``; inference uses ``sigmoid(x)``. Solving
    ``sigmoid(s * x) = t`` for ``x`` gives ``t' = sigmoid(logit(t) / s)``.

    Args:
        t (array-like): thresholds in (0, 1), shape ``[..., C]``; computed in float32.
        scale (Tensor | float): the logit scale ``s_c = exp(T_c)``, broadcastable to ``t``.
        eps (float): clamp of ``t`` away from 0 and 1 before the logit.

    Returns:
        Tensor: float32 ``t'`` with the shape of ``t``.
    """
    return labelling.map_threshold(torch.as_tensor(t, dtype=torch.float32), scale, eps=eps)


def as_float32(array: Any) -> torch.Tensor:
    """A CPU float32 tensor of ``array`` (numpy array, tensor or nested list): what the
    tensor rules of :mod:`mmseg_sbce.models.labelling` take from numpy callers."""
    array = np.asarray(array, dtype=np.float32)
    # torch.from_numpy warns on read-only arrays (it cannot honour the flag); copy those.
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def as_uint8(labels: torch.Tensor) -> np.ndarray:
    """Long CPU labels ``0..254`` / 255 from :mod:`mmseg_sbce.models.labelling` -> a uint8
    numpy label map."""
    return labels.numpy().astype(np.uint8)


def labels_mask_of(gt_labels: Any, num_classes: int) -> Optional[torch.Tensor]:
    """``[C]`` bool mask of the positive classes (see :func:`positive_classes`); None = all."""
    if gt_labels is None:
        return None
    mask = torch.zeros(num_classes, dtype=torch.bool)
    mask[torch.from_numpy(positive_classes(gt_labels, num_classes))] = True
    return mask


def positive_classes(gt_labels: Any, num_classes: int) -> np.ndarray:
    """Positive class indices from a float/bool multi-hot ``[C]`` vector, integer class
    indices, or None (= all classes)."""
    if gt_labels is None:
        return np.arange(num_classes)
    arr = np.asarray(gt_labels.detach().cpu() if torch.is_tensor(gt_labels) else gt_labels)
    if arr.size == 0:  # an image without foreground labels
        return np.zeros(0, np.int64)
    if arr.dtype.kind in 'fb':  # multi-hot
        if arr.shape != (num_classes, ):
            raise ValueError(f'a multi-hot label vector must have shape ({num_classes},), '
                             f'got {arr.shape}')
        return np.flatnonzero(arr > 0.5)
    idx = np.unique(arr.astype(np.int64).ravel())
    if idx.size and (idx.min() < 0 or idx.max() >= num_classes):
        raise ValueError(f'class indices {idx.tolist()} out of range 0..{num_classes - 1}')
    return idx


def scatter_compact(compact: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Compact ids -> full ids: ``0`` stays background, ``k`` becomes ``pos[k - 1] + 1``,
    255 is kept.

    Args:
        compact (np.ndarray): uint8 label map numbering only the classes ``pos``.
        pos (np.ndarray): int ``[K]`` class indices of the compact ids ``1..K``.

    Returns:
        np.ndarray: uint8 label map with the shape of ``compact``.
    """
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    lut[0] = 0
    lut[1:len(pos) + 1] = pos + 1
    return lut[compact]


def label_eq9(probs: Union[np.ndarray, torch.Tensor],
              thr: Union[np.ndarray, torch.Tensor],
              gt_labels: Any = None,
              unsure_margin: Optional[float] = None) -> np.ndarray:
    """Paper eq. 9: ``argmax_c (p_c - t'_c)`` over positive classes, background if ``<= 0``.

    :func:`mmseg_sbce.models.labelling.label_eq9` on float32 copies of the inputs.

    Args:
        probs (array): ``[C, H, W]`` unscaled probabilities ``sigmoid(x)``.
        thr (array): ``[C]`` thresholds in the same space (mapped ``t'``).
        gt_labels: positive classes (multi-hot ``[C]`` or indices); None = all classes.
        unsure_margin (float, optional): 255 where ``|max_c S_c| <= margin``.

    Returns:
        np.ndarray: ``[H, W]`` uint8 label map, ids ``0..C`` (+ 255).
    """
    probs = as_float32(probs)
    mask = labels_mask_of(gt_labels, probs.shape[0])
    return as_uint8(
        labelling.label_eq9(probs, as_float32(thr).reshape(-1), mask, unsure_margin))


def label_cam(logits: Union[np.ndarray, torch.Tensor],
              bg_thr: float,
              gt_labels: Any = None,
              normalize_cam: bool = True,
              unsure_margin: Optional[float] = None) -> np.ndarray:
    """CAM-style labelling: ``argmax_c m_c`` over positive classes, background where
    ``max_c m_c <= bg_thr``; ``m`` is the CAM ``relu(x_c) / max relu(x_c)`` (the PSA/IRN
    convention) with ``normalize_cam``, else the probability ``sigmoid(x_c)``.

    :func:`mmseg_sbce.models.labelling.label_cam` on a float32 copy of ``logits``.

    Args:
        logits (array): ``[C, H, W]`` unscaled class logits.
        bg_thr (float): the fixed background threshold.
        gt_labels: positive classes (multi-hot ``[C]`` or indices); None = all classes.
        normalize_cam (bool): threshold the CAM rather than the probability.
        unsure_margin (float, optional): 255 where ``|max_c m_c - bg_thr| <= margin``.

    Returns:
        np.ndarray: ``[H, W]`` uint8 label map, ids ``0..C`` (+ 255).
    """
    logits = as_float32(logits)
    mask = labels_mask_of(gt_labels, logits.shape[0])
    return as_uint8(labelling.label_cam(logits, bg_thr, mask, normalize_cam, unsure_margin))


def softmax_unary_probs(scores: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax([0, S_1..S_K] / T)`` over the label axis: ``[K + 1, H, W]`` float32.

    ``scores`` are background first (``[0, S_1..S_K]``, as from
    :func:`mmseg_sbce.models.labelling.eq9_scores`).
    """
    z = scores / temperature
    z -= z.max(axis=0, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=0, keepdims=True)
    return z


def pseudo_label_from_maps(img_rgb: np.ndarray, logits: np.ndarray, thr: Any, pos: np.ndarray,
                           cfg: dict, saliency: Optional[np.ndarray] = None) -> np.ndarray:
    """Label one image from the logits of its positive classes.

    With a ``saliency`` map (and ``cfg['saliency']`` set) the saliency rule of
    :mod:`~.saliency` replaces eq. 9 / the CAM threshold; the dCRF of ``cfg['crf']`` then
    refines those labels with the label unary (255 pixels stay 255).

    Args:
        img_rgb (np.ndarray): ``[H, W, 3]`` uint8 RGB (for the dCRF).
        logits (np.ndarray): ``[K, H, W]`` unscaled fused logits of the positive classes
            ``pos`` (eq. 9 compares ``sigmoid(x)`` with ``t'``; the CAM rule normalises
            ``relu(x)``).
        thr: ``[K]`` mapped thresholds (adaptive) or ignored when ``cfg['threshold']`` is
            ``'otsu'`` or a float.
        pos (np.ndarray): ``[K]`` foreground class indices.
        cfg (dict): a resolved ``pseudo_cfg``.
        saliency (np.ndarray, optional): ``[H, W]`` saliency in ``[0, 1]``
            (:func:`~.saliency.load_saliency`); None: the saliency-free rule.

    Returns:
        np.ndarray: ``[H, W]`` uint8 ids ``0..C`` (+ 255).
    """
    # Every class of the compact set ``pos`` is allowed: no labels mask.
    logits = as_float32(logits)
    if saliency is not None:
        return _saliency_label(img_rgb, logits, thr, pos, cfg, saliency)
    if cfg['threshold'] in MAP_THRESHOLDS:
        probs = logits.sigmoid()
        thresholds = labelling.per_map_thresholds(
            probs, None if thr is None else as_float32(thr), cfg['threshold'])
        scores = labelling.eq9_scores(probs, thresholds)
    else:
        scores = labelling.cam_scores(logits, cfg['threshold'],
                                      normalize_cam=cfg['normalize_cam'])
    margin = unsure_margin(cfg)
    compact = as_uint8(labelling.labels_from_scores(scores, margin))
    crf = cfg['crf']
    if crf['enabled'] and len(pos) > 0:
        unsure = compact == IGNORE_INDEX if margin is not None else None
        if crf['unary'] == 'labels':
            refined = dense_crf(img_rgb, compact, len(pos) + 1, crf)
        else:
            refined = dense_crf(img_rgb,
                                softmax_unary_probs(scores.numpy(), crf['prob_temperature']),
                                len(pos) + 1, crf)
        compact = refined.astype(np.uint8)
        if unsure is not None:
            compact[unsure] = IGNORE_INDEX
    return scatter_compact(compact, np.asarray(pos, dtype=np.int64))


def _saliency_label(img_rgb: np.ndarray, logits: torch.Tensor, thr: Any, pos: np.ndarray,
                    cfg: dict, saliency: np.ndarray) -> np.ndarray:
    """:func:`pseudo_label_from_maps` with a saliency map (see :mod:`~.saliency`)."""
    if cfg.get('saliency') is None:
        raise ValueError('a saliency map was given but pseudo_cfg.saliency is not set')
    maps, thresholds = class_scores(logits, thr, cfg)
    compact = saliency_compact_labels(maps, thresholds, saliency, cfg['saliency'])
    crf = cfg['crf']
    if crf['enabled'] and len(pos) > 0:
        unsure = compact == IGNORE_INDEX
        compact = dense_crf(img_rgb, compact, len(pos) + 1, crf).astype(np.uint8)
        compact[unsure] = IGNORE_INDEX
    return scatter_compact(compact, np.asarray(pos, dtype=np.int64))
