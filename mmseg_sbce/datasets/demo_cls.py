# Copyright (c) mmseg-sbce contributors.
"""The generated demo data set (``tools/gen_demo_data.py``) with image-level labels."""
from typing import Optional

from mmseg.registry import DATASETS

from .base_wsss import BaseWSSSDataset
from .demo_data import load_demo_meta


@DATASETS.register_module()
class DemoClsDataset(BaseWSSSDataset):
    """The demo data set: VOC layout, class names and palette read from its meta.json.

    Typical use::

        dict(type='DemoClsDataset', data_root='data/demo')                       # train
        dict(type='DemoClsDataset', data_root='data/demo',
             ann_file='ImageSets/Segmentation/val.txt')                           # val

    Args:
        ann_file (str): Split file. Defaults to ``'ImageSets/Segmentation/train.txt'``.
        data_prefix (dict): Defaults to
            ``dict(img_path='JPEGImages', seg_map_path='SegmentationClass')``.
        label_file (str, optional): Defaults to ``'cls_labels.json'``; ``''`` derives the
            labels from the masks.
        metainfo (dict, optional): Overrides the classes/palette of ``meta.json``.
        **kwargs: See :class:`BaseWSSSDataset`; ``data_root`` is required.
    """

    def __init__(self,
                 ann_file: str = 'ImageSets/Segmentation/train.txt',
                 data_prefix: dict = dict(
                     img_path='JPEGImages', seg_map_path='SegmentationClass'),
                 label_file: Optional[str] = 'cls_labels.json',
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        if metainfo is None:
            data_root = kwargs.get('data_root')
            if not data_root:
                raise ValueError('DemoClsDataset needs data_root (it reads meta.json)')
            meta = load_demo_meta(data_root)
            metainfo = dict(classes=tuple(meta['classes']), palette=meta['palette'])
        super().__init__(
            ann_file=ann_file,
            data_prefix=data_prefix,
            label_file=label_file or None,
            metainfo=metainfo,
            **kwargs)
