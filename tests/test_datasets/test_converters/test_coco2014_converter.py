# Copyright (c) mmseg-sbce contributors.
"""COCO 2014 converter: pixel-exact masks, labels, split lists, bad input, resume."""
import copy
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mmseg_sbce.datasets.converters import coco2014 as conv

H, W = 8, 10
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def _img(img_id, split='train'):
    return dict(id=img_id, file_name=f'COCO_{split}2014_{img_id:012d}.jpg', height=H,
                width=W)


def _poly(ann_id, img_id, cat, *polys, crowd=0):
    return dict(id=ann_id, image_id=img_id, category_id=cat, iscrowd=crowd,
                segmentation=[list(p) for p in polys], area=0.0, bbox=[0, 0, 1, 1])


def _rle(ann_id, img_id, cat, counts, crowd=1, size=(H, W)):
    return dict(id=ann_id, image_id=img_id, category_id=cat, iscrowd=crowd,
                segmentation=dict(counts=counts, size=list(size)), area=0.0,
                bbox=[0, 0, 1, 1])


CATEGORIES = [dict(id=i, name=n, supercategory='x')
              for i, n in zip(conv.COCO_CATEGORY_IDS, conv.COCO_CLASSES)]


def train_json():
    """Hand-written instances file. A rectangle polygon with integer corners
    (x0, y0)-(x1, y1) covers rows y0..y1-1 and columns x0..x1-1."""
    return dict(
        info={}, licenses=[], categories=copy.deepcopy(CATEGORIES),
        images=[_img(1), _img(2), _img(3), _img(4), _img(5)],
        annotations=[
            # image 1: small dog (cat 18 -> class 17) listed first, with the lower id,
            # over a large person (cat 1 -> class 1); a crowd person RLE bottom right.
            _poly(10, 1, 18, [2, 1, 5, 1, 5, 4, 2, 4]),
            _poly(11, 1, 1, [0, 0, 8, 0, 8, 6, 0, 6]),
            # rows 4..7 of columns 6..9 (column-major runs)
            _rle(12, 1, 1, [52, 4, 4, 4, 4, 4, 4, 4]),
            # image 2: no annotation. image 3: crowd only (rows 0..1 of every column).
            _rle(30, 3, 1, [0] + [2, 6] * 10),
            # image 4: equal areas (4 px): bus (id 21) over car (id 20) at their overlap;
            # a compressed RLE toothbrush (cat 90 -> class 80, 11 px) under a 4 px cat
            # (cat 17 -> class 16) whose second polygon is degenerate (2 points).
            _poly(21, 4, 6, [2, 2, 4, 2, 4, 4, 2, 4]),
            _poly(20, 4, 3, [1, 1, 3, 1, 3, 3, 1, 3]),
            _rle(22, 4, 90, 'P2355', crowd=0),
            _poly(23, 4, 17, [8, 1, 10, 1, 10, 3, 8, 3], [0, 0, 1, 1]),
            # image 5: a crowd RLE of the wrong size -> the image is skipped
            _poly(50, 5, 1, [0, 0, 2, 0, 2, 2, 0, 2]),
            _rle(51, 5, 1, [10, 10], size=(4, 5)),
        ])


def val_json():
    return dict(categories=copy.deepcopy(CATEGORIES[:3]), images=[_img(7, 'val')],
                annotations=[_poly(70, 7, 2, [0, 0, 10, 0, 10, 8, 0, 8])])


def expected_masks():
    m1 = np.zeros((H, W), np.uint8)
    m1[4:8, 6:10] = 255  # crowd
    m1[0:6, 0:8] = 1  # person over the crowd
    m1[1:4, 2:5] = 17  # dog over the person
    m3 = np.zeros((H, W), np.uint8)
    m3[0:2, :] = 255
    m4 = np.zeros((H, W), np.uint8)
    m4[0:3, 8] = 80
    m4[:, 9] = 80
    m4[1:3, 1:3] = 3
    m4[2:4, 2:4] = 6
    m4[1:3, 8:10] = 16
    return {1: m1, 3: m3, 4: m4}


def make_root(tmp_path, train=None, val=None):
    root = tmp_path / 'coco'
    (root / 'annotations').mkdir(parents=True)
    for name, data in (('train', train or train_json()), ('val', val or val_json())):
        (root / 'annotations' / f'instances_{name}2014.json').write_text(json.dumps(data))
    return str(root)


def stem(img_id, split='train'):
    return f'COCO_{split}2014_{img_id:012d}'


def read_mask(out, img_id, split='train'):
    path = osp.join(out, 'SegmentationClass', f'{split}2014', stem(img_id, split) + '.png')
    with Image.open(path) as img:
        assert img.mode == 'L'
        return np.array(img)


