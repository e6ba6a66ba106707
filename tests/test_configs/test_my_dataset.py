# Copyright (c) mmseg-sbce contributors.
"""docs/data.md "Your own data set": the documented options point the VOC recipe at a user's
VOC-style folder with its own class names, and every data set of it builds there."""
import copy
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from PIL import Image

from mmseg.registry import DATASETS
from mmseg_sbce.datasets.class_count import check_class_counts
from mmseg_sbce.utils import load_runner_config
from mmseg_sbce.utils.runner_config import dataset_cfgs

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NAMES = ['cat', 'dog', 'person']


@pytest.fixture
def pets(tmp_path):
    """Four images; masks (val and train) and an image-level label file."""
    root = tmp_path / 'pets'
    for d in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'):
        (root / d).mkdir(parents=True)
    ids = ['p0', 'p1', 'p2', 'p3']
    labels = {}
    for i, img_id in enumerate(ids):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(
            root / 'JPEGImages' / f'{img_id}.jpg')
        mask = np.zeros((8, 8), np.uint8)
        mask[2:6, 2:6] = 1 + i % 3
        Image.fromarray(mask).save(root / 'SegmentationClass' / f'{img_id}.png')
        labels[img_id] = [1 + i % 3]
    (root / 'ImageSets/Segmentation/train.txt').write_text('\n'.join(ids[:3]) + '\n')
    (root / 'ImageSets/Segmentation/val.txt').write_text('p3\n')
    (root / 'cls_labels.json').write_text(json.dumps(labels))
    return root


@pytest.mark.parametrize('labels', ['label_file', 'masks'])
def test_documented_options_build_every_data_set(pets, labels, tmp_path):
    init_default_scope('mmseg')
    options = dict(data_root=str(pets), class_names=NAMES,
                   train_split='ImageSets/Segmentation/train.txt')
    if labels == 'label_file':
        options['label_file'] = 'cls_labels.json'
    else:
        options.update(label_file=None, train_mask_dir='SegmentationClass')
    cfg = load_runner_config(osp.join(REPO, 'configs/sbce_voc.py'), options,
                             work_dir=str(tmp_path / 'work'))
    check_class_counts(cfg, 'configs/sbce_voc.py')
    assert cfg.model.decode_head.num_classes == 3
    built = [DATASETS.build(dict(copy.deepcopy(ds), pipeline=[])) for ds in dataset_cfgs(cfg)]
    assert len(built) == 6
    for ds in built:
        assert ds.metainfo['classes'] == ('background', *NAMES)
    train = built[0]
    assert len(train) == 3
    assert [train.get_data_info(i)['gt_labels'] for i in range(3)] == [[0], [1], [2]]


@pytest.mark.parametrize('config', [
    'configs/sbce_coco.py',
    'configs/deeplab/deeplabv3plus_r101-d8_4xb4-20k_voc12aug-pseudo-512x512.py'])
def test_other_class_names_make_data_sets_generic(config, tmp_path):
    """VOC / COCO data set types fix their class names; other names get the generic type
    with the specific type's defaults spelled out (mmseg would read a subset selection)."""
    cfg = load_runner_config(osp.join(REPO, config), dict(class_names=NAMES),
                             work_dir=str(tmp_path))
    types = {ds.type for ds in dataset_cfgs(cfg)}
    assert types <= {'BaseWSSSDataset', 'BaseSegDataset'}
    assert all('split' not in ds and ds.ann_file for ds in dataset_cfgs(cfg))
    if 'deeplab' in config:
        assert {ds.img_suffix for ds in dataset_cfgs(cfg)} == {'.jpg'}
    unchanged = load_runner_config(osp.join(REPO, config), work_dir=str(tmp_path))
    assert {ds.type for ds in dataset_cfgs(unchanged)} == (
        {'COCOClsDataset'} if 'coco' in config else {'PascalVOCDataset'})
