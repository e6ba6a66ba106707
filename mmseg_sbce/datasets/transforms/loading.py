# Copyright (c) mmseg-sbce contributors.
"""Loading transforms: images with clear errors, and the Q map of Spatial-BCE."""
import io
import os.path as osp
from typing import Optional

import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform, LoadImageFromFile
from mmseg.registry import TRANSFORMS
from PIL import Image


def attach_seg_map(results: dict, seg_map: np.ndarray, path_key: str,
                   path: Optional[str]) -> dict:
    """Put a label map into ``results`` as ``gt_seg_map`` so geometric transforms move it.

    Args:
        results (dict): The pipeline's results dict (modified in place).
        seg_map (np.ndarray): The ``[H, W]`` label map at the image's size.
        path_key (str): Key recording where the map came from (e.g. ``'q_map_path'``).
        path (str, optional): That file, or None when the map was made up.

    Returns:
        dict: ``results``, with ``gt_seg_map`` in ``seg_fields``.
    """
    results['gt_seg_map'] = seg_map
    results[path_key] = path
    seg_fields = results.setdefault('seg_fields', [])
    if 'gt_seg_map' not in seg_fields:
        seg_fields.append('gt_seg_map')
    return results


def to_three_channels(img: np.ndarray, img_bytes: bytes) -> np.ndarray:
    """Give a decoded image the 3 (BGR) channels every model of this package expects.

    Decoders return fewer or more channels for some files (a grayscale or palette image
    with ``color_type='unchanged'`` or ``'grayscale'``, a palette image through the pillow
    backend gives its palette indices, RGBA keeps its alpha). A 3-channel image is
    returned unchanged (the same array).

    Args:
        img (np.ndarray): The decoded image, ``[H, W]`` or ``[H, W, C]``.
        img_bytes (bytes): The file's bytes (to read a palette through the palette).

    Returns:
        np.ndarray: ``[H, W, 3]``: gray replicated, palette entries looked up, alpha dropped.
    """
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    if img.ndim == 3 and img.shape[2] == 4:
        return np.ascontiguousarray(img[..., :3])  # BGRA -> BGR
    # One channel left: palette indices must be looked up, not read as gray levels.
    with Image.open(io.BytesIO(img_bytes)) as pil:
        if pil.mode in ('P', 'PA'):
            return np.ascontiguousarray(np.asarray(pil.convert('RGB'))[..., ::-1])
    gray = img if img.ndim == 2 else img[..., 0]
    return np.repeat(gray[..., None], 3, axis=2)