def test_masks_labels_and_lists_pixel_exact(tmp_path):
    root, out = make_root(tmp_path), str(tmp_path / 'out')
    reports = conv.convert_coco2014(root, out, progress=False)
    expected = expected_masks()
    for img_id in (1, 4):
        np.testing.assert_array_equal(read_mask(out, img_id), expected[img_id])
    np.testing.assert_array_equal(read_mask(out, 7, 'val'), np.full((H, W), 2, np.uint8))
    with open(osp.join(out, 'ImageSets', 'train.txt')) as f:
        assert f.read().split() == [stem(1), stem(4)]
    with open(osp.join(out, 'ImageSets', 'val.txt')) as f:
        assert f.read().split() == [stem(7, 'val')]
    with open(osp.join(out, 'cls_labels_train.json')) as f:
        assert json.load(f) == {stem(1): [1, 17], stem(4): [3, 6, 16, 80]}
    with open(osp.join(out, 'cls_labels_val.json')) as f:
        assert json.load(f) == {stem(7, 'val'): [2]}
    # no PNG for excluded or skipped images
    names = sorted(os.listdir(osp.join(out, 'SegmentationClass', 'train2014')))
    assert names == [stem(1) + '.png', stem(4) + '.png']

    rep = reports['train']
    assert rep.num_images == 5 and rep.kept == [stem(1), stem(4)]
    assert rep.no_annotations == [stem(2)] and rep.crowd_only == [stem(3)]
    assert list(rep.skipped) == [stem(5)] and 'RLE size [4, 5]' in rep.skipped[stem(5)]
    assert rep.num_written == 2 and rep.degenerate_polygons == 1
    with open(osp.join(out, 'coco2014_train_report.json')) as f:
        assert json.load(f)['skipped'] == rep.skipped
    assert '1 with crowd annotations only' in rep.summary()


def test_keep_crowd_only_and_pool(tmp_path):
    root, out = make_root(tmp_path), str(tmp_path / 'out')
    rep = conv.convert_split(root, out, 'train', nproc=2, chunksize=1,
                             keep_crowd_only=True, progress=False)
    assert rep.kept == [stem(1), stem(3), stem(4)]
    for img_id, mask in expected_masks().items():
        np.testing.assert_array_equal(read_mask(out, img_id), mask)
    with open(osp.join(out, 'cls_labels_train.json')) as f:
        assert json.load(f)[stem(3)] == [1]


def test_build_label_map_direct():
    anns = [conv.AnnRecord(1, 5, False, [[0, 0, 10, 0, 10, 8, 0, 8]]),
            conv.AnnRecord(2, 7, True, dict(counts=[0, 80], size=[H, W]))]
    label, dropped = conv.build_label_map(H, W, anns)
    # a non-crowd instance covers the whole crowd region
    np.testing.assert_array_equal(label, np.full((H, W), 5, np.uint8))
    assert dropped == 0 and label.dtype == np.uint8


@pytest.mark.parametrize('segmentation, message', [
    ([[0, 0, 2, 0, 2]], 'malformed polygon'),
    ([], 'empty segmentation'),
    (dict(counts=[10, 10], size=[H, W]), 'sum to 20'),
    (dict(counts='garbage!', size=[H, W]), 'cannot decode'),
    ('polygon', 'unsupported segmentation'),
])
def test_undecodable_segmentation_is_reported(segmentation, message):
    task = conv.ImageTask('x', H, W, [conv.AnnRecord(1, 1, False, segmentation)],
                          out_path='/nonexistent/x.png')
    result = conv.convert_image(task)
    assert result.status == 'skipped' and message in result.reason


def _mutate(fn):
    data = train_json()
    fn(data)
    return data


@pytest.mark.parametrize('mutate, pieces', [
    (lambda d: d.pop('annotations'), ["missing top-level field(s) ['annotations']"]),
    (lambda d: d['annotations'][1].pop('segmentation'),
     ['annotation 11', "missing field(s) ['segmentation']"]),
    (lambda d: d['images'][0].pop('height'), ['image 1', 'height']),
    (lambda d: d['annotations'][0].update(image_id=999),
     ['annotation -> image', '10 -> image 999']),
    (lambda d: d['annotations'][0].update(category_id=12), ['10 -> category 12']),
    (lambda d: d['categories'].append(dict(id=91, name='banner')), ["91 ('banner')"]),
    (lambda d: d['categories'][0].update(name='people'), ["1 ('people')"]),
    (lambda d: d['images'][1].update(id=1), ['duplicate image id 1']),
    (lambda d: d['images'][0].update(width=0), ['image 1 has invalid width 0']),
])
def test_bad_json_raises_before_writing(tmp_path, mutate, pieces):
    root, out = make_root(tmp_path, train=_mutate(mutate)), str(tmp_path / 'out')
    with pytest.raises(conv.CocoFormatError) as err:
        conv.convert_split(root, out, 'train', progress=False)
    assert 'instances_train2014.json' in str(err.value)
    for piece in pieces:
        assert piece in str(err.value)
    assert not osp.exists(osp.join(out, 'ImageSets', 'train.txt'))
    assert not osp.isdir(osp.join(out, 'SegmentationClass'))


