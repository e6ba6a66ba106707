# Copyright (c) mmseg-sbce contributors.
"""Image-level-label (classification) data sets for weakly supervised segmentation."""
import logging
import os.path as osp
from typing import Dict, List, Optional

import cv2
import mmengine
import mmengine.fileio as fileio
import numpy as np
from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS
from PIL import Image

from ..utils.errors import InputError
from ..utils.io import parse_split
from .cls_labels import labels_from_mask, load_cls_labels


def read_label_map(path: str) -> np.ndarray:
    """Read a PNG label map as its stored indices (palette PNGs are not colourised).

    Args:
        path (str): The PNG file.

    Returns:
        np.ndarray: The label map as stored (uint8 for VOC/COCO masks).
    """
    try:
        with Image.open(path) as img:
            return np.array(img)
    except FileNotFoundError:
        raise FileNotFoundError(f'label map {path} not found') from None
    except OSError as e:
        raise OSError(f'cannot read label map {path}: {e}') from None


@DATASETS.register_module()
class BaseWSSSDataset(BaseSegDataset):
    """Images with image-level labels, the input of WSSS classification training.

    ``metainfo['classes']`` lists background first, then the C foreground classes; the
    masks (when present) use 0 for background, 1..C for the classes and 255 for ignore.

    Every data info holds:

    - ``img_path`` (str), ``img_id`` (str, the file stem from the split file),
    - ``seg_map_path`` (str or None): the ground-truth mask, used for evaluation only,
    - ``gt_labels`` (list[int]): sorted foreground class **indices 0..C-1** (mask id - 1),
    - ``reduce_zero_label`` (False), ``label_map`` (None), ``seg_fields`` ([]).

    ``get_data_info`` adds ``num_classes`` (C), read by ``PackWSSSInputs``.

    Image-level labels come from ``label_file`` (see :mod:`mmseg_sbce.datasets.cls_labels`)
    or, when it is None, from the masks (every value other than 0 and 255). Images with no
    foreground class are skipped (one warning with the count), unless ``keep_unlabelled``
    (the pseudo-label export: every image of the split gets a label file). Bad input raises an error
    naming the file: an empty or missing split file, an id without an image, a mask or a
    label outside 0..C/255; ``verify=True`` also decodes every image and mask up front.

    Args:
        ann_file (str): Split file, one image id per line.
        label_file (str, optional): Image-level label JSON; relative paths are joined with
            ``data_root``. None derives the labels from the masks. Defaults to None.
        verify (bool): Decode every image (and mask) at construction and fail on the first
            unreadable one. Defaults to False (images are checked when loaded).
        keep_unlabelled (bool): Keep images without a foreground class (``gt_labels``
            empty) instead of skipping them; for labelling a whole split, not for training.
            Defaults to False.
        img_suffix (str): Image file suffix. Defaults to '.jpg'.
        seg_map_suffix (str): Mask file suffix. Defaults to '.png'.
        **kwargs: Passed to :class:`mmseg.datasets.BaseSegDataset` (``data_root``,
            ``data_prefix=dict(img_path=..., seg_map_path=...)``, ``pipeline``, ...).
            Leave ``seg_map_path`` out of ``data_prefix`` when there are no masks.
    """
    METAINFO: dict = dict()

    def __init__(self,
                 ann_file: str = '',
                 label_file: Optional[str] = None,
                 verify: bool = False,
                 keep_unlabelled: bool = False,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 **kwargs) -> None:
        if kwargs.get('reduce_zero_label', False):
            raise InputError(f'{type(self).__name__} keeps background as class 0: '
                             'reduce_zero_label must be False')
        self.label_file = label_file
        self.verify = verify
        self.keep_unlabelled = keep_unlabelled
        super().__init__(
            ann_file=ann_file,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            **kwargs)

    # ------------------------------------------------------------------ metainfo
    @property
    def num_classes(self) -> int:
        """Number of foreground classes C (``classes`` minus background)."""
        return len(self._metainfo['classes']) - 1

    def _join_prefix(self) -> None:
        super()._join_prefix()
        if self.label_file and not osp.isabs(self.label_file) and self.data_root:
            self.label_file = osp.join(self.data_root, self.label_file)

    def _check_metainfo(self) -> None:
        classes = self._metainfo.get('classes')
        if not classes or len(classes) < 2:
            raise InputError(f'{type(self).__name__} needs metainfo classes: background '
                             f'first, then the foreground classes; got {classes!r}')
        if self.label_map is not None:
            raise InputError(
                f'{type(self).__name__} does not support selecting a subset of classes '
                '(the image-level labels and the Q maps use the full class list)')

    # ------------------------------------------------------------------ loading
    def _read_split(self) -> List[str]:
        if not self.ann_file:
            raise InputError(f'{type(self).__name__} needs ann_file (a split file)')
        if not fileio.exists(self.ann_file, backend_args=self.backend_args):
            raise FileNotFoundError(f'split file {self.ann_file} not found')
        ids = parse_split(
            mmengine.list_from_file(self.ann_file, backend_args=self.backend_args))
        if not ids:
            raise InputError(f'split file {self.ann_file} lists no image ids')
        return ids

    def _labels_from_masks(self, ids: List[str], ann_dir: Optional[str]) -> Dict:
        if ann_dir is None:
            raise InputError(
                f'{type(self).__name__}: no label_file and no mask directory '
                '(data_prefix seg_map_path): image-level labels need one of them')
        labels = {}
        for img_id in ids:
            path = osp.join(ann_dir, img_id + self.seg_map_suffix)
            mask = read_label_map(path)
            labels[img_id] = labels_from_mask(
                mask, self.num_classes, self.ignore_index, name=f'mask {path}')
        return labels

    def _verify_sample(self, img_path: str, seg_map_path: Optional[str]) -> None:
        img = cv2.imread(img_path, cv2.IMREAD_COLOR)
        if img is None:
            raise OSError(f'cannot decode image {img_path}: the file is corrupt or '
                          'not an image')
        if seg_map_path is not None and osp.isfile(seg_map_path):
            mask = read_label_map(seg_map_path)
            labels_from_mask(mask, self.num_classes, self.ignore_index,
                             name=f'mask {seg_map_path}')
            if mask.shape[:2] != img.shape[:2]:
                raise InputError(f'mask {seg_map_path} has size {mask.shape[:2]} but '
                                 f'image {img_path} has size {img.shape[:2]}')

    def load_data_list(self) -> List[dict]:
        """Read the split, resolve the files and attach the image-level labels.

        Returns:
            list[dict]: One data info per image with at least one foreground class.
        """
        self._check_metainfo()
        ids = self._read_split()
        img_dir = self.data_prefix.get('img_path', None)
        if img_dir is None:
            raise InputError(f'{type(self).__name__} needs data_prefix img_path')
        ann_dir = self.data_prefix.get('seg_map_path', None)

        for img_id in ids:
            img_path = osp.join(img_dir, img_id + self.img_suffix)
            if not fileio.exists(img_path, backend_args=self.backend_args):
                raise FileNotFoundError(
                    f'split file {self.ann_file} lists {img_id!r} but its image '
                    f'{img_path} does not exist')

        if self.label_file:
            all_labels = load_cls_labels(self.label_file, self.num_classes)
            missing = [i for i in ids if i not in all_labels]
            if missing:
                raise InputError(
                    f'label file {self.label_file} has no entry for {len(missing)} ids of '
                    f'{self.ann_file}, e.g. {missing[:3]}')
        else:
            all_labels = self._labels_from_masks(ids, ann_dir)

        data_list = []
        for img_id in ids:
            labels = all_labels[img_id]
            if not labels and not self.keep_unlabelled:
                continue
            img_path = osp.join(img_dir, img_id + self.img_suffix)
            seg_map_path = (
                osp.join(ann_dir, img_id + self.seg_map_suffix)
                if ann_dir is not None else None)
            if self.verify:
                self._verify_sample(img_path, seg_map_path)
            data_list.append(
                dict(
                    img_path=img_path,
                    seg_map_path=seg_map_path,
                    img_id=img_id,
                    gt_labels=[c - 1 for c in labels],
                    label_map=self.label_map,
                    reduce_zero_label=self.reduce_zero_label,
                    seg_fields=[]))
        skipped = len(ids) - len(data_list)
        if skipped:
            print_log(
                f'{type(self).__name__}: skipped {skipped} of {len(ids)} images of '
                f'{self.ann_file} that have no foreground class',
                logger='current',
                level=logging.WARNING)
        if not data_list:
            raise InputError(f'no image of {self.ann_file} has a foreground class')
        return data_list

    def get_data_info(self, idx: int) -> dict:
        """Data info of ``idx`` plus ``num_classes`` (C) for ``PackWSSSInputs``."""
        data_info = super().get_data_info(idx)
        data_info['num_classes'] = self.num_classes
        return data_info