@TRANSFORMS.register_module()
class LoadCheckedImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` whose failures name the file and the image id.

    mmcv's transform asserts on an undecodable file (an ``AssertionError``, gone under
    ``python -O``); this one raises ``FileNotFoundError`` for a missing file and
    ``OSError`` for a corrupt or non-image file. Same arguments as ``LoadImageFromFile``;
    ``ignore_empty=True`` still returns None instead (the data set then refetches).

    The image always has 3 channels (BGR), whatever the file and ``color_type``: grayscale
    is replicated, palette images go through their palette, alpha is dropped (see
    :func:`to_three_channels`).
    """

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']`` into ``results['img']``."""
        filename = results['img_path']
        who = f" (img_id {results['img_id']!r})" if 'img_id' in results else ''
        try:
            img_bytes = fileio.get(filename, backend_args=self.backend_args)
        except FileNotFoundError:
            if self.ignore_empty:
                return None
            raise FileNotFoundError(f'image {filename}{who} not found') from None
        try:
            img = mmcv.imfrombytes(
                img_bytes, flag=self.color_type, backend=self.imdecode_backend)
        except Exception as e:  # the pillow backend raises, cv2 returns None
            img, error = None, e
        else:
            error = None
        if img is None:
            if self.ignore_empty:
                return None
            reason = f': {error}' if error is not None else ''
            raise OSError(f'cannot decode image {filename}{who}: the file is corrupt or '
                          f'not an image ({len(img_bytes)} bytes){reason}')
        img = to_three_channels(img, img_bytes)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class LoadQMap(BaseTransform):
    """Load the Q map (previous phase's pseudo-label) of an image as ``gt_seg_map``.

    Reads ``{q_dir}/{current}/{img_id}{suffix}``: a single-channel uint8 PNG with 0
    background, 1..C the classes and 255 unknown. The map becomes ``results['gt_seg_map']``
    and ``'gt_seg_map'`` joins ``seg_fields``, so mmseg's geometric transforms (RandomResize,
    RandomCrop, RandomFlip, ...) move it exactly like the image.

    ``{q_dir}/{current}`` is resolved at every call, never cached: the Q hook repoints that
    symlink between phases and every dataloader worker reads the new Q without a rebuild.
    While it does not exist (before the first Q: the BCE phase) the map is all 255.

    With ``with_thresholds=True`` it also reads fused maps of the image,
    ``{q_dir}/{maps}/{img_id}.npz`` where that entry exists (``QUpdateHook(save_maps=True)``
    points it at the maps the Q was labelled from, and at the on-training network's newer
    maps with ``refresh_maps``), else ``{q_dir}/{current}/probs/{img_id}.npz`` (a Q store
    written with ``tools/gen_pseudo.py --save-probs``), and gives
    every class of the image the fused logit that splits its map at Q's pixel count
    (:func:`~mmseg_sbce.models.losses.count_split`, on the whole image, before any crop):
    ``results['q_thr_logits']``, float32 ``[C]``, NaN where there is no split (a class
    not in the image, one Q gives no pixel or every pixel, or no Q yet). The target of
    ``SBCEHead(threshold_loss='q_count')``; ``PackWSSSInputs`` packs it.

    Required keys: ``img`` (place this right after the image loader), ``img_id``; with
    ``with_thresholds``, ``num_classes`` (the WSSS data sets set it).
    Added keys: ``gt_seg_map``, ``q_map_path`` (None without a Q), with ``with_thresholds``
    ``q_thr_logits``. Modified: ``seg_fields``.

    Args:
        q_dir (str): The Q store (see ``docs/design.md``).
        current (str): Name of the entry in ``q_dir`` that points at the active phase.
            Defaults to ``'current'``.
        suffix (str): File suffix of the maps. Defaults to ``'.png'``.
        ignore_index (int): Value of the all-unknown map. Defaults to 255.
        with_thresholds (bool): Also give each class its split at Q's count (see above).
            Defaults to False.
        maps (str): Name of the entry in ``q_dir`` that points at the fused maps of
            ``with_thresholds``. Defaults to ``'maps'``.
    """

    def __init__(self,
                 q_dir: str,
                 current: str = 'current',
                 suffix: str = '.png',
                 ignore_index: int = 255,
                 with_thresholds: bool = False,
                 maps: str = 'maps') -> None:
        if not q_dir:
            raise ValueError('LoadQMap needs q_dir')
        self.q_dir = q_dir
        self.current = current
        self.suffix = suffix
        self.ignore_index = ignore_index
        self.with_thresholds = with_thresholds
        self.maps = maps

    def transform(self, results: dict) -> dict:
        """Attach the Q map of ``results['img_id']``."""
        if 'img' not in results:
            raise KeyError('LoadQMap needs the image: put it after the image loader')
        if 'img_id' not in results:
            raise KeyError('LoadQMap needs results["img_id"] (set by the WSSS data sets)')
        height, width = results['img'].shape[:2]
        current = osp.join(self.q_dir, self.current)
        if not osp.lexists(current):
            q_map = np.full((height, width), self.ignore_index, np.uint8)
            path = None
        else:
            if not osp.isdir(current):
                raise FileNotFoundError(
                    f'Q directory {current} is not a directory (a dangling symlink?); '
                    f'q_dir={self.q_dir}')
            path = osp.join(current, results['img_id'] + self.suffix)
            try:
                with Image.open(path) as img:
                    q_map = np.array(img)
            except FileNotFoundError:
                raise FileNotFoundError(
                    f'Q map {path} of image {results["img_id"]!r} not found in '
                    f'q_dir={self.q_dir} (is the current phase complete?)') from None
            except OSError as e:
                raise OSError(f'cannot read Q map {path}: {e}') from None
            if q_map.ndim != 2:
                raise ValueError(f'Q map {path} must be a single-channel label map, got '
                                 f'shape {q_map.shape}')
            if q_map.shape != (height, width):
                raise ValueError(
                    f'Q map {path} has size {q_map.shape} but image '
                    f'{results.get("img_path", results["img_id"])} has size '
                    f'{(height, width)}')
            q_map = q_map.astype(np.uint8, copy=False)
        if self.with_thresholds:
            results['q_thr_logits'] = self._thresholds(results, current, q_map, path)
        return attach_seg_map(results, q_map, 'q_map_path', path)

    def _thresholds(self, results: dict, current: str, q_map: np.ndarray,
                    q_path: Optional[str]) -> np.ndarray:
        """``[C]`` fused logits splitting each class's map at Q's count (NaN: none)."""
        from mmseg_sbce.apis.label_io import load_maps_npz
        from mmseg_sbce.models.losses.percentile import count_split
        if 'num_classes' not in results:
            raise KeyError('LoadQMap(with_thresholds=True) needs results["num_classes"] '
                           '(set by the WSSS data sets)')
        out = np.full(int(results['num_classes']), np.nan, np.float32)
        if q_path is None:
            return out  # no Q yet
        maps_dir = osp.join(self.q_dir, self.maps)
        if osp.lexists(maps_dir):
            maps_dir = osp.realpath(maps_dir)  # errors name the folder it points at
        else:
            maps_dir = osp.join(current, 'probs')
        path = osp.join(maps_dir, results['img_id'] + '.npz')
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'LoadQMap(with_thresholds=True): no saved maps {path} for Q map {q_path}; '
                'write the Q store with QUpdateHook(save_maps=True) (an init_q_dir with '
                'tools/gen_pseudo.py --save-probs)')
        try:
            logits, classes, _ = load_maps_npz(path)
        except (OSError, ValueError) as e:
            raise OSError(f'cannot read saved maps {path}: {e}') from None
        if logits.shape[1:] != q_map.shape:
            raise ValueError(f'saved maps {path} have size {logits.shape[1:]} but Q map '
                             f'{q_path} has size {q_map.shape}')
        if len(classes) and (classes.min() < 0 or classes.max() >= len(out)):
            raise ValueError(f'saved maps {path} hold classes {classes.tolist()}, outside '
                             f'0..{len(out) - 1}')
        if len(classes):
            fractions = [(q_map == c + 1).mean() for c in classes]
            thr, split = count_split(logits, fractions)
            out[classes[split]] = thr[split]
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(q_dir={self.q_dir!r}, '
                f'current={self.current!r}, suffix={self.suffix!r}, '
                f'with_thresholds={self.with_thresholds}, maps={self.maps!r})')
