# Copyright (c) mmseg-sbce contributors.
"""Saliency-guided pseudo-labels: the classifier's maps combined with a saliency map.

Users bring one grey PNG per image from an off-the-shelf salient-object detector
(``{dir}/{img_id}{suffix}``, values 0..255, any size: resized to the image). The rule
(``pseudo_cfg.saliency``, see :data:`SALIENCY_CFG_DEFAULTS`), on the compact label set
``0`` background, ``k`` for the image's ``k``-th positive class:

* saliency ``s`` in ``[0, 1]``; background score ``1 - s``, or with ``binarize`` 1 where
  ``s <= salient_threshold`` and 0 elsewhere;
* class scores: the image's maps of its positive classes, 0 where a map is below its class
  threshold (eq. 9's ``t'_c`` with ``threshold='adaptive'``: probabilities ``sigmoid(x)``
  against ``t'``; with a fixed threshold the CAM / probability of ``pseudo_cfg`` against
  it; ``class_threshold`` overrides both);
* label = argmax over ``[background, classes]``;
* ``correct_with_probs`` (the paper's variant): where some class is confident
  (score ``>= class threshold + confident_margin``) but saliency says background
  (``s <= salient_threshold``), the best confident class wins; where saliency says salient
  but no class is confident, 255;
* ``ignore``: salient pixels that still end up background are 255 (unsure).

``pseudo_cfg.unsure`` (eq. 9's margin) does not apply to this rule.

:func:`saliency_compact_labels` is the rule; :func:`load_saliency` reads a map.
"""
import os.path as osp
from numbers import Number
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from ..models import labelling
from ..utils.io import IGNORE_INDEX
from .pseudo_cfg import MAP_THRESHOLDS

#: Keys of ``pseudo_cfg.saliency`` (None = off) and their defaults.
#:
#: * ``dir``: folder of the saliency maps (required).
#: * ``suffix``: file name of image ``img_id`` is ``{img_id}{suffix}``.
#: * ``salient_threshold``: ``s > salient_threshold`` is salient (binarisation, the
#:   ignore rule and the correction); 0.2 is the benchmark rule's binarisation.
#: * ``binarize``: background score ``s <= salient_threshold`` (0/1) instead of ``1 - s``.
#: * ``class_threshold``: None = the labelling threshold of ``pseudo_cfg`` (``t'`` per class
#:   for ``'adaptive'``, else the fixed threshold); a float overrides it for every class.
#: * ``ignore``: salient pixels labelled background become 255.
#: * ``correct_with_probs``: the paper's correction of the saliency by the network.
#: * ``confident_margin``: a class is confident where its score is at least its class
#:   threshold plus this margin (the correction only).
#: * ``on_missing``: ``'error'``: a missing or unreadable map fails the image, the error
#:   names the file; ``'fallback'``: that image is labelled without saliency and counted.
SALIENCY_CFG_DEFAULTS: Dict[str, Any] = dict(
    dir=None,
    suffix='.png',
    salient_threshold=0.2,
    binarize=False,
    class_threshold=None,
    ignore=True,
    correct_with_probs=False,
    confident_margin=0.1,
    on_missing='error')

ON_MISSING = ('error', 'fallback')


def resolve_saliency_cfg(cfg: Optional[dict]) -> Optional[dict]:
    """:data:`SALIENCY_CFG_DEFAULTS` updated by ``cfg`` and checked; None stays None."""
    if cfg is None:
        return None
    out = dict(SALIENCY_CFG_DEFAULTS)
    for key, value in dict(cfg).items():
        if key not in out:
            raise KeyError(f'unknown key "saliency.{key}" in pseudo_cfg; known keys: '
                           f'{sorted(out)}')
        out[key] = value
    if not isinstance(out['dir'], str) or not out['dir']:
        raise ValueError(f'pseudo_cfg.saliency.dir must be the folder of the saliency maps, '
                         f'got {out["dir"]!r}')
    for key in ('salient_threshold', 'confident_margin'):
        if isinstance(out[key], bool) or not isinstance(out[key], Number):
            raise ValueError(f'pseudo_cfg.saliency.{key} must be a number, got {out[key]!r}')
    if not 0.0 <= out['salient_threshold'] < 1.0:
        raise ValueError('pseudo_cfg.saliency.salient_threshold must be in [0, 1), got '
                         f'{out["salient_threshold"]!r}')
    thr = out['class_threshold']
    if thr is not None and (isinstance(thr, bool) or not isinstance(thr, Number)):
        raise ValueError(f'pseudo_cfg.saliency.class_threshold must be None or a number, got '
                         f'{thr!r}')
    if out['on_missing'] not in ON_MISSING:
        raise ValueError(f'pseudo_cfg.saliency.on_missing must be one of {ON_MISSING}, got '
                         f'{out["on_missing"]!r}')
    for key in ('binarize', 'ignore', 'correct_with_probs'):
        out[key] = bool(out[key])
    out['suffix'] = str(out['suffix'])
    return out