def test_missing_json(tmp_path):
    with pytest.raises(conv.CocoFormatError, match='annotation file not found'):
        conv.convert_split(str(tmp_path), str(tmp_path / 'out'), 'train')


def test_check_images(tmp_path):
    root, out = make_root(tmp_path), str(tmp_path / 'out')
    img_dir = osp.join(root, 'train2014')
    os.makedirs(img_dir)
    Image.new('RGB', (W, H)).save(osp.join(img_dir, stem(1) + '.jpg'))
    Image.new('RGB', (H, W)).save(osp.join(img_dir, stem(4) + '.jpg'))  # transposed
    rep = conv.convert_split(root, out, 'train', check_images=True, progress=False)
    assert rep.kept == [stem(1)]
    assert f'is {H}x{W} (WxH) but the json declares {W}x{H}' in rep.skipped[stem(4)]
    assert stem(4) + '.jpg' in rep.skipped[stem(4)]
    os.remove(osp.join(img_dir, stem(1) + '.jpg'))
    rep = conv.convert_split(root, out, 'train', check_images=True, progress=False)
    assert rep.kept == [] and 'image file not found' in rep.skipped[stem(1)]


def test_resume_keeps_existing_and_cleans_temporaries(tmp_path):
    root, out = make_root(tmp_path), str(tmp_path / 'out')
    conv.convert_split(root, out, 'train', progress=False)
    mask_dir = osp.join(out, 'SegmentationClass', 'train2014')
    sentinel = np.full((H, W), 9, np.uint8)
    Image.fromarray(sentinel, mode='L').save(osp.join(mask_dir, stem(1) + '.png'))
    stale = osp.join(mask_dir, f'.{stem(4)}.png.123.tmp')
    open(stale, 'wb').close()

    rep = conv.convert_split(root, out, 'train', progress=False)
    assert rep.num_existing == 2 and rep.num_written == 0
    np.testing.assert_array_equal(read_mask(out, 1), sentinel)  # not recomputed
    assert not osp.exists(stale)
    rep = conv.convert_split(root, out, 'train', overwrite=True, progress=False)
    assert rep.num_written == 2
    np.testing.assert_array_equal(read_mask(out, 1), expected_masks()[1])


def test_interrupted_write_leaves_no_partial_files(tmp_path, monkeypatch):
    root, out = make_root(tmp_path), str(tmp_path / 'out')
    real_save = Image.Image.save

    def failing_save(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)  # the temp file exists ...
        if stem(4) in str(fp):
            raise KeyboardInterrupt  # ... when the run is killed

    monkeypatch.setattr(Image.Image, 'save', failing_save)
    with pytest.raises(KeyboardInterrupt):
        conv.convert_split(root, out, 'train', progress=False)
    names = os.listdir(osp.join(out, 'SegmentationClass', 'train2014'))
    assert names == [stem(1) + '.png']  # finished image only, no temporaries
    assert not osp.exists(osp.join(out, 'ImageSets', 'train.txt'))
    assert not osp.exists(osp.join(out, 'cls_labels_train.json'))
    monkeypatch.setattr(Image.Image, 'save', real_save)
    rep = conv.convert_split(root, out, 'train', progress=False)
    assert rep.num_existing == 1 and rep.num_written == 1
    np.testing.assert_array_equal(read_mask(out, 4), expected_masks()[4])


def _load_tool():
    path = osp.join(ROOT, 'tools', 'dataset_converters', 'coco2014.py')
    spec = importlib.util.spec_from_file_location('coco2014_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli(tmp_path, capsys):
    tool = _load_tool()
    root, out = make_root(tmp_path), str(tmp_path / 'out')
    os.makedirs(osp.join(root, 'val2014'))
    assert tool.main([root, '--out', out, '--splits', 'val', '--no-progress']) == 0
    assert osp.islink(osp.join(out, 'val2014'))
    assert osp.realpath(osp.join(out, 'val2014')) == osp.realpath(osp.join(root, 'val2014'))
    assert '[val] 1 images in the json, 1 kept' in capsys.readouterr().out
    assert tool.main([root, '--out', out, '--splits', 'train', '--no-progress']) == 0
    assert '1 image(s) skipped' in capsys.readouterr().err

    bad = copy.deepcopy(val_json())
    bad['annotations'][0]['image_id'] = 8
    root2 = make_root(tmp_path / 'b', val=bad)
    assert tool.main([root2, '--out', out, '--splits', 'val', '--no-progress']) == 1
    assert '70 -> image 8' in capsys.readouterr().err


def test_class_names_match_the_dataset():
    coco_cls = pytest.importorskip('mmseg_sbce.datasets.coco_cls')
    assert tuple(coco_cls.COCO_CLASSES) == conv.COCO_CLASSES
    assert len(conv.COCO_CLASSES) == len(conv.COCO_CATEGORY_IDS) == 80
