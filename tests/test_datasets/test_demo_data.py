# Copyright (c) mmseg-sbce contributors.
import filecmp
import hashlib
import json
import os
import os.path as osp
import runpy

import numpy as np
import pytest
import mmseg_sbce  # noqa: F401,I001  (compat fixes before mmseg is imported)
from mmseg.datasets import PascalVOCDataset
from PIL import Image

from mmseg_sbce.datasets import generate_demo_dataset, load_cls_labels
from mmseg_sbce.datasets.cls_labels import labels_from_mask
from mmseg_sbce.datasets.demo_data import (DEFAULT_BODY_TINT, PART_BODY,
                                           PART_DISCRIMINATIVE, PART_IGNORE,
                                           render_demo_sample)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _ids(root, split):
    with open(osp.join(root, 'ImageSets', 'Segmentation', f'{split}.txt')) as f:
        return f.read().split()


def test_layout_and_labels(demo_root, demo_kwargs):
    train, val = _ids(demo_root, 'train'), _ids(demo_root, 'val')
    assert len(train) == demo_kwargs['num_train'] and len(val) == demo_kwargs['num_val']
    assert not set(train) & set(val)
    labels = load_cls_labels(osp.join(demo_root, 'cls_labels.json'), num_classes=6)
    assert sorted(labels) == sorted(train + val)
    for img_id in train + val:
        img = Image.open(osp.join(demo_root, 'JPEGImages', img_id + '.jpg'))
        mask = Image.open(osp.join(demo_root, 'SegmentationClass', img_id + '.png'))
        part = np.array(Image.open(osp.join(demo_root, 'SegmentationPart', img_id + '.png')))
        assert img.mode == 'RGB' and img.size == (64, 64)
        assert mask.mode == 'P' and mask.size == (64, 64)
        mask = np.array(mask)
        # the JSON labels are exactly the classes of the mask, 1..3 objects per image
        assert labels[img_id] == labels_from_mask(mask, 6)
        assert 1 <= len(labels[img_id]) <= 3
        # a few-px 255 band on every object border, and the part map agrees with the mask
        assert (mask == 255).any()
        assert ((mask == 255) == (part == PART_IGNORE)).all()
        assert ((mask > 0) & (mask < 255) == np.isin(part, [PART_DISCRIMINATIVE,
                                                            PART_BODY])).all()
    meta = json.load(open(osp.join(demo_root, 'meta.json')))
    assert meta['classes'][0] == 'background' and len(meta['classes']) == 7
    assert len(meta['palette']) == 7 and meta['generator']['seed'] == 3