def saliency_path(cfg: dict, img_id: str) -> str:
    """``{dir}/{img_id}{suffix}`` of a resolved saliency config."""
    return osp.join(cfg['dir'], f'{img_id}{cfg["suffix"]}')


def load_saliency(path: str, size: Tuple[int, int]) -> np.ndarray:
    """A grey saliency PNG as float32 ``[H, W]`` in ``[0, 1]`` at the image's ``size``.

    A map of another size is resized bilinearly; a colour image is converted to grey.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file does not decode as an image (the message names it).
    """
    from PIL import Image
    if not osp.isfile(path):
        raise FileNotFoundError(f'saliency map {path} not found')
    try:
        with Image.open(path) as img:
            img.load()
            grey = img.convert('L')
    except Exception as exc:  # any decoding error: one message naming the file
        raise ValueError(f'saliency map {path} is unreadable ({type(exc).__name__}: '
                         f'{exc})') from None
    height, width = size
    if grey.size != (width, height):
        grey = grey.resize((width, height), Image.BILINEAR)
    return np.asarray(grey, dtype=np.float32) / 255.0


def saliency_for_image(cfg: dict, img_id: str,
                       size: Tuple[int, int]) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """The saliency map of one image, with ``on_missing`` applied.

    Returns:
        tuple: ``(map, None)``, or ``(None, reason)`` when the map is missing or unreadable
        and ``on_missing='fallback'``.

    Raises:
        FileNotFoundError, ValueError: with ``on_missing='error'`` (see :func:`load_saliency`).
    """
    try:
        return load_saliency(saliency_path(cfg, img_id), size), None
    except (FileNotFoundError, ValueError) as exc:
        if cfg['on_missing'] == 'fallback':
            return None, str(exc)
        raise


def class_scores(logits: torch.Tensor, thr: Any, pcfg: dict) -> Tuple[torch.Tensor,
                                                                       torch.Tensor]:
    """The class maps the rule compares and their per-class thresholds.

    Args:
        logits (Tensor): float32 ``[K, H, W]`` unscaled logits of the positive classes.
        thr: ``[K]`` mapped thresholds ``t'`` (used with ``threshold='adaptive'``).
        pcfg (dict): a resolved ``pseudo_cfg`` with ``saliency`` set.

    Returns:
        tuple: ``(maps [K, H, W], thresholds [K])``: probabilities against ``t'``
        (adaptive) or Otsu's split of each map (otsu), else the CAM (``normalize_cam``) or
        the probability against the fixed threshold; ``saliency.class_threshold``
        replaces the thresholds when set.
    """
    num = logits.shape[0]
    if pcfg['threshold'] in MAP_THRESHOLDS:
        maps = logits.sigmoid()
        thresholds = labelling.per_map_thresholds(maps, thr, pcfg['threshold'])
    else:
        maps = labelling.cam_from_logits(logits) if pcfg['normalize_cam'] else logits.sigmoid()
        thresholds = torch.full((num, ), float(pcfg['threshold']))
    override = pcfg['saliency']['class_threshold']
    if override is not None:
        thresholds = torch.full((num, ), float(override))
    return maps, thresholds


def saliency_compact_labels(maps: torch.Tensor, thresholds: torch.Tensor,
                            saliency: np.ndarray, scfg: dict) -> np.ndarray:
    """The saliency rule of the module docstring on one image.

    Args:
        maps (Tensor): ``[K, H, W]`` class maps of the positive classes.
        thresholds (Tensor): ``[K]`` their class thresholds.
        saliency (np.ndarray): ``[H, W]`` saliency in ``[0, 1]``.
        scfg (dict): a resolved saliency config (:func:`resolve_saliency_cfg`).

    Returns:
        np.ndarray: ``[H, W]`` uint8 compact labels ``0..K`` and 255.
    """
    sal = torch.as_tensor(np.asarray(saliency, np.float32))
    if tuple(sal.shape) != tuple(maps.shape[1:]):
        raise ValueError(f'saliency map {tuple(sal.shape)} and class maps '
                         f'{tuple(maps.shape[1:])} differ in size')
    salient = sal > scfg['salient_threshold']
    background = (~salient).float() if scfg['binarize'] else 1.0 - sal
    thr = thresholds.reshape(-1, 1, 1).to(maps.dtype)
    scores = torch.where(maps >= thr, maps, torch.zeros_like(maps))
    labels = torch.cat([background[None], scores]).argmax(0)
    if scfg['correct_with_probs'] and maps.shape[0] > 0:
        confident = maps >= thr + scfg['confident_margin']
        any_confident = confident.any(0)
        # The best confident class (others masked out) where saliency says background.
        best = torch.where(confident, maps, torch.full_like(maps, -1.0)).argmax(0) + 1
        trust_net = any_confident & ~salient
        labels = torch.where(trust_net, best, labels)
        labels[salient & ~any_confident] = IGNORE_INDEX
    elif scfg['correct_with_probs']:  # no positive class: salient pixels are unsure
        labels[salient] = IGNORE_INDEX
    if scfg['ignore']:
        labels[salient & (labels == 0)] = IGNORE_INDEX
    return labels.numpy().astype(np.uint8)
