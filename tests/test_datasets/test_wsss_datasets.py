# Copyright (c) mmseg-sbce contributors.
import json
import os
import os.path as osp
import pickle
import shutil
from unittest import mock

import numpy as np
import pytest
import mmseg_sbce  # noqa: F401,I001  (compat fixes before mmseg is imported)
from mmseg.registry import DATASETS
from PIL import Image

from mmseg_sbce.datasets import (COCO_CLASSES, BaseWSSSDataset, COCOClsDataset,
                                 DemoClsDataset, VOCClsDataset, dump_cls_labels,
                                 load_cls_labels)

LOAD = [dict(type='LoadCheckedImageFromFile'), dict(type='PackWSSSInputs')]


@pytest.fixture
def demo_copy(tmp_path, demo_root):
    """A writable copy of the demo data set (for the tests that break it)."""
    root = str(tmp_path / 'demo')
    shutil.copytree(demo_root, root)
    return root


def _json_labels(root):
    return load_cls_labels(osp.join(root, 'cls_labels.json'), num_classes=6)


def test_demo_dataset(demo_root, demo_kwargs):
    ds = DATASETS.build(dict(type='DemoClsDataset', data_root=demo_root, pipeline=LOAD))
    assert len(ds) == demo_kwargs['num_train']
    assert ds.metainfo['classes'][0] == 'background' and len(ds.metainfo['classes']) == 7
    assert ds.num_classes == 6
    labels = _json_labels(demo_root)
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['gt_labels'] == [c - 1 for c in labels[info['img_id']]]
        assert info['img_path'].endswith(f"JPEGImages/{info['img_id']}.jpg")
        assert info['seg_map_path'].endswith(f"SegmentationClass/{info['img_id']}.png")
        assert info['reduce_zero_label'] is False and info['seg_fields'] == []
        assert info['label_map'] is None and info['num_classes'] == 6
    sample = ds[0]
    multi_hot = sample['data_samples'].gt_labels
    assert multi_hot.dtype.is_floating_point and multi_hot.shape == (6, )
    assert sorted(multi_hot.nonzero().flatten().tolist()) == ds.get_data_info(0)['gt_labels']
    assert sample['data_samples'].img_id == ds.get_data_info(0)['img_id']
    # no mutable state: fetching does not change the stored annotations, and it pickles
    assert ds.get_data_info(0)['seg_fields'] == []
    assert len(pickle.loads(pickle.dumps(ds))) == len(ds)

    val = DemoClsDataset(data_root=demo_root, ann_file='ImageSets/Segmentation/val.txt')
    assert len(val) == demo_kwargs['num_val']


def test_labels_from_masks_equal_label_file(demo_root):
    from_file = DemoClsDataset(data_root=demo_root)
    from_masks = DemoClsDataset(data_root=demo_root, label_file='')
    assert [from_file.get_data_info(i)['gt_labels'] for i in range(len(from_file))] == \
        [from_masks.get_data_info(i)['gt_labels'] for i in range(len(from_masks))]


def test_labels_without_masks(demo_root):
    ds = DemoClsDataset(data_root=demo_root, data_prefix=dict(img_path='JPEGImages'))
    assert ds.get_data_info(0)['seg_map_path'] is None
    with pytest.raises(ValueError, match='no label_file and no mask directory'):
        DemoClsDataset(
            data_root=demo_root, data_prefix=dict(img_path='JPEGImages'), label_file='')


def test_voc_dataset_on_a_voc_layout(demo_copy):
    # mmseg's converter layout: SegmentationClassAug + ImageSets/Segmentation/trainaug.txt
    os.rename(osp.join(demo_copy, 'SegmentationClass'),
              osp.join(demo_copy, 'SegmentationClassAug'))
    shutil.copy(osp.join(demo_copy, 'ImageSets/Segmentation/train.txt'),
                osp.join(demo_copy, 'ImageSets/Segmentation/trainaug.txt'))
    ds = DATASETS.build(dict(type='VOCClsDataset', data_root=demo_copy, pipeline=LOAD))
    assert len(ds.metainfo['classes']) == 21 and len(ds.metainfo['palette']) == 21
    assert ds.metainfo['classes'][1] == 'aeroplane' and ds.num_classes == 20
    labels = _json_labels(demo_copy)
    info = ds.get_data_info(3)
    assert info['gt_labels'] == [c - 1 for c in labels[info['img_id']]]
    assert ds[0]['data_samples'].gt_labels.shape == (20, )


