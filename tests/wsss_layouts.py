# Copyright (c) mmseg-sbce contributors.
"""Small data sets in the documented layouts (docs/data.md), shared by the tests.

* :func:`make_voc_root`: PASCAL VOC 2012 + SBD after mmseg's ``voc_aug.py`` converter and the
  ``cp -n`` step of docs/data.md (``JPEGImages/``, ``SegmentationClass/``,
  ``SegmentationClassAug/``, ``ImageSets/Segmentation/{train,val,trainaug,aug}.txt``).
* :func:`make_coco_source`: a COCO 2014 download (``{train,val}2014/`` JPEGs and
  ``annotations/instances_{train,val}2014.json`` with polygon instances), the input of our
  converter (``tools/dataset_converters/coco2014.py``).

This module sits in ``tests/`` (on ``sys.path`` under pytest, beside ``conftest.py``), so any
test imports it as ``import wsss_layouts``.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence

import numpy as np
from PIL import Image

VOC_SIZE = 48
# VOC ids by origin: VOC `train`, VOC `val`, SBD-only (mmseg's `aug.txt`).
VOC_IDS = dict(train=['2007_000032', '2007_000039'], val=['2007_000033'],
               aug=['2008_000002', '2011_003276'])


def palette_png(mask: np.ndarray, path: str) -> None:
    """Save ``mask`` as a palette (mode 'P') PNG, as VOC and tools/gen_pseudo.py write."""
    img = Image.fromarray(mask, mode='P')
    img.putpalette([v % 256 for v in range(768)])
    img.save(path)


def make_voc_root(root: str, pseudo: bool = True) -> None:
    """VOC 2012 + SBD after mmseg's ``voc_aug.py`` and the ``cp -n`` of docs/data.md.

    Args:
        root (str): The folder to create (the ``data_root``).
        pseudo (bool): Also write ``SegmentationClassSBCE`` (exported pseudo-labels of
            ``trainaug``, what the DeepLab configs train on).
    """
    rng = np.random.default_rng(0)
    folders = ['JPEGImages', 'SegmentationClass', 'SegmentationClassAug',
               'ImageSets/Segmentation'] + (['SegmentationClassSBCE'] if pseudo else [])
    for folder in folders:
        os.makedirs(osp.join(root, folder), exist_ok=True)
    trainaug = VOC_IDS['train'] + VOC_IDS['aug']
    for k, img_id in enumerate(VOC_IDS['train'] + VOC_IDS['val'] + VOC_IDS['aug']):
        img = rng.integers(0, 255, (VOC_SIZE, VOC_SIZE + 8, 3), dtype=np.uint8)
        Image.fromarray(img).save(osp.join(root, 'JPEGImages', f'{img_id}.jpg'))
        mask = np.zeros((VOC_SIZE, VOC_SIZE + 8), np.uint8)
        mask[8:30, 10:40] = 1 + k % 20
        mask[7, 10:40] = 255  # a VOC-style border
        if img_id not in VOC_IDS['aug']:
            palette_png(mask, osp.join(root, 'SegmentationClass', f'{img_id}.png'))
        if img_id in trainaug:
            palette_png(mask, osp.join(root, 'SegmentationClassAug', f'{img_id}.png'))
            if pseudo:
                palette_png(mask, osp.join(root, 'SegmentationClassSBCE', f'{img_id}.png'))
    splits = dict(train=VOC_IDS['train'], val=VOC_IDS['val'], trainaug=trainaug,
                  aug=VOC_IDS['aug'])
    for name, ids in splits.items():
        with open(osp.join(root, 'ImageSets', 'Segmentation', f'{name}.txt'), 'w') as f:
            f.write('\n'.join(ids) + '\n')


# (COCO category ids of the objects of each image): both ends of the 80-class map and some
# in between (category ids are not contiguous: 90 is class 80).
COCO_OBJECTS = ((1, 90), (18, ), (90, 17, 3), (2, ))


def make_coco_source(root: str, num_train: int = 4, num_val: int = 2,
                     size: int = 64) -> Dict[str, Dict[str, List[int]]]:
    """A COCO 2014 download in miniature: images and polygon instance annotations.

    Args:
        root (str): The folder to create (``COCO_ROOT`` of the converter).
        num_train (int): ``train2014`` images.
        num_val (int): ``val2014`` images.
        size (int): Image side.

    Returns:
        dict: ``{split: {stem: sorted COCO category ids}}``.
    """
    from mmseg_sbce.datasets.converters.coco2014 import COCO_CATEGORY_IDS, COCO_CLASSES
    rng = np.random.default_rng(0)
    categories = [dict(id=i, name=n, supercategory='x')
                  for i, n in zip(COCO_CATEGORY_IDS, COCO_CLASSES)]
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    ann_id, out = 1, {}
    for split, num in (('train', num_train), ('val', num_val)):
        os.makedirs(osp.join(root, f'{split}2014'), exist_ok=True)
        images, annotations, out[split] = [], [], {}
        for i in range(num):
            img_id = 1000 * (split == 'val') + i + 1
            stem = f'COCO_{split}2014_{img_id:012d}'
            img = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
            cats = COCO_OBJECTS[i % len(COCO_OBJECTS)]
            for k, cat in enumerate(cats):
                x0, y0 = (int(v) for v in rng.integers(0, size // 2, 2))
                x1 = x0 + int(rng.integers(16, size // 2))
                y1 = y0 + int(rng.integers(16, size // 2))
                img[y0:y1, x0:x1] = (40 * k + 100, 255 - 2 * cat, 2 * cat)
                annotations.append(dict(
                    id=ann_id, image_id=img_id, category_id=cat, iscrowd=0,
                    segmentation=[[x0, y0, x1, y0, x1, y1, x0, y1]],
                    area=float((x1 - x0) * (y1 - y0)), bbox=[x0, y0, x1 - x0, y1 - y0]))
                ann_id += 1
            Image.fromarray(img).save(osp.join(root, f'{split}2014', f'{stem}.jpg'))
            images.append(dict(id=img_id, file_name=f'{stem}.jpg', height=size, width=size))
            out[split][stem] = sorted(cats)
        with open(osp.join(root, 'annotations', f'instances_{split}2014.json'), 'w') as f:
            json.dump(dict(info={}, licenses=[], categories=categories, images=images,
                           annotations=annotations), f)
    return out


def split_ids(path: str) -> Sequence[str]:
    """The ids of a split file, one a line."""
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]
