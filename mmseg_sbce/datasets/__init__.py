# Copyright (c) mmseg-sbce contributors.
from .base_wsss import BaseWSSSDataset
from .cls_labels import dump_cls_labels, labels_from_mask, load_cls_labels
from .coco_cls import COCO_CLASSES, COCOClsDataset
from .demo_cls import DemoClsDataset
from .demo_data import generate_demo_dataset, load_demo_meta
from .palette import voc_colormap
from .transforms import *  # noqa: F401,F403
from .voc_cls import VOCClsDataset

__all__ = [
    'BaseWSSSDataset', 'VOCClsDataset', 'COCOClsDataset', 'DemoClsDataset',
    'COCO_CLASSES', 'generate_demo_dataset', 'load_demo_meta', 'load_cls_labels',
    'dump_cls_labels', 'labels_from_mask', 'voc_colormap', 'LoadCheckedImageFromFile',
    'LoadQMap', 'PackWSSSInputs', 'PHOTOMETRIC_RANDAUG_POLICIES', 'GEOMETRIC_RANDAUG_OPS', 'photometric_randaug'
]
