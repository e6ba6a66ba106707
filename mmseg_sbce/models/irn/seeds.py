# Copyright (c) mmseg-sbce contributors.
"""IRN's confident seed labels ("ir labels") from saved class maps.

Each image is labelled twice from its maps: with a *high* background threshold (only the
confident foreground survives) and with a *low* one (only the confident background stays
background), each followed by a dense CRF. The seed map takes the foreground classes of the
high-threshold map, background where both maps say background, and 255 (unknown)
elsewhere. The affinity loss learns only from the seeds' labelled pixels.

Two rules, chosen by ``seed_cfg['mode']``:

* ``'fixed'``: IRN's rule on CAMs (max-normalised ReLU of the logits) with two fixed
  background thresholds ``high`` and ``low`` (IRN: 0.30 / 0.05 for its CAMs; other CAM
  sources retune them).
* ``'adaptive'``: eq. 9 of Spatial-BCE with the network's own mapped thresholds ``t'``
  shifted by ``+margin`` (high) and ``-margin`` (low), so no background threshold is tuned
  by hand; it needs maps saved from a model with a threshold branch.
"""
import copy
from typing import Any, Optional, Sequence

import numpy as np
import torch

from .. import labelling as rules

IGNORE_INDEX = 255

#: Every key of ``seed_cfg`` and its default. ``crf`` holds the dCRF parameters of IRN's
#: seed step (``enabled`` switches it off, e.g. for tests).
SEED_CFG_DEFAULTS = dict(
    mode='fixed',
    high=0.30,
    low=0.05,
    margin=0.1,
    crf=dict(enabled=True, gt_prob=0.7, gaussian=dict(sxy=3, compat=3),
             bilateral=dict(sxy=50, srgb=5, compat=10), iterations=10),
)
SEED_MODES = ('fixed', 'adaptive')


def resolve_seed_cfg(cfg: Optional[dict] = None) -> dict:
    """:data:`SEED_CFG_DEFAULTS` updated by ``cfg`` (``crf`` merged key by key); unknown keys
    and bad values raise."""
    out = copy.deepcopy(SEED_CFG_DEFAULTS)
    for key, value in dict(cfg or {}).items():
        if key not in out:
            raise KeyError(f'unknown key "{key}" in seed_cfg; known keys: {sorted(out)}')
        if key == 'crf':
            for ckey, cvalue in dict(value).items():
                if ckey not in out['crf']:
                    raise KeyError(f'unknown key "crf.{ckey}" in seed_cfg; known keys: '
                                   f'{sorted(out["crf"])}')
                out['crf'][ckey] = cvalue
        else:
            out[key] = value
    if out['mode'] not in SEED_MODES:
        raise ValueError(f'seed_cfg.mode must be one of {SEED_MODES}, got {out["mode"]!r}')
    if out['mode'] == 'fixed' and not 0.0 <= out['low'] < out['high'] < 1.0:
        raise ValueError('seed_cfg needs 0 <= low < high < 1, got '
                         f'low={out["low"]}, high={out["high"]}')
    if out['mode'] == 'adaptive' and not 0.0 < out['margin'] < 1.0:
        raise ValueError(f'seed_cfg.margin must be in (0, 1), got {out["margin"]}')
    return out


def _compact_labels(logits: torch.Tensor, thr: Optional[torch.Tensor], cfg: dict,
                    high: bool) -> np.ndarray:
    """Compact ids (0 background, k + 1 for the k-th map) of the high or low labelling."""
    if cfg['mode'] == 'fixed':
        scores = rules.cam_scores(logits, cfg['high'] if high else cfg['low'])
    else:
        shift = cfg['margin'] if high else -cfg['margin']
        # Keep the shifted thresholds inside (0, 1): a probability never crosses 1.
        shifted = (thr + shift).clamp(1e-6, 1 - 1e-6)
        scores = rules.eq9_scores(logits.sigmoid(), shifted)
    return rules.labels_from_scores(scores).numpy().astype(np.uint8)


def irn_seed_labels(img_rgb: Optional[np.ndarray],
                    logits: Any,
                    classes: Sequence[int],
                    thr: Any = None,
                    cfg: Optional[dict] = None) -> np.ndarray:
    """Seed labels of one image.

    Args:
        img_rgb (np.ndarray, optional): ``[H, W, 3]`` uint8 RGB image, for the dCRF (may be
            None when ``crf.enabled`` is False).
        logits (array): ``[K, H, W]`` unscaled logits of the image's positive classes.
        classes (Sequence[int]): ``[K]`` their class indices ``0..C-1``.
        thr (array, optional): ``[K]`` mapped thresholds ``t'`` (``'adaptive'`` only).
        cfg (dict, optional): ``seed_cfg`` (:data:`SEED_CFG_DEFAULTS`).

    Returns:
        np.ndarray: ``[H, W]`` uint8: 0 background, ``c + 1`` class ``c``, 255 unknown.
    """
    from mmseg_sbce.apis import dense_crf

    cfg = resolve_seed_cfg(cfg)
    logits = torch.as_tensor(np.asarray(logits, np.float32))
    if logits.dim() != 3:
        raise ValueError(f'logits must be [K, H, W], got {tuple(logits.shape)}')
    classes = np.asarray(classes, np.int64).reshape(-1)
    num, height, width = logits.shape
    if len(classes) != num:
        raise ValueError(f'{num} class maps but {len(classes)} class indices')
    if num == 0:  # no foreground label: everything is background
        return np.zeros((height, width), np.uint8)
    thr_t = None
    if cfg['mode'] == 'adaptive':
        thr_arr = None if thr is None else np.asarray(thr, np.float32).reshape(-1)
        if thr_arr is None or thr_arr.shape != (num, ) or np.isnan(thr_arr).any():
            raise ValueError('seed_cfg.mode="adaptive" needs the mapped thresholds t\' of '
                             'every class (maps saved from a model with a threshold branch); '
                             f'got {thr!r}. Use mode="fixed" for these maps')
        thr_t = torch.from_numpy(thr_arr)
    crf = cfg['crf']
    if crf['enabled']:
        if img_rgb is None or tuple(img_rgb.shape[:2]) != (height, width):
            raise ValueError(f'the dCRF needs the {height}x{width} RGB image, got '
                             f'{None if img_rgb is None else img_rgb.shape}')
        img_rgb = np.ascontiguousarray(img_rgb, dtype=np.uint8)
    labelled = []
    for high in (True, False):
        compact = _compact_labels(logits, thr_t, cfg, high)
        if crf['enabled']:
            compact = dense_crf(img_rgb, compact, num + 1, crf).astype(np.uint8)
        labelled.append(compact)
    fg, bg = labelled
    compact = np.where(fg > 0, fg, np.where(bg == 0, 0, IGNORE_INDEX)).astype(np.uint8)
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    lut[0] = 0
    lut[1:num + 1] = classes + 1
    return lut[compact]
