# Copyright (c) mmseg-sbce contributors.
"""Pseudo-labels from a trained classifier: the one module every stage shares.

Used by the Q-update hook (every phase, on the training set), by ``tools/gen_pseudo.py``
and by the initial-Q step from the BCE baseline. A reader of the paper finds here:

* multi-scale + flip inference (Sec. 4.2): :func:`multi_scale_maps`;
* the mapping of the learned threshold into the unscaled space: :func:`map_threshold`;
* eq. 9 (adaptive threshold) and the CAM-style fixed background threshold:
  :func:`label_eq9`, :func:`label_cam` (numpy front ends of the single tensor definitions
  in :mod:`mmseg_sbce.models.utils`, which ``SBCEClassifier.predict`` uses too);
* dense CRF (Krahenbuhl & Koltun) through pydensecrf: :func:`dense_crf`;
* the per-image foreground fractions behind Q (eq. 6): :func:`fractions_from_labels`;
* the streaming runner that writes the label PNGs: :func:`generate_pseudo_labels`.

Label ids everywhere: ``0`` background, ``c + 1`` for foreground class index ``c``
(``0..C-1``, the order of the classifier's channels), ``255`` unsure / ignore.

The configuration is one plain dict (``pseudo_cfg``); its keys and defaults are defined once,
in :data:`PSEUDO_CFG_DEFAULTS`, and checked by :func:`resolve_pseudo_cfg`.
"""
import copy
import io
import multiprocessing as mp
import os
import os.path as osp
import time
from collections import deque
from numbers import Number
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from PIL import Image

from ..models import utils as rules

IGNORE_INDEX = 255
FUSIONS = ('logits', 'probs')
#: Probabilities fused with ``fusion='probs'`` are kept in ``[EPS, 1 - EPS]`` when they are
#: turned back into logits (``|x| <= 16.1``; float32 resolves ``1 - EPS``).
FUSED_PROB_EPS = 1e-7

#: Every key of ``pseudo_cfg`` with its default. This dict is the single definition.
#:
#: * ``scales``: image scales of the multi-scale inference.
#: * ``flip``: add the horizontally flipped image at every scale (flipped back before
#:   averaging), i.e. ``2 * len(scales)`` passes.
#: * ``threshold``: ``'adaptive'`` = eq. 9 with the network's own threshold mapped into the
#:   unscaled space; a float in (0, 1) = CAM-style fixed background threshold.
#: * ``fusion``: how the passes are combined. ``'logits'``: the unscaled logits of every
#:   pass are upsampled bilinearly and averaged (the CAM convention of PSA/IRN, and what the
#:   reference code does before its threshold). ``'probs'``: every pass's probabilities
#:   ``sigmoid(x)`` are upsampled and averaged, the usual ensemble of probabilities (as
#:   MMSeg's test-time augmentation does), which is what eq. 9 compares with ``t'``. ``None``
#:   (default) means ``'probs'`` for ``'adaptive'`` and ``'logits'`` for a float threshold;
#:   ``'probs'`` with ``normalize_cam`` is refused (the CAM is defined on logits). Why
#:   ``'probs'`` for eq. 9: a Spatial-BCE classifier's logits are far larger inside objects
#:   (~+25 on the demo) than outside (~-4), so in a logit average one confident pass, and
#:   bilinear interpolation between a confident cell and a background cell, push the
#:   decision boundary outwards (a halo); a probability average is a vote. Measured on the
#:   demo (eq. 9, no dCRF, phase-3 network): 63.4 mIoU with ``'logits'``, 84.8 with
#:   ``'probs'`` (docs/results.md).
#: * ``normalize_cam``: compare the CAM ``relu(x_c) / max relu(x_c)`` of each class map (the
#:   PSA/IRN convention) rather than ``sigmoid(x_c)`` with a *fixed* threshold. ``None``
#:   (default) means True for a float threshold and False for ``'adaptive'``; True together with
#:   ``'adaptive'`` is refused (t' lives in the space of the raw probabilities).
#: * ``unsure``: ``None`` (off) or ``dict(margin=m)``: a pixel whose best score
#:   ``max_c S_c`` (``S_c = p_c - t'_c`` or ``p_c - bg_thr``) lies within ``[-m, m]``, i.e. too
#:   close to the foreground/background decision, is labelled 255. With ``unary='labels'``
#:   unsure pixels get a uniform unary in the dCRF (they do not push their neighbours);
#:   with either unary they stay 255 after it.
#: * ``crf``: dense CRF settings; ``enabled``; ``unary``: ``'labels'`` (``unary_from_labels``
#:   on the eq. 9 / CAM label map, ``gt_prob``) or ``'probs'`` (``unary_from_softmax`` on
#:   ``softmax([0, S_1..S_K] / prob_temperature)``, which keeps the argmax of the labelling);
#:   ``gaussian`` / ``bilateral`` kernel parameters; ``iterations``.
PSEUDO_CFG_DEFAULTS: Dict[str, Any] = dict(
    scales=(1.0, 0.5, 1.5, 2.0),
    flip=True,
    threshold='adaptive',
    fusion=None,
    normalize_cam=None,
    unsure=None,
    crf=dict(
        enabled=True,
        unary='labels',
        gt_prob=0.7,
        prob_temperature=0.1,
        gaussian=dict(sxy=3, compat=3),
        bilateral=dict(sxy=40, srgb=5, compat=10),
        iterations=10),
)


# --------------------------------------------------------------------------------- config
def _merge(defaults: dict, override: dict, where: str) -> dict:
    out = copy.deepcopy(defaults)
    for key, value in override.items():
        if key not in defaults:
            raise KeyError(f'unknown key "{where}{key}" in pseudo_cfg; known keys: '
                           f'{sorted(defaults)}')
        if isinstance(defaults[key], dict) and value is not None:
            out[key] = _merge(defaults[key], dict(value), f'{where}{key}.')
        else:
            out[key] = value
    return out


