# Copyright (c) mmseg-sbce contributors.
"""MS-COCO 2014 with image-level labels (81 classes incl. background)."""
from typing import Optional

from mmseg.registry import DATASETS

from .base_wsss import BaseWSSSDataset
from .palette import voc_colormap

#: The 80 COCO object categories in category-id order (ids 1..90 with gaps map to 1..80).
COCO_CLASSES = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck',
    'boat', 'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench',
    'bird', 'cat', 'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra',
    'giraffe', 'backpack', 'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee', 'skis',
    'snowboard', 'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard',
    'surfboard', 'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife',
    'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot',
    'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant', 'bed',
    'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard',
    'cell phone', 'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book',
    'clock', 'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush')


@DATASETS.register_module()
class COCOClsDataset(BaseWSSSDataset):
    """MS-COCO 2014 for WSSS classification training (background + 80 classes).

    Layout (written by the COCO converter, see ``docs/data.md``)::

        {data_root}/train2014/<id>.jpg                    (val2014/ likewise)
        {data_root}/SegmentationClass/train2014/<id>.png  0 bg, 1..80, 255 ignore
        {data_root}/ImageSets/train.txt                   ids, one per line
        {data_root}/cls_labels_train.json                 {id: [class ids 1..80]}

    ``split`` fills in whichever of ``ann_file``, ``data_prefix`` and ``label_file`` is
    not given, so ``dict(type='COCOClsDataset', data_root='data/coco', split='val')`` is a
    complete config.

    Args:
        split (str): ``'train'`` or ``'val'`` (used for the defaults). Defaults to
            ``'train'``.
        ann_file (str, optional): Defaults to ``'ImageSets/{split}.txt'``.
        data_prefix (dict, optional): Defaults to ``dict(img_path='{split}2014',
            seg_map_path='SegmentationClass/{split}2014')``.
        label_file (str, optional): Defaults to ``'cls_labels_{split}.json'``. Pass ``''``
            to derive the labels from the masks instead.
        **kwargs: See :class:`BaseWSSSDataset`.
    """
    METAINFO = dict(
        classes=('background', ) + COCO_CLASSES,
        palette=voc_colormap(len(COCO_CLASSES) + 1))

    def __init__(self,
                 split: str = 'train',
                 ann_file: Optional[str] = None,
                 data_prefix: Optional[dict] = None,
                 label_file: Optional[str] = None,
                 **kwargs) -> None:
        if split not in ('train', 'val'):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if ann_file is None:
            ann_file = f'ImageSets/{split}.txt'
        if data_prefix is None:
            data_prefix = dict(
                img_path=f'{split}2014', seg_map_path=f'SegmentationClass/{split}2014')
        if label_file is None:
            label_file = f'cls_labels_{split}.json'
        super().__init__(
            ann_file=ann_file,
            data_prefix=data_prefix,
            label_file=label_file or None,
            **kwargs)