def test_voc_dataset_reads_the_demo_set(demo_root):
    ds = VOCClsDataset(
        data_root=demo_root,
        ann_file='ImageSets/Segmentation/val.txt',
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        label_file='cls_labels.json')
    assert len(ds) > 0 and ds.num_classes == 20


def _write_coco(root, split, ids_labels, size=(24, 32)):
    os.makedirs(osp.join(root, f'{split}2014'), exist_ok=True)
    os.makedirs(osp.join(root, 'SegmentationClass', f'{split}2014'), exist_ok=True)
    os.makedirs(osp.join(root, 'ImageSets'), exist_ok=True)
    for img_id, labels in ids_labels.items():
        Image.new('RGB', size[::-1], (90, 10, 200)).save(
            osp.join(root, f'{split}2014', img_id + '.jpg'))
        mask = np.zeros(size, np.uint8)
        for k, c in enumerate(labels):
            mask[k * 4:k * 4 + 3, :5] = c
        Image.fromarray(mask).save(osp.join(root, 'SegmentationClass', f'{split}2014',
                                            img_id + '.png'))
    with open(osp.join(root, 'ImageSets', f'{split}.txt'), 'w') as f:
        f.write('\n'.join(ids_labels) + '\n')
    dump_cls_labels(ids_labels, osp.join(root, f'cls_labels_{split}.json'))


def test_coco_dataset(tmp_path):
    root = str(tmp_path / 'coco')
    _write_coco(root, 'train', {'COCO_train2014_000000000009': [1, 80],
                                'COCO_train2014_000000000025': [25],
                                'COCO_train2014_000000000030': []})
    _write_coco(root, 'val', {'COCO_val2014_000000000042': [18, 3]})
    assert COCOClsDataset.METAINFO['classes'][0] == 'background'
    assert len(COCOClsDataset.METAINFO['classes']) == 81 == len(COCO_CLASSES) + 1
    assert COCOClsDataset.METAINFO['classes'][1] == 'person'
    assert COCOClsDataset.METAINFO['classes'][80] == 'toothbrush'
    palette = COCOClsDataset.METAINFO['palette']
    assert len({tuple(c) for c in palette}) == 81 and palette[0] == [0, 0, 0]

    with mock.patch('mmseg_sbce.datasets.base_wsss.print_log') as log:
        train = DATASETS.build(dict(type='COCOClsDataset', data_root=root, pipeline=LOAD))
    assert len(train) == 2  # the image without foreground is skipped ...
    assert log.call_count == 1 and 'skipped 1 of 3' in log.call_args[0][0]  # ... once
    assert train.get_data_info(0)['gt_labels'] == [0, 79]
    assert train[0]['data_samples'].gt_labels.shape == (80, )
    assert train.get_data_info(0)['seg_map_path'].endswith(
        'SegmentationClass/train2014/COCO_train2014_000000000009.png')
    # labels from the masks agree with the label file
    from_masks = COCOClsDataset(data_root=root, label_file='')
    assert from_masks.get_data_info(1)['gt_labels'] == [24]

    val = COCOClsDataset(data_root=root, split='val')
    assert len(val) == 1 and val.get_data_info(0)['gt_labels'] == [2, 17]
    with pytest.raises(ValueError, match='split'):
        COCOClsDataset(data_root=root, split='test')


# ------------------------------------------------------------------ bad input
def test_missing_or_empty_split_file(demo_copy):
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        DemoClsDataset(data_root=demo_copy, ann_file='nope.txt')
    empty = osp.join(demo_copy, 'empty.txt')
    open(empty, 'w').write('\n  \n')
    with pytest.raises(ValueError, match='empty.txt lists no image ids'):
        DemoClsDataset(data_root=demo_copy, ann_file='empty.txt')


