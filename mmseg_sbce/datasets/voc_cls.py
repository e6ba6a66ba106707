# Copyright (c) mmseg-sbce contributors.
"""PASCAL VOC 2012 (+ SBD, "train_aug") with image-level labels."""
from mmseg.datasets import PascalVOCDataset
from mmseg.registry import DATASETS

from .base_wsss import BaseWSSSDataset


@DATASETS.register_module()
class VOCClsDataset(BaseWSSSDataset):
    """PASCAL VOC 2012 for WSSS classification training (21 classes incl. background).

    The defaults read the 10,582 ``trainaug`` ids written by mmseg's
    ``tools/dataset_converters/voc_aug.py`` and derive the 20-class image-level labels
    from ``SegmentationClassAug`` (see ``docs/data.md`` for the layout). Typical use::

        dict(type='VOCClsDataset', data_root='data/VOCdevkit/VOC2012')  # train_aug
        dict(type='VOCClsDataset', data_root='data/VOCdevkit/VOC2012',  # 1,464 train
             ann_file='ImageSets/Segmentation/train.txt',
             data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'))

    Args:
        ann_file (str): Split file. Defaults to
            ``'ImageSets/Segmentation/trainaug.txt'``.
        data_prefix (dict): Image and mask directories. Defaults to
            ``dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug')``.
        **kwargs: See :class:`BaseWSSSDataset` (``label_file``, ``verify``, ...).
    """
    METAINFO = dict(
        classes=PascalVOCDataset.METAINFO['classes'],
        palette=PascalVOCDataset.METAINFO['palette'])

    def __init__(self,
                 ann_file: str = 'ImageSets/Segmentation/trainaug.txt',
                 data_prefix: dict = dict(
                     img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
                 **kwargs) -> None:
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)
