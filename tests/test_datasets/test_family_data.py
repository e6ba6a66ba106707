# Copyright (c) mmseg-sbce contributors.
"""The generated data-set family: presets, determinism, what each knob does, errors."""
import filecmp
import json
import os
import os.path as osp
import runpy

import numpy as np
import pytest
from PIL import Image

from mmseg_sbce.datasets import DemoClsDataset, load_cls_labels
from mmseg_sbce.datasets.cls_labels import labels_from_mask
from mmseg_sbce.datasets.family_data import (generate_family_dataset, label_statistics,
                                             render_family_sample)
from mmseg_sbce.datasets.family_options import (CLUTTER_LEVELS, FamilyOptions,
                                                family_preset_names, load_family_preset,
                                                resolve_family_preset)
from mmseg_sbce.datasets.generated_common import (PART_BODY, PART_DISCRIMINATIVE,
                                                  PART_IGNORE)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PRESET_DIR = osp.join(REPO, 'benchmarks', 'datasets')

# A tiny member with every knob away from its default.
TINY = dict(num_train=5, num_val=2, img_size=64, num_classes=4, seed=11,
            object_scale=(0.04, 0.1), classes_per_image=(1, 3), instances_per_class=(1, 2),
            class_groups=((1, 2), (3, 4)), group_prob=0.7, clutter='lookalikes',
            body_tint=0.0, part_size=(0.4, 0.5), context=0.8, context_leak=0.2)


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('family'))
    generate_family_dataset(root, FamilyOptions(**TINY), preset='tiny')
    return root


def _render(count, **kwargs):
    opts = FamilyOptions(**dict(dict(num_train=count, num_val=0, img_size=64), **kwargs))
    return [render_family_sample(opts, 'train', i) for i in range(count)]


def test_presets_are_named_members():
    names = family_preset_names(PRESET_DIR)
    assert len(names) >= 4
    assert {'small_objects_256', 'large_objects_plain', 'cluttered_lookalikes',
            'cooccurring_shared_bodies'} <= set(names)
    members = {name: load_family_preset(resolve_family_preset(name, PRESET_DIR))
               for name in names}
    assert all(description for _, description in members.values())
    # fixed, distinct seeds; image sizes 128 and 256
    assert len({opts.seed for opts, _ in members.values()}) == len(names)
    assert {opts.img_size for opts, _ in members.values()} >= {128, 256}
    assert members['cooccurring_shared_bodies'][0].body_tint == 0.0
    with pytest.raises(ValueError, match='unknown family preset .*small_objects_256'):
        resolve_family_preset('no_such_member', PRESET_DIR)


def test_layout_meta_and_dataset(tiny_root):
    meta = json.load(open(osp.join(tiny_root, 'meta.json')))
    generator = meta['generator']
    assert generator['name'] == 'family' and generator['preset'] == 'tiny'
    # every option is recorded, and the record reproduces the options
    assert FamilyOptions.from_dict({k: generator[k] for k in TINY}) == FamilyOptions(**TINY)
    assert set(FamilyOptions().to_dict()) <= set(generator)
    assert meta['classes'] == ['background', 'red', 'yellow', 'green', 'blue']
    labels = load_cls_labels(osp.join(tiny_root, 'cls_labels.json'), num_classes=4)
    for split, count in (('train', 5), ('val', 2)):
        with open(osp.join(tiny_root, 'ImageSets', 'Segmentation', f'{split}.txt')) as f:
            ids = f.read().split()
        assert len(ids) == count
        for img_id in ids:
            img = Image.open(osp.join(tiny_root, 'JPEGImages', img_id + '.jpg'))
            mask = np.array(Image.open(osp.join(tiny_root, 'SegmentationClass',
                                                img_id + '.png')))
            part = np.array(Image.open(osp.join(tiny_root, 'SegmentationPart',
                                                img_id + '.png')))
            assert img.mode == 'RGB' and img.size == (64, 64)
            assert labels[img_id] == labels_from_mask(mask, 4)
            assert ((mask == 255) == (part == PART_IGNORE)).all()
    dataset = DemoClsDataset(data_root=tiny_root, pipeline=[])
    assert len(dataset) == 5 and dataset.metainfo['classes'][1] == 'red'


