# Copyright (c) mmseg-sbce contributors.
"""What to label and how: the ``pseudo_cfg`` options and the data set of an export.

The labelling configuration is one plain dict (``pseudo_cfg``); its keys and defaults are
defined once, in :data:`PSEUDO_CFG_DEFAULTS`, and checked by :func:`resolve_pseudo_cfg`.

The data set to label is read from a full config by :func:`pseudo_dataset_cfg`, from these
keys (in this order):

* ``pseudo_dataloader.dataset``: the data set to label, used as is (its pipeline must load
  the image without resizing and pack it with its image labels);
* otherwise ``train_dataloader.dataset`` (unwrapped from ``RepeatDataset`` /
  ``ClassBalancedDataset``) with its pipeline replaced by :data:`DEFAULT_PIPELINE`.
"""
import copy
import os.path as osp
from numbers import Number
from typing import Any, Dict, Optional

#: How the passes of the multi-scale inference are combined (``pseudo_cfg.fusion``).
FUSIONS = ('logits', 'probs')

#: ``pseudo_cfg.amp`` values -> the autocast dtype of the network passes.
AMP_DTYPES = {'bf16': 'bfloat16', 'fp16': 'float16'}

#: Every key of ``pseudo_cfg`` with its default. This dict is the single definition.
#:
#: * ``scales``: image scales of the multi-scale inference.
#: * ``flip``: add the horizontally flipped image at every scale (flipped back before
#:   averaging), i.e. ``2 * len(scales)`` passes.
#: * ``min_side``: an image whose shorter side is below it is upsampled (aspect kept) so
#:   that its shorter side is ``min_side`` before the scales apply (tiny images would
#:   otherwise shrink to less than one feature cell); labels keep the image's own size.
#:   ``None`` or 0: off.
#: * ``max_pixels``: the largest pass (``max(scales)``) has at most this many pixels: a
#:   larger image is downscaled (aspect kept) before the scales apply, so memory and time
#:   stay bounded; labels keep the image's own size. The default leaves every VOC and COCO
#:   image (at most 640 px a side) untouched at scale 2.0. ``min_side`` wins when both
#:   apply (extreme aspect ratios). ``None`` or 0: off.
#: * ``threshold``: ``'adaptive'`` = eq. 9 with the network's own threshold mapped into the
#:   unscaled space; ``'otsu'`` = eq. 9 with Otsu's split of each class map's probabilities
#:   ``sigmoid(x)`` (fused, before dCRF) as its ``t'``, no threshold branch needed (a
#:   departure from the paper, docs/results.md "Which threshold, across all six data
#:   sets"); a float in (0, 1) = CAM-style fixed background threshold. Both string rules
#:   are "per-map" rules: below, what is said of ``'adaptive'`` holds for ``'otsu'``.
#: * ``fusion``: how the passes are combined. ``'logits'``: the unscaled logits of every
#:   pass are upsampled bilinearly and averaged (the CAM convention of PSA/IRN, and what the
#:   reference code does before its threshold). ``'probs'``: every pass's probabilities
#:   ``sigmoid(x)`` are upsampled and averaged, the usual ensemble of probabilities (as
#:   MMSeg's test-time augmentation does), which is what eq. 9 compares with ``t'``. ``None``
#:   (default) means ``'probs'`` for ``'adaptive'`` and ``'logits'`` for a float threshold;
#:   ``'probs'`` with ``normalize_cam`` is refused (the CAM is defined on logits). Why
#:   ``'probs'`` for eq. 9: a Spatial-BCE classifier's logits are far larger inside objects
#:   than outside, so in a logit average one confident pass, and bilinear interpolation
#:   between a confident cell and a background cell, push the decision boundary outwards
#:   (a halo); a probability average is a vote (docs/results.md measures both).
#: * ``normalize_cam``: compare the CAM ``relu(x_c) / max relu(x_c)`` of each class map (the
#:   PSA/IRN convention) rather than ``sigmoid(x_c)`` with a *fixed* threshold. ``None``
#:   (default) means True for a float threshold and False for ``'adaptive'``; True together with
#:   ``'adaptive'`` is refused (t' lives in the space of the raw probabilities).
#: * ``unsure``: ``None`` (off) or ``dict(margin=m)``: a pixel whose best score
#:   ``max_c S_c`` (``S_c = p_c - t'_c`` or ``p_c - bg_thr``) lies within ``[-m, m]``, i.e. too
#:   close to the foreground/background decision, is labelled 255. With ``unary='labels'``
#:   unsure pixels get a uniform unary in the dCRF (they do not push their neighbours);
#:   with either unary they stay 255 after it.
#: * ``amp``: autocast of the network passes: ``None`` (float32, the default), ``'bf16'`` or
#:   ``'fp16'`` (CUDA only; CPU autocast computes in bfloat16 only). The network's outputs
#:   are cast to float32 before the fusion; fusion, labelling and dCRF stay float32.
#: * ``crf``: dense CRF settings; ``enabled``; ``unary``: ``'labels'`` (``unary_from_labels``
#:   on the eq. 9 / CAM label map, ``gt_prob``) or ``'probs'`` (``unary_from_softmax`` on
#:   ``softmax([0, S_1..S_K] / prob_temperature)``, which keeps the argmax of the labelling);
#:   ``gaussian`` / ``bilateral`` kernel parameters; ``iterations``; ``size_reference``:
#:   ``(W0, H0)``, by default VOC's ``(500, 375)``: the kernels' ``sxy`` are given at that
#:   size and each image scales them by ``sqrt(H * W / (W0 * H0))``, so that they cover the
#:   same share of a 128-pixel image as of a VOC photo (unchanged at VOC's size); ``None``:
#:   ``sxy`` in absolute pixels at every size (the reference code's behaviour). See
#:   :mod:`~.crf` and docs/results.md for what it changed on the generated data sets.
#: * ``saliency``: ``None`` (off) or a dict of
#:   :data:`~.saliency.SALIENCY_CFG_DEFAULTS` (``dir`` required): label with the user's
#:   saliency maps as background cues (:mod:`~.saliency`, docs/pseudo_labels.md).
#: The per-map threshold rules of ``pseudo_cfg.threshold`` (eq. 9 with one ``t'`` per class
#: map): the learned threshold, or Otsu's split of the map.
MAP_THRESHOLDS = ('adaptive', 'otsu')