def resolve_pseudo_cfg(cfg: Optional[dict] = None) -> dict:
    """Fill a partial ``pseudo_cfg`` with :data:`PSEUDO_CFG_DEFAULTS` and validate it.

    Args:
        cfg (dict, optional): keys to override (nested for ``crf``). Unknown keys raise.

    Returns:
        dict: a complete, validated copy; ``normalize_cam`` resolved to a bool, ``threshold``
        either ``'adaptive'`` or a float, ``scales`` a tuple of floats.
    """
    out = _merge(PSEUDO_CFG_DEFAULTS, dict(cfg or {}), '')
    thr = out['threshold']
    if isinstance(thr, str) and thr != 'adaptive':
        try:
            thr = float(thr)
        except ValueError:
            raise ValueError(f'threshold must be "adaptive" or a float, got {thr!r}') from None
    if thr != 'adaptive':
        if not isinstance(thr, Number) or not 0.0 <= float(thr) < 1.0:
            raise ValueError(f'a fixed background threshold must be in [0, 1), got {thr!r}')
        thr = float(thr)
    out['threshold'] = thr
    if out['normalize_cam'] is None:
        out['normalize_cam'] = thr != 'adaptive'
    elif out['normalize_cam'] and thr == 'adaptive':
        raise ValueError('normalize_cam=True cannot be combined with threshold="adaptive": '
                         'the mapped threshold t\' is defined on the raw probabilities')
    out['normalize_cam'] = bool(out['normalize_cam'])
    if out['fusion'] is None:
        out['fusion'] = 'probs' if thr == 'adaptive' else 'logits'
    if out['fusion'] not in FUSIONS:
        raise ValueError(f'fusion must be one of {FUSIONS} or None, got {out["fusion"]!r}')
    if out['fusion'] == 'probs' and out['normalize_cam']:
        raise ValueError('fusion="probs" cannot be combined with normalize_cam=True: the CAM '
                         'relu(x) / max relu(x) is defined on averaged logits')
    out['scales'] = tuple(float(s) for s in out['scales'])
    if not out['scales'] or min(out['scales']) <= 0:
        raise ValueError(f'scales must be positive, got {out["scales"]}')
    if out['unsure'] is not None:
        margin = dict(out['unsure']).get('margin')
        if set(dict(out['unsure'])) != {'margin'} or not isinstance(margin, Number) \
                or margin < 0:
            raise ValueError('unsure must be None or dict(margin=non-negative float), got '
                             f'{out["unsure"]!r}')
    crf = out['crf']
    if crf['unary'] not in ('labels', 'probs'):
        raise ValueError(f'crf.unary must be "labels" or "probs", got {crf["unary"]!r}')
    if not 0.0 < crf['gt_prob'] < 1.0:
        raise ValueError(f'crf.gt_prob must be in (0, 1), got {crf["gt_prob"]}')
    return out


def _unsure_margin(cfg: dict) -> Optional[float]:
    return None if cfg['unsure'] is None else float(cfg['unsure']['margin'])


# ----------------------------------------------------------------------- threshold + eq. 9
# The rules are defined once, on tensors, in mmseg_sbce/models/utils.py (shared with
# ``SBCEClassifier.predict``). The functions here only adapt them to this module's edges:
# array-likes in, image labels as indices or multi-hot, uint8 numpy label maps out.
def map_threshold(t: Any, scale: Union[torch.Tensor, float],
                  eps: float = 1e-6) -> torch.Tensor:
    """:func:`mmseg_sbce.models.utils.map_threshold` for thresholds given as any array-like.

    ``t`` was learned against ``sigmoid(s * x)``; inference uses ``sigmoid(x)``. Solving
    ``sigmoid(s * x) = t`` for ``x`` gives ``t' = sigmoid(logit(t) / s)``.

    Args:
        t (array-like): thresholds in (0, 1), shape ``[..., C]``; computed in float32.
        scale (Tensor | float): the logit scale ``s_c = exp(T_c)``, broadcastable to ``t``.
        eps (float): clamp of ``t`` away from 0 and 1 before the logit.

    Returns:
        Tensor: float32 ``t'`` with the shape of ``t``.
    """
    return rules.map_threshold(torch.as_tensor(t, dtype=torch.float32), scale, eps=eps)


def _float32(array: Any) -> torch.Tensor:
    """A CPU float32 tensor of ``array`` (numpy array, tensor or nested list)."""
    array = np.asarray(array, dtype=np.float32)
    # torch.from_numpy warns on read-only arrays (it cannot honour the flag); copy those.
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _uint8(labels: torch.Tensor) -> np.ndarray:
    """Long labels ``0..254`` / 255 from :mod:`mmseg_sbce.models.utils` -> uint8 numpy."""
    return labels.numpy().astype(np.uint8)


def _labels_mask(gt_labels: Any, num_classes: int) -> Optional[torch.Tensor]:
    """``[C]`` bool mask of the positive classes (see :func:`_pos_indices`); None = all."""
    if gt_labels is None:
        return None
    mask = torch.zeros(num_classes, dtype=torch.bool)
    mask[torch.from_numpy(_pos_indices(gt_labels, num_classes))] = True
    return mask


def _pos_indices(gt_labels: Any, num_classes: int) -> np.ndarray:
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


