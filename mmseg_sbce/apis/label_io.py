# Copyright (c) mmseg-sbce contributors.
"""The files of a pseudo-label export: label PNGs, saved score maps, their paths.

Layout of an export folder: ``{out_dir}/{img_id}.png`` (mode 'P', VOC palette, ids ``0..C``
and 255, the size of the image) and, with ``save_probs``, ``{out_dir}/probs/{img_id}.npz``
(:func:`save_maps_npz`). Every file is written atomically
(:func:`mmseg_sbce.utils.io.atomic_write`).
"""
import io
import os
import os.path as osp
from typing import Any, List, Optional, Tuple

import numpy as np
import torch

from ..utils.io import TEMP_SUFFIX, atomic_write

_PALETTE: Optional[List[int]] = None


def output_paths(out_dir: str, img_id: str) -> Tuple[str, str]:
    """``({out_dir}/{img_id}.png, {out_dir}/probs/{img_id}.npz)``."""
    return osp.join(out_dir, f'{img_id}.png'), osp.join(out_dir, 'probs', f'{img_id}.npz')


def is_complete_output(png_path: str, npz_path: Optional[str] = None) -> bool:
    """Whether an image's files of an earlier run are complete, so a resumed export may
    skip it: the PNG (not a symbolic link) decodes fully as a label map and, when
    ``npz_path`` is given, the npz (not a link) opens as a zip archive with the arrays of
    :func:`save_maps_npz`.

    Atomic writes make a partial file impossible for this tool, but a folder can be copied,
    restored or filled up by other means; the check costs one PNG decode (and one zip
    directory read) per image, on resume only.
    """
    from PIL import Image
    if osp.islink(png_path) or not osp.isfile(png_path):
        return False
    try:
        with Image.open(png_path) as img:
            img.load()  # decodes every row: a truncated file raises here
            if img.mode not in ('P', 'L'):
                return False
    except Exception:  # any decoding error: not done, regenerate it
        return False
    if npz_path is None:
        return True
    if osp.islink(npz_path) or not osp.isfile(npz_path):
        return False
    try:
        with np.load(npz_path) as data:
            return {'logits', 'classes', 'thr'} <= set(data.files)
    except Exception:
        return False


def remove_export_files(out_dir: str) -> int:
    """Delete what an export writes into ``out_dir``, nothing else: the label PNGs
    (``*.png`` at the top level), ``probs/*.npz`` and the hidden temporary files of
    :func:`~mmseg_sbce.utils.io.atomic_write`. Other files (an evaluation report, a user's
    notes) and sub-folders stay. Links are removed, never followed.

    Returns:
        int: number of files removed.
    """
    removed = 0
    for folder, suffix in ((out_dir, '.png'), (osp.join(out_dir, 'probs'), '.npz')):
        if not osp.isdir(folder) or osp.islink(folder):
            continue
        for name in os.listdir(folder):
            path = osp.join(folder, name)
            ours = name.endswith(suffix) or (name.startswith('.')
                                             and name.endswith(TEMP_SUFFIX))
            if ours and (osp.islink(path) or osp.isfile(path)):
                os.remove(path)
                removed += 1
    return removed


def save_label_png(label: np.ndarray, path: str) -> None:
    """Write a VOC-palette mode-'P' PNG atomically (temp name, then ``os.replace``).

    A run killed at any moment leaves either no file or the complete file at ``path``
    (possibly a stray hidden temporary file next to it, never read by anyone).
    """
    from PIL import Image
    global _PALETTE
    if _PALETTE is None:
        from mmseg_sbce.datasets.palette import flat_png_palette
        _PALETTE = flat_png_palette()
    image = Image.fromarray(np.ascontiguousarray(label, dtype=np.uint8), mode='P')
    image.putpalette(_PALETTE)
    atomic_write(path, lambda tmp: image.save(tmp, format='PNG'))


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

    def write(tmp: str) -> None:
        with open(tmp, 'wb') as f:
            f.write(buf.getbuffer())

    atomic_write(path, write)


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


def load_saved_maps(maps_dir: str, img_id: str, pos: np.ndarray,
                    size: Tuple[int, int]) -> Tuple[torch.Tensor, Optional[np.ndarray]]:
    """The logits and thresholds of ``{maps_dir}/{img_id}.npz``, checked against the
    image's positive classes ``pos`` and ``size`` (a clear error naming the file otherwise).

    Returns:
        tuple: ``logits`` ``[K, H, W]`` float32 tensor and the mapped thresholds ``[K]``
        (None when the saving model had no threshold branch).
    """
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