PSEUDO_CFG_DEFAULTS: Dict[str, Any] = dict(
    scales=(1.0, 0.5, 1.5, 2.0),
    flip=True,
    min_side=16,
    max_pixels=1280 * 1280,
    amp=None,
    threshold='adaptive',
    fusion=None,
    normalize_cam=None,
    unsure=None,
    saliency=None,
    crf=dict(
        enabled=True,
        unary='labels',
        gt_prob=0.7,
        prob_temperature=0.1,
        gaussian=dict(sxy=3, compat=3),
        bilateral=dict(sxy=40, srgb=5, compat=10),
        iterations=10,
        size_reference=(500, 375)),
)


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
        one of :data:`MAP_THRESHOLDS` or a float, ``scales`` a tuple of floats.
    """
    out = _merge(PSEUDO_CFG_DEFAULTS, dict(cfg or {}), '')
    thr = out['threshold']
    if isinstance(thr, str) and thr not in MAP_THRESHOLDS:
        try:
            thr = float(thr)
        except ValueError:
            raise ValueError(f'threshold must be one of {MAP_THRESHOLDS} or a float, got '
                             f'{thr!r}') from None
    per_map = thr in MAP_THRESHOLDS
    if not per_map:
        if not isinstance(thr, Number) or not 0.0 <= float(thr) < 1.0:
            raise ValueError(f'a fixed background threshold must be in [0, 1), got {thr!r}')
        thr = float(thr)
    out['threshold'] = thr
    if out['normalize_cam'] is None:
        out['normalize_cam'] = not per_map
    elif out['normalize_cam'] and per_map:
        raise ValueError(f'normalize_cam=True cannot be combined with threshold="{thr}": '
                         'its per-map thresholds are defined on the raw probabilities')
    out['normalize_cam'] = bool(out['normalize_cam'])
    if out['fusion'] is None:
        out['fusion'] = 'probs' if per_map else 'logits'
    if out['fusion'] not in FUSIONS:
        raise ValueError(f'fusion must be one of {FUSIONS} or None, got {out["fusion"]!r}')
    if out['fusion'] == 'probs' and out['normalize_cam']:
        raise ValueError('fusion="probs" cannot be combined with normalize_cam=True: the CAM '
                         'relu(x) / max relu(x) is defined on averaged logits')
    out['scales'] = tuple(float(s) for s in out['scales'])
    if not out['scales'] or min(out['scales']) <= 0:
        raise ValueError(f'scales must be positive, got {out["scales"]}')
    for key in ('min_side', 'max_pixels'):
        value = out[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0):
            raise ValueError(f'{key} must be None or a non-negative integer, got {value!r}')
    if out['unsure'] is not None:
        margin = dict(out['unsure']).get('margin')
        if set(dict(out['unsure'])) != {'margin'} or not isinstance(margin, Number) \
                or margin < 0:
            raise ValueError('unsure must be None or dict(margin=non-negative float), got '
                             f'{out["unsure"]!r}')
    if out['amp'] is not None and out['amp'] not in AMP_DTYPES:
        raise ValueError(f'amp must be None or one of {sorted(AMP_DTYPES)}, got {out["amp"]!r}')
    crf = out['crf']
    if crf['unary'] not in ('labels', 'probs'):
        raise ValueError(f'crf.unary must be "labels" or "probs", got {crf["unary"]!r}')
    if not 0.0 < crf['gt_prob'] < 1.0:
        raise ValueError(f'crf.gt_prob must be in (0, 1), got {crf["gt_prob"]}')
    ref = crf['size_reference']
    if ref is not None:
        if not isinstance(ref, (list, tuple)) or len(ref) != 2 or not all(
                isinstance(v, Number) and not isinstance(v, bool) and v > 0 for v in ref):
            raise ValueError('crf.size_reference must be None or (width, height) in pixels, '
                             f'got {ref!r}')
        crf['size_reference'] = tuple(float(v) for v in ref)
    from .saliency import resolve_saliency_cfg
    out['saliency'] = resolve_saliency_cfg(out['saliency'])
    return out


def unsure_margin(cfg: dict) -> Optional[float]:
    """The margin of the unsure rule of a resolved ``pseudo_cfg``; None when it is off."""
    return None if cfg['unsure'] is None else float(cfg['unsure']['margin'])


#: The pipeline put on the training data set when no ``pseudo_dataloader`` is configured.
DEFAULT_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackWSSSInputs')]

_WRAPPERS = ('RepeatDataset', 'ClassBalancedDataset')


def pseudo_dataset_cfg(cfg: Any, split: Optional[str] = None) -> dict:
    """The dataset config to label.

    Args:
        cfg (Config | dict): the full config.
        split (str, optional): changes ``ann_file``: a value containing ``/`` or ending in
            ``.txt`` is used as the new ``ann_file``; a bare name (``train``) replaces the
            file name of the configured one (``.../train_aug.txt`` -> ``.../train.txt``).

    Returns:
        dict: a deep copy, ready for ``DATASETS.build``; a ``BaseWSSSDataset`` gets
        ``keep_unlabelled=True`` (unless set), so images without a foreground class are
        labelled (all background) rather than left out of the export.
    """
    loader = cfg.get('pseudo_dataloader', None)
    if loader is not None and loader.get('dataset') is not None:
        dataset = copy.deepcopy(dict(loader['dataset']))
    else:
        train = cfg.get('train_dataloader', None)
        if train is None or train.get('dataset') is None:
            raise KeyError('the config has neither pseudo_dataloader.dataset nor '
                           'train_dataloader.dataset')
        dataset = copy.deepcopy(dict(train['dataset']))
        while dataset.get('type') in _WRAPPERS:
            dataset = copy.deepcopy(dict(dataset['dataset']))
        if dataset.get('type') == 'ConcatDataset':
            raise ValueError('train_dataloader.dataset is a ConcatDataset: set '
                             'pseudo_dataloader.dataset to the data set to label')
        dataset['pipeline'] = copy.deepcopy(DEFAULT_PIPELINE)
    if split:
        if '/' in split or split.endswith('.txt'):
            dataset['ann_file'] = split
        else:
            old = dataset.get('ann_file') or ''
            dataset['ann_file'] = osp.join(osp.dirname(old), f'{split}.txt')
    if _is_wsss_dataset(dataset.get('type')):
        # Every image of the split gets a label file: one without a foreground class is
        # all background, not left out (training skips such images, labelling must not).
        dataset.setdefault('keep_unlabelled', True)
    return dataset


def _is_wsss_dataset(dataset_type: Any) -> bool:
    """Whether a dataset ``type`` (class or registered name) is a ``BaseWSSSDataset``."""
    from mmseg.registry import DATASETS

    from ..datasets.base_wsss import BaseWSSSDataset
    cls = DATASETS.get(dataset_type) if isinstance(dataset_type, str) else dataset_type
    return isinstance(cls, type) and issubclass(cls, BaseWSSSDataset)