def test_split_lists_an_id_without_image(demo_copy):
    with open(osp.join(demo_copy, 'ImageSets/Segmentation/train.txt'), 'a') as f:
        f.write('ghost_007\n')
    with pytest.raises(FileNotFoundError, match=r"'ghost_007'.*ghost_007\.jpg"):
        DemoClsDataset(data_root=demo_copy)


def test_mask_with_invalid_class_ids(demo_copy):
    path = osp.join(demo_copy, 'SegmentationClass', 'train_00002.png')
    mask = np.array(Image.open(path))
    mask[0, 0] = 42  # not in 0..6 / 255
    Image.fromarray(mask).save(path)
    with pytest.raises(ValueError, match=r'train_00002\.png.*\[42\]'):
        DemoClsDataset(data_root=demo_copy, label_file='')
    # from the label file the masks are not read at construction, verify=True reads them
    DemoClsDataset(data_root=demo_copy)
    with pytest.raises(ValueError, match=r'train_00002\.png'):
        DemoClsDataset(data_root=demo_copy, verify=True)


def test_rgb_mask_is_rejected(demo_copy):
    path = osp.join(demo_copy, 'SegmentationClass', 'train_00001.png')
    Image.open(path).convert('RGB').save(path)
    with pytest.raises(ValueError, match=r'train_00001\.png.*single-channel'):
        DemoClsDataset(data_root=demo_copy, label_file='')


def test_bad_label_file(demo_copy):
    path = osp.join(demo_copy, 'cls_labels.json')
    labels = json.load(open(path))
    labels['train_00000'] = [0, 2]
    json.dump(labels, open(path, 'w'))
    with pytest.raises(ValueError, match=r"cls_labels\.json.*'train_00000'.*\[0\]"):
        DemoClsDataset(data_root=demo_copy)
    del labels['train_00000']
    json.dump(labels, open(path, 'w'))
    with pytest.raises(ValueError, match=r"cls_labels\.json has no entry.*train_00000"):
        DemoClsDataset(data_root=demo_copy)
    open(path, 'w').write('{not json')
    with pytest.raises(ValueError, match='not valid JSON'):
        DemoClsDataset(data_root=demo_copy)
    with pytest.raises(FileNotFoundError, match='missing.json'):
        DemoClsDataset(data_root=demo_copy, label_file='missing.json')


def test_corrupt_image(demo_copy):
    path = osp.join(demo_copy, 'JPEGImages', 'train_00000.jpg')
    open(path, 'wb').write(b'this is not a jpeg')
    ds = DemoClsDataset(data_root=demo_copy, pipeline=LOAD)  # not decoded up front
    with pytest.raises(OSError, match=r"cannot decode image .*train_00000\.jpg"):
        ds[0]
    with pytest.raises(OSError, match=r'cannot decode image .*train_00000\.jpg'):
        DemoClsDataset(data_root=demo_copy, verify=True)


def test_image_deleted_after_construction(demo_copy):
    ds = DemoClsDataset(data_root=demo_copy, pipeline=LOAD)
    os.remove(osp.join(demo_copy, 'JPEGImages', 'train_00000.jpg'))
    with pytest.raises(FileNotFoundError, match=r"train_00000\.jpg.*'train_00000'"):
        ds[0]


def test_unsupported_options(demo_root):
    with pytest.raises(ValueError, match='reduce_zero_label'):
        DemoClsDataset(data_root=demo_root, reduce_zero_label=True)
    with pytest.raises(ValueError, match='subset of classes'):
        VOCClsDataset(
            data_root=demo_root,
            ann_file='ImageSets/Segmentation/train.txt',
            data_prefix=dict(img_path='JPEGImages'),
            label_file='cls_labels.json',
            metainfo=dict(classes=('background', 'aeroplane')))
    with pytest.raises(ValueError, match='needs metainfo classes'):
        BaseWSSSDataset(
            data_root=demo_root,
            ann_file='ImageSets/Segmentation/train.txt',
            data_prefix=dict(img_path='JPEGImages'),
            label_file='cls_labels.json')
    with pytest.raises(FileNotFoundError, match='meta.json'):
        DemoClsDataset(data_root=osp.join(demo_root, 'JPEGImages'))