def test_deterministic(tmp_path, tiny_root):
    again = str(tmp_path / 'again')
    generate_family_dataset(again, FamilyOptions(**TINY), preset='tiny')
    for sub in ('JPEGImages', 'SegmentationClass', 'SegmentationPart'):
        names = sorted(os.listdir(osp.join(tiny_root, sub)))
        _, mismatch, errors = filecmp.cmpfiles(
            osp.join(tiny_root, sub), osp.join(again, sub), names, shallow=False)
        assert len(names) == 7 and not mismatch and not errors
    for name in ('cls_labels.json', 'meta.json', 'ImageSets/Segmentation/val.txt'):
        assert filecmp.cmp(osp.join(tiny_root, name), osp.join(again, name), shallow=False)
    other = render_family_sample(FamilyOptions(**dict(TINY, seed=12)), 'train', 0)[0]
    assert not np.array_equal(other, render_family_sample(FamilyOptions(**TINY), 'train',
                                                          0)[0])


def _foreground(samples):
    return np.mean([((label > 0) & (label < 255)).sum() / (label != 255).sum()
                    for _, label, _, _ in samples])


def test_object_scale_sets_foreground_fraction():
    fractions = [
        _foreground(_render(8, classes_per_image=(1, 1), object_scale=scale))
        for scale in ((0.02, 0.03), (0.08, 0.12), (0.35, 0.5))
    ]
    assert fractions[0] < 0.04 and fractions[2] > 0.25
    assert fractions[0] < fractions[1] < fractions[2]


def test_image_size():
    for size in (128, 256):
        img, label, part, _ = _render(1, img_size=size)[0]
        assert img.shape == (size, size, 3) and label.shape == part.shape == (size, size)


def test_classes_per_image_and_groups():
    for low, high in ((1, 1), (2, 3), (3, 3)):
        counts = [len(labels) for *_, labels in _render(8, classes_per_image=(low, high))]
        assert low <= min(counts) and max(counts) <= high
    grouped = dict(num_classes=4, classes_per_image=(2, 2), class_groups=((1, 2), (3, 4)))
    pairs = {tuple(labels) for *_, labels in _render(12, group_prob=1.0, **grouped)}
    assert pairs <= {(1, 2), (3, 4)} and len(pairs) == 2
    mixed = {tuple(labels) for *_, labels in _render(12, group_prob=0.0, **grouped)}
    assert mixed - {(1, 2), (3, 4)}


def test_clutter_levels_change_only_the_background():
    samples = {level: _render(4, clutter=level, seed=5) for level in CLUTTER_LEVELS}
    roughness, sharp = {}, {}
    for level, rendered in samples.items():
        # the label maps do not depend on the background options
        for (_, label, _, _), (_, ref, _, _) in zip(rendered, samples['plain']):
            assert np.array_equal(label, ref)
        # horizontal steps between background pixels: mean size, share of sharp edges
        steps = [np.abs(np.diff(img.astype(float), axis=1)).max(-1)[label[:, 1:] == 0]
                 for img, label, _, _ in rendered]
        roughness[level] = np.mean([s.mean() for s in steps])
        sharp[level] = np.mean([(s > 40).mean() for s in steps])
    assert roughness['plain'] < roughness['textured'] and sharp['plain'] == 0
    assert 2 * sharp['textured'] < sharp['edges'] < sharp['lookalikes']
    # look-alikes are painted on the background only, and there are some
    for (img, label, _, _), (ref, _, _, _) in zip(samples['lookalikes'], samples['edges']):
        changed = (img != ref).any(-1)
        assert not (changed & (label > 0) & (label < 255)).any()
    assert any((img != ref).any() for (img, *_), (ref, *_) in zip(samples['lookalikes'],
                                                                   samples['edges']))


def test_context_is_unlabelled_background():
    with_context = _render(4, context=1.0)
    without = _render(4)
    for (img, label, _, _), (ref, ref_label, _, _) in zip(with_context, without):
        assert np.array_equal(label, ref_label)
        changed = np.abs(img.astype(int) - ref.astype(int)).max(-1) > 10
        assert not (changed & (label > 0) & (label < 255)).any()
        assert changed[label == 0].mean() > 0.1


def _class_body_colours(samples):
    colours = {}
    for img, label, part, labels in samples:
        for cls in labels:
            body = (label == cls) & (part == PART_BODY)
            colours.setdefault(cls, []).append(img[body].astype(float).mean(0))
    return np.array([np.mean(v, 0) for v in colours.values()])