def _scatter_compact(compact: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Compact ids (0 bg, k = pos[k-1]) -> full ids (0 bg, c + 1), 255 kept."""
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    lut[0] = 0
    lut[1:len(pos) + 1] = pos + 1
    return lut[compact]


def label_eq9(probs: Union[np.ndarray, torch.Tensor],
              thr: Union[np.ndarray, torch.Tensor],
              gt_labels: Any = None,
              unsure_margin: Optional[float] = None) -> np.ndarray:
    """Paper eq. 9: ``argmax_c (p_c - t'_c)`` over positive classes, background if ``<= 0``.

    :func:`mmseg_sbce.models.utils.label_eq9` on float32 copies of the inputs.

    Args:
        probs (array): ``[C, H, W]`` unscaled probabilities ``sigmoid(x)``.
        thr (array): ``[C]`` thresholds in the same space (mapped ``t'``).
        gt_labels: positive classes (multi-hot ``[C]`` or indices); None = all classes.
        unsure_margin (float, optional): 255 where ``|max_c S_c| <= margin``.

    Returns:
        np.ndarray: ``[H, W]`` uint8 label map, ids ``0..C`` (+ 255).
    """
    probs = _float32(probs)
    mask = _labels_mask(gt_labels, probs.shape[0])
    return _uint8(rules.label_eq9(probs, _float32(thr).reshape(-1), mask, unsure_margin))


def label_cam(logits: Union[np.ndarray, torch.Tensor],
              bg_thr: float,
              gt_labels: Any = None,
              normalize: bool = True,
              unsure_margin: Optional[float] = None) -> np.ndarray:
    """CAM-style labelling: ``argmax_c m_c`` over positive classes, background where
    ``max_c m_c <= bg_thr``; ``m`` is the CAM ``relu(x_c) / max relu(x_c)`` (the PSA/IRN
    convention) with ``normalize``, else the probability ``sigmoid(x_c)``.

    :func:`mmseg_sbce.models.utils.label_cam` on a float32 copy of ``logits``.

    Args:
        logits (array): ``[C, H, W]`` unscaled class logits.
        bg_thr (float): the fixed background threshold.
        gt_labels: positive classes (multi-hot ``[C]`` or indices); None = all classes.
        normalize (bool): threshold the CAM rather than the probability.
        unsure_margin (float, optional): 255 where ``|max_c m_c - bg_thr| <= margin``.

    Returns:
        np.ndarray: ``[H, W]`` uint8 label map, ids ``0..C`` (+ 255).
    """
    logits = _float32(logits)
    mask = _labels_mask(gt_labels, logits.shape[0])
    return _uint8(rules.label_cam(logits, bg_thr, mask, normalize, unsure_margin))


def fractions_from_labels(label_map: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class foreground fraction ``count(map == c + 1) / count(map != 255)``.

    Args:
        label_map (np.ndarray): ``[H, W]`` ids ``0..C`` (+ 255).
        num_classes (int): ``C``, the number of foreground classes.

    Returns:
        np.ndarray: ``[C]`` float64 fractions; all zeros if every pixel is 255.
    """
    flat = np.asarray(label_map).ravel()
    counts = np.bincount(flat, minlength=256)
    valid = flat.size - counts[IGNORE_INDEX]
    if num_classes + 1 > IGNORE_INDEX:
        raise ValueError(f'num_classes {num_classes} does not fit uint8 ids')
    if valid == 0:
        return np.zeros(num_classes)
    return counts[1:num_classes + 1] / float(valid)


# ----------------------------------------------------------------------------- inference
def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if is_model_wrapper(model) else model


def _logit_scale(model: torch.nn.Module) -> Optional[torch.Tensor]:
    for name in ('decode_head', 'head'):
        head = getattr(model, name, None)
        scale = getattr(head, 'logit_scale', None) if head is not None else None
        if scale is not None:
            return torch.as_tensor(scale).detach().float().reshape(-1)
    return None


def _preprocess(model: torch.nn.Module, img: torch.Tensor) -> torch.Tensor:
    """A packed image ``[3, H, W]`` (uint8) -> ``[1, 3, H', W']`` through the model's
    data preprocessor (BGR->RGB, normalisation, test-time padding)."""
    from mmseg.structures import SegDataSample
    if img.dim() == 4:
        img = img[0]
    data = model.data_preprocessor(
        dict(inputs=[img], data_samples=[SegDataSample()]), training=False)
    return data['inputs']


def _device_of(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device('cpu')


@torch.no_grad()
def _multi_scale_logits(model: torch.nn.Module, inputs: torch.Tensor, out_hw: Tuple[int, int],
                        pos: Optional[np.ndarray], scales: Sequence[float], flip: bool,
                        fusion: str = 'logits') -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Fused logits of the passes (positive channels only when ``pos`` is given) and the
    mean threshold logits ``[C]``. ``fusion='logits'``: mean of the upsampled, flipped-back
    logits; ``'probs'``: ``logit`` of the mean of the upsampled, flipped-back
    probabilities (clamped to ``[FUSED_PROB_EPS, 1 - FUSED_PROB_EPS]``)."""
    height, width = inputs.shape[-2:]
    sel = None if pos is None else torch.as_tensor(pos, dtype=torch.long,
                                                   device=inputs.device)
    logit_sum, thr_sum, passes = None, None, 0
    for scale in scales:
        size = (max(1, int(round(height * scale))), max(1, int(round(width * scale))))
        x = inputs if size == (height, width) else F.interpolate(
            inputs, size=size, mode='bilinear', align_corners=False)
        # The flipped copy rides in the same batch: one forward per scale.
        batch = torch.cat([x, x.flip(-1)], dim=0) if flip else x
        cls_logits, thr_logits = model.extract_maps(batch)
        if sel is not None:
            cls_logits = cls_logits.index_select(1, sel)
        cls_logits = cls_logits.float()
        if fusion == 'probs':
            cls_logits = cls_logits.sigmoid()
        # Bilinear resizing (align_corners=False) commutes with the horizontal flip and is
        # linear, so flipping back and summing at the low resolution, then upsampling once,
        # equals upsampling both maps: half the full-resolution work.
        low = cls_logits[0] + cls_logits[1].flip(-1) if flip else cls_logits[0]
        up_sum = F.interpolate(low[None], size=(height, width), mode='bilinear',
                               align_corners=False)[0]
        logit_sum = up_sum if logit_sum is None else logit_sum + up_sum
        if thr_logits is not None:
            t = thr_logits.float().reshape(batch.shape[0], -1).sum(0)
            thr_sum = t if thr_sum is None else thr_sum + t
        passes += batch.shape[0]
    mean = logit_sum / passes
    mean = mean[:, :out_hw[0], :out_hw[1]]  # drop test-time padding (bottom/right)
    if fusion == 'probs':
        mean = torch.logit(mean.clamp(FUSED_PROB_EPS, 1 - FUSED_PROB_EPS))
    return mean, (None if thr_sum is None else thr_sum / passes)


class _EvalMode:
    """``model.eval()`` + ``torch.no_grad`` for a block; restores every module's own
    training flag afterwards (so frozen-BN backbones keep their mode)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        self.grad = torch.no_grad()
        self.grad.__enter__()
        return self.model

    def __exit__(self, *exc):
        self.grad.__exit__(*exc)
        for module, mode in self.modes:
            module.training = mode
        return False


def _infer(model: torch.nn.Module, img: torch.Tensor, pos: Optional[np.ndarray],
           scales: Sequence[float], flip: bool, preprocess: Optional[bool],
           fusion: str = 'logits') -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(fused logits of the ``pos`` channels ``[K, H, W]``, mapped thresholds ``[C]``), on
    CPU."""
    if preprocess is None:
        preprocess = img.dtype == torch.uint8 or img.dim() == 3
    device = _device_of(model)
    if preprocess:
        out_hw = tuple(img.shape[-2:])
        inputs = _preprocess(model, img.to(device))
    else:
        inputs = img.to(device)
        if inputs.dim() == 3:
            inputs = inputs[None]
        out_hw = tuple(inputs.shape[-2:])
    if fusion not in FUSIONS:
        raise ValueError(f'fusion must be one of {FUSIONS}, got {fusion!r}')
    logits, thr_logit = _multi_scale_logits(model, inputs, out_hw, pos, scales, flip, fusion)
    logits = logits.cpu()
    thr = None
    if thr_logit is not None:
        scale = _logit_scale(model)
        # t = sigmoid(mean thr logit), so logit(t) is the mean itself: no sigmoid round trip.
        thr = rules.map_threshold(thr_logit.cpu(), 1.0 if scale is None else scale.cpu(),
                                  from_logits=True)
    return logits, thr


def multi_scale_maps(model: torch.nn.Module,
                     img: torch.Tensor,
                     gt_labels: Any = None,
                     scales: Sequence[float] = (1.0, 0.5, 1.5, 2.0),
                     flip: bool = True,
                     preprocess: Optional[bool] = None,
                     logits: bool = False,
                     fusion: str = 'logits') -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Multi-scale (+ flip) class probabilities (or logits) and the mapped adaptive
    threshold.

    Each scale is one forward pass of a batch ``[image, flipped image]``; the unscaled
    classifier logits (no logit scale, as at inference in the paper) are upsampled bilinearly
    to the image size, flipped back and averaged over all passes, then ``probs =
    sigmoid(mean)`` (``fusion='logits'``); or their probabilities are upsampled and averaged
    (``fusion='probs'``, see ``PSEUDO_CFG_DEFAULTS``). Thresholds: ``t = sigmoid(mean of
    the threshold logits over passes)`` mapped to ``t' = sigmoid(logit(t) / s_c)``
    (:func:`map_threshold`). Runs under ``torch.no_grad`` in
    eval mode and restores every module's training flag afterwards.

    Args:
        model (nn.Module): a classifier with ``extract_maps(inputs) -> (cls_logits [B, C, h,
            w], thr_logits [B, C] or None)``, ``data_preprocessor`` and optionally
            ``decode_head.logit_scale`` (wrappers such as DDP are unwrapped).
        img (Tensor): a packed image ``[3, H, W]`` (uint8, as from the dataset pipeline; run
            through ``model.data_preprocessor``) or an already preprocessed ``[1, 3, H, W]``
            float tensor.
        gt_labels: image labels (multi-hot ``[C]`` or class indices); absent classes get
            probability 0. None keeps every class.
        scales (Sequence[float]): image scales.
        flip (bool): add horizontal flips.
        preprocess (bool, optional): force (True) or skip (False) the data preprocessor;
            None decides from the tensor (uint8 or 3-D -> preprocess).
        logits (bool): return the fused logits ``x`` instead of ``sigmoid(x)`` (what the
            CAM rule needs, see :func:`mmseg_sbce.models.utils.cam_from_logits`); absent
            classes then get ``-inf``.
        fusion (str): ``'logits'`` or ``'probs'``; with ``'probs'`` the returned logits are
            ``logit`` of the mean probability (clamped to ``FUSED_PROB_EPS``).

    Returns:
        tuple: ``probs`` (or logits) ``[C, H, W]`` float32 and ``thr`` ``[C]`` float32
        (mapped ``t'``; None if the model has no threshold branch), both on CPU.
    """
    model = _unwrap(model)
    with _EvalMode(model):
        maps, thr = _infer(model, img, None, scales, flip, preprocess, fusion)
    if not logits:
        maps = maps.sigmoid()
    if gt_labels is not None:
        pos = _pos_indices(gt_labels, maps.shape[0])
        keep = torch.zeros(maps.shape[0], dtype=torch.bool)
        keep[torch.as_tensor(pos, dtype=torch.long)] = True
        maps[~keep] = float('-inf') if logits else 0.0
    return maps, thr


# ----------------------------------------------------------------------------- dense CRF
def dense_crf(img: np.ndarray,
              labels_or_probs: np.ndarray,
              n_labels: int,
              params: Optional[dict] = None) -> np.ndarray:
    """Dense CRF through pydensecrf (Krahenbuhl & Koltun, 2011).

    Args:
        img (np.ndarray): ``[H, W, 3]`` uint8 RGB image (C-contiguous avoids a copy).
        labels_or_probs (np.ndarray): either a ``[H, W]`` integer label map with values
            ``0..n_labels-1`` (255 = unsure: uniform unary), turned into a unary by
            ``unary_from_labels(..., gt_prob)``; or ``[n_labels, H, W]`` float
            probabilities (``unary_from_softmax``, clipped at 1e-5).
        n_labels (int): number of labels (>= 2).
        params (dict, optional): the ``crf`` part of ``pseudo_cfg`` (``gt_prob``,
            ``gaussian``, ``bilateral``, ``iterations``); defaults from
            :data:`PSEUDO_CFG_DEFAULTS`.

    Returns:
        np.ndarray: ``[H, W]`` int64 labels ``0..n_labels-1`` (the argmax of the marginals).
    """
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_labels, unary_from_softmax

    p = PSEUDO_CFG_DEFAULTS['crf'] if params is None else params
    height, width = img.shape[:2]
    if labels_or_probs.ndim == 2:
        labels = labels_or_probs
        unsure = labels == IGNORE_INDEX
        any_unsure = bool(unsure.any())
        if any_unsure:
            labels = np.where(unsure, 0, labels)
        unary = unary_from_labels(labels, n_labels, p['gt_prob'], zero_unsure=False)
        if any_unsure:
            unary[:, unsure.ravel()] = -np.log(1.0 / n_labels)
    else:
        unary = unary_from_softmax(labels_or_probs)
    crf = dcrf.DenseCRF2D(width, height, n_labels)
    crf.setUnaryEnergy(unary)  # float32, C-contiguous by construction: no copy
    crf.addPairwiseGaussian(sxy=p['gaussian']['sxy'], compat=p['gaussian']['compat'])
    if not img.flags.c_contiguous:
        img = np.ascontiguousarray(img)
    crf.addPairwiseBilateral(
        sxy=p['bilateral']['sxy'], srgb=p['bilateral']['srgb'], rgbim=img,
        compat=p['bilateral']['compat'])
    q = crf.inference(p['iterations'])
    return np.asarray(q).reshape(n_labels, height, width).argmax(axis=0)


# ------------------------------------------------------------------------ label one image
def _softmax_unary_probs(scores: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax([0, S_1..S_K] / T)`` over the label axis: ``[K + 1, H, W]`` float32.

    ``scores`` are background first (``[0, S_1..S_K]``, as from
    :func:`mmseg_sbce.models.utils.eq9_scores`).
    """
    z = scores / temperature
    z -= z.max(axis=0, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=0, keepdims=True)
    return z


def pseudo_label_from_maps(img_rgb: np.ndarray, logits: np.ndarray, thr: Any, pos: np.ndarray,
                           cfg: dict) -> np.ndarray:
    """Label one image from the logits of its positive classes.

    Args:
        img_rgb (np.ndarray): ``[H, W, 3]`` uint8 RGB (for the dCRF).
        logits (np.ndarray): ``[K, H, W]`` unscaled fused logits of the positive classes
            ``pos`` (eq. 9 compares ``sigmoid(x)`` with ``t'``; the CAM rule normalises
            ``relu(x)``).
        thr: ``[K]`` mapped thresholds (adaptive) or ignored when ``cfg['threshold']`` is a
            float.
        pos (np.ndarray): ``[K]`` foreground class indices.
        cfg (dict): a resolved ``pseudo_cfg``.

    Returns:
        np.ndarray: ``[H, W]`` uint8 ids ``0..C`` (+ 255).
    """
    # Every class of the compact set ``pos`` is allowed: no labels mask.
    logits = _float32(logits)
    if cfg['threshold'] == 'adaptive':
        if thr is None:
            raise ValueError('threshold="adaptive" needs a model with a threshold branch; '
                             'use a fixed background threshold for this model')
        scores = rules.eq9_scores(logits.sigmoid(), _float32(thr).reshape(-1))
    else:
        scores = rules.cam_scores(logits, cfg['threshold'], normalize=cfg['normalize_cam'])
    margin = _unsure_margin(cfg)
    compact = _uint8(rules.labels_from_scores(scores, margin))
    crf = cfg['crf']
    if crf['enabled'] and len(pos) > 0:
        unsure = compact == IGNORE_INDEX if margin is not None else None
        if crf['unary'] == 'labels':
            refined = dense_crf(img_rgb, compact, len(pos) + 1, crf)
        else:
            refined = dense_crf(img_rgb,
                                _softmax_unary_probs(scores.numpy(), crf['prob_temperature']),
                                len(pos) + 1, crf)
        compact = refined.astype(np.uint8)
        if unsure is not None:
            compact[unsure] = IGNORE_INDEX
    return _scatter_compact(compact, np.asarray(pos, dtype=np.int64))


# -------------------------------------------------------------------------- file writing
def _palette() -> List[int]:
    from mmseg_sbce.datasets.palette import flat_png_palette
    return flat_png_palette()


_PALETTE: Optional[List[int]] = None


def _tmp_name(path: str) -> str:
    head, tail = osp.split(path)
    return osp.join(head, f'.{tail}.tmp{os.getpid()}')


def save_label_png(label: np.ndarray, path: str) -> None:
    """Write a VOC-palette mode-'P' PNG atomically (temp name, then ``os.replace``).

    A run killed at any moment leaves either no file or the complete file at ``path``
    (possibly a stray hidden ``.NAME.tmpPID`` file next to it, never read by anyone).
    """
    global _PALETTE
    if _PALETTE is None:
        _PALETTE = _palette()
    image = Image.fromarray(np.ascontiguousarray(label, dtype=np.uint8), mode='P')
    image.putpalette(_PALETTE)
    tmp = _tmp_name(path)
    try:
        image.save(tmp, format='PNG')
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def save_maps_npz(path: str, logits: np.ndarray, classes: np.ndarray, thr: Any) -> None:
    """Write ``logits`` (float16 ``[K, H, W]``, the unscaled fused logits: probabilities are
    ``sigmoid`` of them, CAMs their max-normalised ReLU), ``classes`` (int ``[K]``) and
    ``thr`` (float32 ``[K]`` mapped ``t'``, NaN without a threshold branch) with
    ``np.savez_compressed``, atomically.

    Logits rather than probabilities: float16 rounds ``sigmoid(x)`` to 1 beyond ``x ~ 7.6``,
    which would erase every CAM and threshold sweep above that."""
    thr_arr = np.full(len(classes), np.nan, np.float32) if thr is None \
        else np.asarray(thr, np.float32)
    fp16_max = float(np.finfo(np.float16).max)
    buf = io.BytesIO()
    np.savez_compressed(buf, logits=np.clip(logits, -fp16_max, fp16_max).astype(np.float16),
                        classes=np.asarray(classes, np.int64), thr=thr_arr)
    tmp = _tmp_name(path)
    try:
        with open(tmp, 'wb') as f:
            f.write(buf.getbuffer())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def load_maps_npz(path: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a file of :func:`save_maps_npz`.

    Returns:
        tuple: ``logits`` float32 ``[K, H, W]``, ``classes`` int64 ``[K]``, ``thr`` float32
        ``[K]`` (NaN without a threshold branch).
    """
    with np.load(path) as data:
        if 'logits' not in data:
            raise ValueError(f'{path} holds no "logits" array (keys: {sorted(data.files)}): '
                             'written by an older mmseg-sbce that saved probabilities; '
                             'export it again with tools/gen_pseudo.py --save-probs')
        return (data['logits'].astype(np.float32), data['classes'].astype(np.int64),
                data['thr'].astype(np.float32))


def output_paths(out_dir: str, img_id: str) -> Tuple[str, str]:
    """``({out_dir}/{img_id}.png, {out_dir}/probs/{img_id}.npz)``."""
    return osp.join(out_dir, f'{img_id}.png'), osp.join(out_dir, 'probs', f'{img_id}.npz')


def _process_job(job: tuple) -> tuple:
    """Worker: label (+ dCRF) one image and write its files. Returns a small result tuple."""
    (img_id, img_chw, is_bgr, logits, thr, pos, num_classes, cfg, out_dir, save_probs) = job
    start = time.perf_counter()
    try:
        img = img_chw.transpose(1, 2, 0)
        img = np.ascontiguousarray(img[..., ::-1] if is_bgr else img)
        label = pseudo_label_from_maps(img, logits, thr, pos, cfg)
        png_path, npz_path = output_paths(out_dir, img_id)
        os.makedirs(osp.dirname(png_path) or '.', exist_ok=True)
        if save_probs:
            os.makedirs(osp.dirname(npz_path), exist_ok=True)
            save_maps_npz(npz_path, logits, pos, thr)
        save_label_png(label, png_path)  # last: a PNG means this image is complete
        fractions = fractions_from_labels(label, num_classes)
    except Exception as exc:  # reported by the main process, the run goes on
        return img_id, False, f'{type(exc).__name__}: {exc}', time.perf_counter() - start
    return img_id, True, fractions, time.perf_counter() - start


# ------------------------------------------------------------------------ streaming runner
def _img_id(info: dict, index: int) -> str:
    if info.get('img_id') is not None:
        return str(info['img_id'])
    if info.get('img_path'):
        return osp.splitext(osp.basename(info['img_path']))[0]
    return f'{index:08d}'


def _image_labels(data: dict, info: dict) -> Any:
    sample = data.get('data_samples')
    labels = getattr(sample, 'gt_labels', None) if sample is not None else None
    if labels is None and sample is not None:
        labels = sample.metainfo.get('gt_labels')
    if labels is None:
        labels = info.get('gt_labels')
    if labels is None:
        raise KeyError('no image labels: expected data_samples.gt_labels (PackWSSSInputs) '
                       'or data_info["gt_labels"]')
    return labels


def _check_not_resized(data: dict, img: torch.Tensor) -> None:
    sample = data.get('data_samples')
    ori = sample.metainfo.get('ori_shape') if sample is not None else None
    if ori is not None and tuple(ori[:2]) != tuple(img.shape[-2:]):
        raise ValueError(
            f'the pseudo-label pipeline resized the image ({tuple(ori[:2])} -> '
            f'{tuple(img.shape[-2:])}); labels must have the image size: use a pipeline '
            'without resizing, e.g. [LoadImageFromFile, PackWSSSInputs]')


def _default_workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    local = int(os.environ.get('LOCAL_WORLD_SIZE', '1'))
    return max(1, cpus // max(1, local))


def _pool_context():
    # fork: workers start in milliseconds (spawn would re-import torch and mmseg in every
    # worker); they run pydensecrf, PIL and the labelling rules (small torch CPU ops).
    methods = mp.get_all_start_methods()
    return mp.get_context('fork' if 'fork' in methods else 'spawn')


def _single_thread_worker() -> None:
    """Pool initializer for forked workers that run torch ops: one intra-op thread.

    GNU OpenMP is not fork-safe: a forked child whose parent already ran a parallel torch
    op hangs in its first parallel region (seen here: the pool never returns). With one
    thread torch never opens one; the workers are the parallelism anyway (torch's own
    DataLoader workers do the same).
    """
    torch.set_num_threads(1)


def generate_pseudo_labels(model: torch.nn.Module,
                           dataset: Any,
                           out_dir: str,
                           cfg: Optional[dict] = None,
                           *,
                           rank: Optional[int] = None,
                           world_size: Optional[int] = None,
                           workers: Optional[int] = None,
                           skip_existing: bool = True,
                           save_probs: bool = False,
                           progress: bool = True,
                           logger: Any = None,
                           max_in_flight: Optional[int] = None,
                           net_threads: Optional[int] = None,
                           maps_dir: Optional[str] = None) -> Dict[str, Any]:
    """Write pseudo-label PNGs for this rank's shard of ``dataset``.

    The network runs in the calling process (on the model's device); labelling, dense CRF
    and file writing run in a pool of ``workers`` processes with at most ``max_in_flight``
    images queued, so memory stays flat however long the data set is. Safe to call from an
    mmengine hook during training: nothing global is changed, the model's (and every
    submodule's) training flags are restored, gradients are not tracked, no CUDA is assumed.

    Output layout: ``{out_dir}/{img_id}.png`` (mode 'P', VOC palette, ids ``0..C`` and 255,
    the size of the packed image) and with ``save_probs``
    ``{out_dir}/probs/{img_id}.npz`` (``logits`` float16 ``[K, H, W]`` for the image's K
    positive classes before the threshold, ``classes`` their indices, ``thr`` the mapped
    thresholds). Every file is written under a temporary name and renamed.

    Args:
        model (nn.Module): the classifier (see :func:`multi_scale_maps`).
        dataset: an mmengine ``BaseDataset`` (``get_data_info`` + ``pipeline``) whose
            pipeline loads the image without resizing and packs it with its labels
            (e.g. ``[LoadImageFromFile, PackWSSSInputs]``). Items are fetched with
            ``pipeline(get_data_info(i))``, never ``dataset[i]`` (which would silently
            substitute another image for an unreadable one).
        out_dir (str): output folder (created).
        cfg (dict, optional): ``pseudo_cfg``, see :data:`PSEUDO_CFG_DEFAULTS`.
        rank (int, optional): this process's shard is ``index % world_size == rank``.
            None: from ``mmengine.dist.get_dist_info()``.
        world_size (int, optional): number of shards; None: from mmengine.dist.
        workers (int, optional): dCRF worker processes; 0 runs everything in this process;
            None uses every core available to this process (divided by
            ``LOCAL_WORLD_SIZE`` under torchrun).
        skip_existing (bool): skip images whose PNG (and npz, with ``save_probs``) exists.
        save_probs (bool): also write the compressed score maps (:func:`save_maps_npz`:
            logits, from which probabilities and CAMs follow).
        progress (bool): show an mmengine progress bar (rate, ETA) on rank 0.
        logger: an mmengine logger or its name for :func:`print_log`; None = current.
        max_in_flight (int, optional): images queued for the workers; default
            ``2 * workers``.
        net_threads (int, optional): torch CPU threads for the forward passes during the
            run (restored afterwards). None: with a pool and a CPU model, the cores left
            over by the workers (at least 1); otherwise unchanged.
        maps_dir (str, optional): label the maps an earlier run saved there
            (``{maps_dir}/{img_id}.npz``, see ``save_probs``) instead of running the network,
            e.g. at the best threshold of a sweep over exactly those maps. Each file must
            hold the image's positive classes at the image's size; the thresholds it holds
            are used by ``'adaptive'``. ``scales``, ``flip`` and ``fusion`` of ``cfg`` are
            then the saved run's, not this one's.

    Returns:
        dict: ``total`` (images in this shard), ``written`` and ``skipped`` (counts),
        ``failed`` (list of the img_ids that failed), ``failures`` (list of dicts ``index``,
        ``img_id``, ``error``), ``elapsed_s``,
        ``images_per_s`` (written / elapsed), ``net_s`` (time in the network),
        ``crf_s`` (summed worker time), ``fractions`` (``{img_id: [C] list}`` for the images
        written), ``rank``, ``world_size``.
    """
    from mmengine.dist import get_dist_info
    from mmengine.utils import ProgressBar

    pcfg = resolve_pseudo_cfg(cfg)
    dist_rank, dist_world = get_dist_info()
    rank = dist_rank if rank is None else int(rank)
    world_size = dist_world if world_size is None else int(world_size)
    if not 0 <= rank < world_size:
        raise ValueError(f'rank {rank} outside world_size {world_size}')
    workers = _default_workers() if workers is None else int(workers)
    max_in_flight = max(1, 2 * workers if max_in_flight is None else int(max_in_flight))
    logger = logger if logger is not None else 'current'
    os.makedirs(out_dir, exist_ok=True)
    if save_probs:
        os.makedirs(osp.join(out_dir, 'probs'), exist_ok=True)

    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    indices = list(range(rank, len(dataset), world_size))
    net = _unwrap(model)
    preproc = getattr(net, 'data_preprocessor', None)
    # The packed image is BGR exactly when the model's preprocessor converts BGR -> RGB.
    is_bgr = bool(getattr(preproc, 'channel_conversion', True))
    num_classes = _num_classes(net)

    summary: Dict[str, Any] = dict(
        total=len(indices), written=0, skipped=0, failed=[], failures=[], elapsed_s=0.0,
        images_per_s=0.0, net_s=0.0, crf_s=0.0, fractions={}, rank=rank,
        world_size=world_size)
    bar = ProgressBar(len(indices)) if progress and rank == 0 and indices else None
    index_of: Dict[str, int] = {}

    def collect(result: tuple) -> None:
        img_id, ok, payload, seconds = result
        summary['crf_s'] += seconds
        if ok:
            summary['written'] += 1
            summary['fractions'][img_id] = payload.tolist()
        else:
            summary['failed'].append(img_id)
            summary['failures'].append(dict(index=index_of.get(img_id), img_id=img_id,
                                            error=payload))
            print_log(f'pseudo-labels: {img_id} failed: {payload}', logger=logger,
                      level=30)
        if bar is not None:
            bar.update()

    start = time.perf_counter()
    pool = _pool_context().Pool(workers, initializer=_single_thread_worker) \
        if workers > 0 else None
    pending: deque = deque()
    # While the workers keep the cores busy, a multi-threaded CPU forward pass in this
    # process oversubscribes them (OpenMP threads wait on descheduled siblings: measured
    # 3x slower on 2 cores). The thread count is lowered for the run and restored after.
    threads = torch.get_num_threads()
    if net_threads is None and pool is not None and _device_of(net).type == 'cpu':
        net_threads = max(1, _default_workers() - workers)
    if net_threads is not None:
        torch.set_num_threads(int(net_threads))
    try:
        with _EvalMode(net):
            for index in indices:
                info = dataset.get_data_info(index)
                img_id = _img_id(info, index)
                index_of[img_id] = index
                png_path, npz_path = output_paths(out_dir, img_id)
                if skip_existing and osp.exists(png_path) and (not save_probs
                                                               or osp.exists(npz_path)):
                    summary['skipped'] += 1
                    if bar is not None:
                        bar.update()
                    continue
                try:
                    data = dataset.pipeline(info)
                    if data is None:
                        raise ValueError('the pipeline returned None (unreadable image?)')
                    img = data['inputs']
                    _check_not_resized(data, img)
                    pos = _pos_indices(_image_labels(data, info), num_classes)
                    t0 = time.perf_counter()
                    if maps_dir is not None:
                        logits, thr_pos = _saved_maps(maps_dir, img_id, pos,
                                                      tuple(img.shape[-2:]))
                    elif len(pos):
                        logits, thr = _infer(net, img, pos, pcfg['scales'], pcfg['flip'],
                                             None, pcfg['fusion'])
                        thr_pos = None if thr is None else thr[torch.as_tensor(
                            pos, dtype=torch.long)].numpy()
                    else:  # no foreground label: all background, no forward pass needed
                        logits = torch.zeros((0, ) + tuple(img.shape[-2:]))
                        thr_pos = np.zeros(0, np.float32)
                    summary['net_s'] += time.perf_counter() - t0
                except Exception as exc:
                    collect((img_id, False, f'{type(exc).__name__}: {exc}', 0.0))
                    continue
                job = (img_id, np.asarray(img.cpu().numpy(), dtype=np.uint8), is_bgr,
                       logits.numpy(), thr_pos, pos, num_classes, pcfg, out_dir,
                       save_probs)
                if pool is None:
                    collect(_process_job(job))
                    continue
                pending.append(pool.apply_async(_process_job, (job, )))
                while len(pending) >= max_in_flight:
                    collect(pending.popleft().get())
                while pending and pending[0].ready():
                    collect(pending.popleft().get())
            while pending:
                collect(pending.popleft().get())
    finally:
        torch.set_num_threads(threads)
        if pool is not None:
            pool.terminate() if pending else pool.close()
            pool.join()
    if bar is not None:
        bar.file.write('\n')
    summary['elapsed_s'] = time.perf_counter() - start
    summary['images_per_s'] = summary['written'] / max(summary['elapsed_s'], 1e-9)
    print_log(
        f'pseudo-labels (rank {rank}/{world_size}): {summary["written"]} written, '
        f'{summary["skipped"]} skipped, {len(summary["failed"])} failed of {len(indices)} in '
        f'{summary["elapsed_s"]:.1f}s ({summary["images_per_s"]:.2f} img/s; network '
        f'{summary["net_s"]:.1f}s, labelling+dCRF {summary["crf_s"]:.1f}s on {workers} '
        f'worker(s)) -> {out_dir}', logger=logger)
    return summary


def _saved_maps(maps_dir: str, img_id: str, pos: np.ndarray,
                size: Tuple[int, int]) -> Tuple[torch.Tensor, Optional[np.ndarray]]:
    """The logits and thresholds of ``{maps_dir}/{img_id}.npz``, checked against the
    image's positive classes and size (a clear error naming the file otherwise)."""
    path = osp.join(maps_dir, img_id + '.npz')
    if not osp.isfile(path):
        raise FileNotFoundError(f'no saved maps for {img_id}: {path} does not exist')
    logits, classes, thr = load_maps_npz(path)
    if not np.array_equal(classes, np.asarray(pos, np.int64)):
        raise ValueError(f'{path} holds the maps of classes {classes.tolist()}, but the '
                         f'image labels give {np.asarray(pos).tolist()}')
    if tuple(logits.shape[1:]) != tuple(size):
        raise ValueError(f'{path} holds maps of size {tuple(logits.shape[1:])}, but the '
                         f'image is {tuple(size)}')
    return torch.from_numpy(logits), (None if np.isnan(thr).all() and len(thr) else thr)


def _num_classes(model: torch.nn.Module) -> int:
    """C (foreground classes): the size of the logit scale ``[C]``, else ``num_classes`` of
    the head or the model."""
    scale = _logit_scale(model)
    if scale is not None:
        return int(scale.numel())
    for obj in (getattr(model, 'decode_head', None), getattr(model, 'head', None), model):
        n = getattr(obj, 'num_classes', None) if obj is not None else None
        if isinstance(n, int):
            return n
    raise AttributeError('cannot tell the number of classes: give the model (or its '
                         'decode_head) a num_classes attribute')