def test_stock_pascal_voc_dataset_reads_it(demo_root, demo_kwargs):
    ds = PascalVOCDataset(
        data_root=demo_root,
        ann_file='ImageSets/Segmentation/train.txt',
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')])
    assert len(ds) == demo_kwargs['num_train']
    sample = ds[0]
    assert sample['img'].shape == (64, 64, 3)
    assert sample['gt_seg_map'].shape == (64, 64)
    assert set(np.unique(sample['gt_seg_map']).tolist()) <= set(range(7)) | {255}


def test_deterministic(tmp_path, demo_root, demo_kwargs):
    again = str(tmp_path / 'again')
    generate_demo_dataset(again, **demo_kwargs)
    for sub in ('JPEGImages', 'SegmentationClass', 'SegmentationPart'):
        names = sorted(os.listdir(osp.join(demo_root, sub)))
        assert names == sorted(os.listdir(osp.join(again, sub)))
        _, mismatch, errors = filecmp.cmpfiles(
            osp.join(demo_root, sub), osp.join(again, sub), names, shallow=False)
        assert not mismatch and not errors
    for name in ('cls_labels.json', 'meta.json', 'ImageSets/Segmentation/train.txt'):
        assert filecmp.cmp(osp.join(demo_root, name), osp.join(again, name), shallow=False)

    other = str(tmp_path / 'other')
    generate_demo_dataset(other, **dict(demo_kwargs, seed=4, num_val=0))
    assert not filecmp.cmp(
        osp.join(demo_root, 'JPEGImages', 'train_00000.jpg'),
        osp.join(other, 'JPEGImages', 'train_00000.jpg'), shallow=False)


def test_bad_options(tmp_path):
    with pytest.raises(ValueError, match='num_classes'):
        generate_demo_dataset(str(tmp_path), num_classes=0)
    with pytest.raises(ValueError, match='num_classes'):
        generate_demo_dataset(str(tmp_path), num_classes=11)
    with pytest.raises(ValueError, match='max_objects'):
        generate_demo_dataset(str(tmp_path), max_objects=4)


def _colour_features(img, region):
    pixels = img[region].astype(np.float64)
    return np.concatenate([pixels.mean(0), pixels.std(0)])


def _nearest_centroid_accuracy(features, classes):
    """Leave-one-out nearest-centroid accuracy (standardised features)."""
    features = (features - features.mean(0)) / (features.std(0) + 1e-6)
    hits = 0
    for i in range(len(features)):
        keep = np.arange(len(features)) != i
        centroids = {
            c: features[keep & (classes == c)].mean(0) for c in np.unique(classes[keep])
        }
        pred = min(centroids, key=lambda c: np.linalg.norm(features[i] - centroids[c]))
        hits += pred == classes[i]
    return hits / len(features)


def _fisher_ratio(features, classes):
    """Between-class over within-class variance of the mean colour (first 3 features)."""
    colour = features[:, :3]
    centre = colour.mean(0)
    labels = np.unique(classes)
    between = np.mean([np.sum((colour[classes == c].mean(0) - centre)**2) for c in labels])
    within = np.mean([np.sum(colour[classes == c].var(0)) for c in labels])
    return between / within


def _part_features(body_tint):
    num_classes = 6
    head_f, body_f, classes = [], [], []
    for index in range(60):
        img, label, part, labels = render_demo_sample(7, 'train', index, 128, num_classes,
                                                      body_tint=body_tint)
        for c in labels:
            head = (label == c) & (part == PART_DISCRIMINATIVE)
            body = (label == c) & (part == PART_BODY)
            if head.sum() < 10 or body.sum() < 10:
                continue
            head_f.append(_colour_features(img, head))
            body_f.append(_colour_features(img, body))
            classes.append(c)
            # the body is several times larger than the discriminative part
            assert body.sum() > 2 * head.sum()
    classes = np.array(classes)
    assert len(np.unique(classes)) == num_classes and len(classes) > 60
    return np.array(head_f), np.array(body_f), classes


def test_discriminative_part_is_class_specific_and_body_only_weakly():
    """The structural property that makes partial activation happen, without training.

    Colour statistics (mean, std per channel) of a class's discriminative part identify
    the class almost always; those of the body only sometimes (its faint tint), and the
    body's class signal is two orders of magnitude weaker (between- / within-class
    variance). With ``body_tint=0`` the body is at chance level.
    """
    chance = 1.0 / 6
    head_f, body_f, classes = _part_features(DEFAULT_BODY_TINT)
    assert _nearest_centroid_accuracy(head_f, classes) > 0.95
    body_acc = _nearest_centroid_accuracy(body_f, classes)
    assert chance + 0.15 < body_acc < 0.8
    assert _fisher_ratio(head_f, classes) > 50 * _fisher_ratio(body_f, classes)
    _, shared_f, shared_classes = _part_features(0.0)
    assert _nearest_centroid_accuracy(shared_f, shared_classes) < chance + 0.15


def test_body_tint_is_validated_and_recorded(tmp_path):
    with pytest.raises(ValueError, match='body_tint'):
        generate_demo_dataset(str(tmp_path / 'bad'), num_train=1, num_val=0, body_tint=1.5)
    meta = generate_demo_dataset(str(tmp_path / 'ok'), num_train=1, num_val=0, img_size=32,
                                 body_tint=0.0)
    assert meta['generator']['body_tint'] == 0.0 and meta['generator']['version'] == 2


def test_tool(tmp_path, capsys):
    tool = runpy.run_path(osp.join(REPO, 'tools', 'gen_demo_data.py'))
    out = str(tmp_path / 'tool')
    tool['main']([out, '--num-train', '3', '--num-val', '2', '--size', '48',
                  '--num-classes', '4', '--seed', '1', '--no-progress'])
    assert 'wrote 3 train + 2 val images' in capsys.readouterr().out
    assert len(os.listdir(osp.join(out, 'JPEGImages'))) == 5
    assert json.load(open(osp.join(out, 'meta.json')))['num_classes'] == 4


# sha256 of files written by `python tools/gen_demo_data.py` at its defaults (seed 0, 128 px,
# 6 classes, body_tint 0.08), recorded before the data-set family was added: the demo's
# results table in docs/results.md is only reproducible while these bytes stay the same.
_DEFAULT_FINGERPRINTS = {
    'JPEGImages/train_00000.jpg':
    'c8ef691b4eb7557f4f5b2d85f873a6cf1c5ce4e0b90db8a0e91e65cc9b30c694',
    'JPEGImages/train_00001.jpg':
    '3e336177dd73e310a38fa78fb69d421768677cc166ee6674b659a22cd0ef08db',
    'JPEGImages/train_00002.jpg':
    'ae02c819eab0c68cc38c02396eaa929b8c129c7cacd7b8e9cc869f466e51faa4',
    'JPEGImages/val_00000.jpg':
    '22c5d0a0df6f391b3ea51c375f421895f25b2b750d4e8b01f3ca7b8bdc510a39',
    'SegmentationClass/train_00000.png':
    'df11acc28e2cb35bd50ce855937c13f541b6646f95845966b3c459d9a20a9e16',
    'SegmentationClass/train_00002.png':
    '308ad4b7f2c1d0c26ea1ad35c19f5f584771e260485b18c9b5d51aa672380dc7',
    'SegmentationPart/train_00001.png':
    '0374c056c2219a2dbf3980521cb2559ab5086edb834616bb22b58beb34b1d5f2',
}


def test_default_bytes_unchanged(tmp_path):
    """The default demo images are the same bytes as when the demo's results were measured.

    Image ``i`` depends only on ``(seed, split, i)``, so a 3 + 1 image set at the default
    options holds the first files of the default 400 + 100 set.
    """
    tool = runpy.run_path(osp.join(REPO, 'tools', 'gen_demo_data.py'))
    out = str(tmp_path / 'defaults')
    tool['main']([out, '--num-train', '3', '--num-val', '1', '--no-progress'])
    for name, expected in _DEFAULT_FINGERPRINTS.items():
        with open(osp.join(out, name), 'rb') as f:
            assert hashlib.sha256(f.read()).hexdigest() == expected, name
