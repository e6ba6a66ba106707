# Copyright (c) mmseg-sbce contributors.
"""The transform that gives the IRN boundary network its training targets."""
import os.path as osp
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform

from mmseg.registry import TRANSFORMS
from mmseg_sbce.datasets.transforms.loading import attach_seg_map
from .seeds import irn_seed_labels, resolve_seed_cfg


@TRANSFORMS.register_module()
class LoadIRNSeeds(BaseTransform):
    """Compute an image's IRN seed labels from its saved maps, as ``gt_seg_map``.

    Reads ``{maps_dir}/{img_id}.npz`` (written by ``tools/gen_pseudo.py --save-probs`` into
    its ``probs/`` folder: the logits of the image's positive classes, their indices and
    mapped thresholds) and applies :func:`~.seeds.irn_seed_labels` with ``seed_cfg`` (two
    labellings, each with a dCRF on the image). The seeds are computed on the fly rather
    than exported beforehand: they depend only on the maps and ``seed_cfg``, so changing a
    threshold needs no extra export step; the price is two dCRFs per sample in the
    dataloader workers (see docs/irn.md for the cost on VOC).

    Place it right after the image loader, before any geometric transform: the seeds are
    made at the image's size and then move with it (``gt_seg_map`` joins ``seg_fields``).

    Required keys: ``img`` (BGR, as ``LoadImageFromFile`` loads it), ``img_id``.
    Added keys: ``gt_seg_map``, ``seed_maps_path``. Modified: ``seg_fields``.

    Args:
        maps_dir (str): folder of the saved maps.
        seed_cfg (dict, optional): the seed rule (``SEED_CFG_DEFAULTS``).
        bgr (bool): the loaded image is BGR (mmcv's default). Defaults to True.
    """

    def __init__(self, maps_dir: str, seed_cfg: Optional[dict] = None,
                 bgr: bool = True) -> None:
        if not maps_dir:
            raise ValueError('LoadIRNSeeds needs maps_dir')
        self.maps_dir = maps_dir
        self.seed_cfg = resolve_seed_cfg(seed_cfg)
        self.bgr = bgr

    def transform(self, results: dict) -> dict:
        """Attach the seed labels of ``results['img_id']``."""
        from mmseg_sbce.apis import load_maps_npz

        if 'img' not in results or 'img_id' not in results:
            raise KeyError('LoadIRNSeeds needs results["img"] and results["img_id"]: put it '
                           'right after the image loader of a WSSS data set')
        path = osp.join(self.maps_dir, f'{results["img_id"]}.npz')
        if not osp.isfile(path):
            raise FileNotFoundError(f'no saved maps for image {results["img_id"]!r}: {path} '
                                    'does not exist (tools/gen_pseudo.py --save-probs)')
        logits, classes, thr = load_maps_npz(path)
        img = results['img']
        if tuple(logits.shape[1:]) != tuple(img.shape[:2]):
            raise ValueError(f'{path} holds maps of size {tuple(logits.shape[1:])}, but the '
                             f'image is {tuple(img.shape[:2])}')
        rgb = np.ascontiguousarray(img[..., ::-1] if self.bgr else img, dtype=np.uint8)
        try:
            seeds = irn_seed_labels(rgb, logits, classes, thr, self.seed_cfg)
        except ValueError as e:
            raise ValueError(f'{path}: {e}') from None
        return attach_seg_map(results, seeds, 'seed_maps_path', path)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(maps_dir={self.maps_dir!r}, '
                f'mode={self.seed_cfg["mode"]!r})')