def test_shared_bodies_and_part_size():
    kwargs = dict(num_classes=4, classes_per_image=(2, 3), seed=2)
    shared = _class_body_colours(_render(10, body_tint=0.0, **kwargs))
    tinted = _class_body_colours(_render(10, body_tint=0.5, **kwargs))
    assert np.ptp(shared, 0).max() < 8 < 30 < np.ptp(tinted, 0).max()

    def head_share(part_size):
        samples = _render(6, part_size=part_size, object_scale=(0.1, 0.15))
        return np.mean([(part == PART_DISCRIMINATIVE).sum() /
                        np.isin(part, [PART_DISCRIMINATIVE, PART_BODY]).sum()
                        for _, _, part, _ in samples])

    assert head_share((0.3, 0.35)) < 0.1 < head_share((0.9, 1.0))


def test_label_statistics(tiny_root):
    stats = label_statistics(tiny_root, 'train')
    assert stats['num_images'] == 5 and sum(stats['classes_per_image'].values()) == 5
    assert set(stats['classes_per_image']) <= {1, 2, 3}
    assert 0 < stats['foreground_fraction'] < 1


@pytest.mark.parametrize('options, match', [
    (dict(object_scale=(0.2, 0.1)), 'object_scale'),
    (dict(object_scale=(0.001, 0.1)), 'object_scale'),
    (dict(object_scale='big'), 'object_scale'),
    (dict(classes_per_image=(0, 2)), 'classes_per_image'),
    (dict(classes_per_image=(1, 4)), 'classes_per_image'),
    (dict(num_classes=2, classes_per_image=(3, 3)), 'classes_per_image'),
    (dict(instances_per_class=(1, 4)), 'instances_per_class'),
    (dict(part_size=(0.1, 0.5)), 'part_size'),
    (dict(clutter='noisy'), 'clutter'),
    (dict(class_groups=((1, ), )), 'class_groups'),
    (dict(class_groups=((1, 2), (2, 3))), 'class_groups'),
    (dict(class_groups=((1, 9), )), 'class_groups'),
    (dict(group_prob=1.5), 'group_prob'),
    (dict(context=-0.1), 'context'),
    (dict(context_leak=True), 'context_leak'),
    (dict(body_tint=2.0), 'body_tint'),
    (dict(img_size=16), 'img_size'),
    (dict(num_classes=11), 'num_classes'),
    (dict(num_train=0, num_val=0), 'num_train'),
    (dict(jpeg_quality=0), 'jpeg_quality'),
])
def test_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        FamilyOptions(**options)


def test_bad_presets_and_impossible_layouts(tmp_path):
    with pytest.raises(ValueError, match=r"bad.json: unknown family options \['scale'\]"):
        FamilyOptions.from_dict(dict(scale=0.1), source='bad.json')
    broken = tmp_path / 'broken.json'
    broken.write_text('{"options": ')
    with pytest.raises(ValueError, match='broken.json is not valid JSON'):
        load_family_preset(str(broken))
    wrong = tmp_path / 'wrong.json'
    wrong.write_text('{"options": {"clutter": "noisy"}}')
    with pytest.raises(ValueError, match='wrong.json: clutter must be one of'):
        load_family_preset(str(wrong))
    with pytest.raises(FileNotFoundError, match='missing.json'):
        load_family_preset(str(tmp_path / 'missing.json'))
    crowded = FamilyOptions(img_size=32, object_scale=(0.6, 0.6), classes_per_image=(3, 3))
    with pytest.raises(RuntimeError, match='no room for'):
        render_family_sample(crowded, 'train', 0)


def test_tool(tmp_path, capsys):
    tool = runpy.run_path(osp.join(REPO, 'tools', 'gen_demo_data.py'))
    tool['main'](['--list-presets'])
    listed = capsys.readouterr().out
    assert all(f'{name}: ' in listed for name in family_preset_names(PRESET_DIR))
    out = str(tmp_path / 'member')
    tool['main']([out, '--preset', 'cooccurring_shared_bodies', '--num-train', '2',
                  '--num-val', '1', '--size', '64', '--option', 'clutter="edges"',
                  'object_scale=[0.05,0.1]', '--no-progress'])
    assert 'wrote 2 train + 1 val images' in capsys.readouterr().out
    generator = json.load(open(osp.join(out, 'meta.json')))['generator']
    assert generator['preset'] == 'cooccurring_shared_bodies'
    assert generator['img_size'] == 64 and generator['clutter'] == 'edges'
    assert generator['object_scale'] == [0.05, 0.1] and generator['body_tint'] == 0.0
    with pytest.raises(ValueError, match='--option expects KEY=VALUE'):
        tool['main']([out, '--option', 'clutter'])
    with pytest.raises(ValueError, match='family options: unknown family options'):
        tool['main']([out, '--option', 'objects=3'])
