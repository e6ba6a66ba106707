# Copyright (c) mmseg-sbce contributors.
"""Side-by-side pictures: image | ground truth | CAMs of several models | pseudo-label."""
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from PIL import Image

from mmseg_sbce.datasets.palette import voc_colormap


def _colour_labels(label: np.ndarray) -> np.ndarray:
    palette = np.asarray(voc_colormap(256), np.uint8)
    palette[255] = (255, 255, 255)
    return palette[label][..., ::-1]  # RGB palette -> BGR for cv2


#: What a map column shows: the CAM (max-normalised ReLU of the logits, the baseline's
#: map) or the probability ``sigmoid(x)`` (what eq. 9 compares with the learned ``t'``).
MAP_MODES = ('cam', 'prob')


def _cam_picture(npz_path: str, img: np.ndarray, mode: str = 'cam') -> np.ndarray:
    """Heat map of the strongest positive class (``mode``: see ``MAP_MODES``), blended over
    the image."""
    from mmseg_sbce.apis.label_io import load_maps_npz
    from mmseg_sbce.models.labelling import fixed_threshold_maps
    if mode not in MAP_MODES:
        raise ValueError(f'map mode must be one of {MAP_MODES}, got {mode!r}')
    logits = torch.from_numpy(load_maps_npz(npz_path)[0])
    if len(logits) == 0:
        cam = np.zeros(img.shape[:2], np.float32)
    else:
        cam = fixed_threshold_maps(logits, normalize_cam=mode == 'cam').numpy().max(axis=0)
    heat = cv2.applyColorMap(np.uint8(np.clip(cam, 0, 1) * 255), cv2.COLORMAP_JET)
    return cv2.addWeighted(img, 0.4, heat, 0.6, 0)


def _caption(tile: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((16, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.concatenate([bar, tile], 0)


def comparison_figure(data_root: str,
                      columns: Sequence[Tuple[str, ...]],
                      pseudo_dir: str,
                      out_file: str,
                      img_ids: Optional[List[str]] = None,
                      num_rows: int = 6,
                      split: str = 'ImageSets/Segmentation/train.txt',
                      scale: int = 2) -> str:
    """Write a grid with one row per image: image | GT | one CAM per column | pseudo-label.

    Args:
        data_root (str): a VOC-layout data set (``JPEGImages``, ``SegmentationClass``).
        columns: ``(title, probs_dir)`` or ``(title, probs_dir, mode)``; ``probs_dir`` holds
            ``{img_id}.npz`` written by ``tools/gen_pseudo.py --save-probs``; ``mode`` is
            ``'cam'`` (default) or ``'prob'`` (see ``MAP_MODES``).
        pseudo_dir (str): pseudo-label PNGs shown in the last column.
        out_file (str): PNG to write.
        img_ids (list[str], optional): images to show; default the first ``num_rows`` of
            ``split``.
        num_rows (int): rows when ``img_ids`` is not given.
        split (str): split file (relative to ``data_root``) to take ids from.
        scale (int): nearest-neighbour enlargement of every tile.

    Returns:
        str: ``out_file``.
    """
    if img_ids is None:
        with open(osp.join(data_root, split)) as f:
            img_ids = [line.strip() for line in f if line.strip()][:num_rows]
    titles = ['image', 'ground truth'] + [c[0] for c in columns] + ['pseudo-label']
    rows = []
    for img_id in img_ids:
        img = cv2.imread(osp.join(data_root, 'JPEGImages', img_id + '.jpg'))
        if img is None:
            raise FileNotFoundError(f'cannot read image {img_id} under {data_root}')
        gt = np.array(Image.open(osp.join(data_root, 'SegmentationClass', img_id + '.png')))
        tiles = [img, _colour_labels(gt)]
        tiles += [_cam_picture(osp.join(c[1], img_id + '.npz'), img, *c[2:])
                  for c in columns]
        tiles.append(_colour_labels(np.array(Image.open(osp.join(pseudo_dir,
                                                                 img_id + '.png')))))
        tiles = [cv2.resize(t, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
                 for t in tiles]
        rows.append(np.concatenate(tiles, 1))
    grid = np.concatenate(rows, 0)
    header = np.concatenate(
        [_caption(np.zeros((0, t.shape[1], 3), np.uint8), title)
         for t, title in zip(np.split(rows[0], len(titles), axis=1), titles)], 1)
    cv2.imwrite(out_file, np.concatenate([header, grid], 0))
    return out_file
