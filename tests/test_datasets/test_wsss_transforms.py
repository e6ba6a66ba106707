# Copyright (c) mmseg-sbce contributors.
import os
import os.path as osp

import numpy as np
import pytest
import torch
import mmseg_sbce  # noqa: F401,I001  (compat fixes before mmseg is imported)
from mmcv.transforms import Compose
from mmpretrain.datasets.transforms.auto_augment import RANDAUG_POLICIES
from mmseg.registry import TRANSFORMS
from PIL import Image

from mmseg_sbce.datasets import (GEOMETRIC_RANDAUG_OPS, PHOTOMETRIC_RANDAUG_POLICIES,
                                 DemoClsDataset, photometric_randaug)
from mmseg_sbce.datasets.transforms import LoadQMap, PackWSSSInputs


def _results(img_id='a', shape=(20, 30)):
    return dict(img=np.zeros(shape + (3, ), np.uint8), img_id=img_id, img_path=f'{img_id}.jpg',
                seg_fields=[])


def _write_q(directory, img_id, q_map):
    os.makedirs(directory, exist_ok=True)
    Image.fromarray(q_map.astype(np.uint8)).save(osp.join(directory, img_id + '.png'))


# ---------------------------------------------------------------------- LoadQMap
def test_load_q_map_before_the_first_q(tmp_path):
    out = LoadQMap(q_dir=str(tmp_path / 'q'))(_results())
    assert out['gt_seg_map'].shape == (20, 30) and out['gt_seg_map'].dtype == np.uint8
    assert (out['gt_seg_map'] == 255).all()
    assert out['seg_fields'] == ['gt_seg_map'] and out['q_map_path'] is None


def test_load_q_map_follows_the_current_symlink(tmp_path):
    q_dir = str(tmp_path / 'q')
    q1 = np.random.default_rng(0).integers(0, 4, (20, 30))
    q2 = (q1 + 1) % 4
    _write_q(osp.join(q_dir, 'phase_1'), 'a', q1)
    _write_q(osp.join(q_dir, 'phase_2'), 'a', q2)
    transform = TRANSFORMS.build(dict(type='LoadQMap', q_dir=q_dir))
    assert (transform(_results())['gt_seg_map'] == 255).all()  # no Q yet
    os.symlink('phase_1', osp.join(q_dir, 'current'))
    out = transform(_results())
    np.testing.assert_array_equal(out['gt_seg_map'], q1)
    assert out['q_map_path'] == osp.join(q_dir, 'current', 'a.png')
    # the hook repoints the link: the same transform instance sees the new Q
    tmp_link = osp.join(q_dir, 'current.tmp')
    os.symlink('phase_2', tmp_link)
    os.replace(tmp_link, osp.join(q_dir, 'current'))
    np.testing.assert_array_equal(transform(_results())['gt_seg_map'], q2)
    # seg_fields lists the map once even if it was there already
    res = _results()
    res['seg_fields'] = ['gt_seg_map']
    assert transform(res)['seg_fields'] == ['gt_seg_map']


def test_load_q_map_errors(tmp_path):
    q_dir = str(tmp_path / 'q')
    _write_q(osp.join(q_dir, 'phase_1'), 'a', np.zeros((20, 30)))
    _write_q(osp.join(q_dir, 'phase_1'), 'wide', np.zeros((20, 31)))
    Image.new('RGB', (30, 20)).save(osp.join(q_dir, 'phase_1', 'rgb.png'))
    os.symlink('phase_1', osp.join(q_dir, 'current'))
    transform = LoadQMap(q_dir=q_dir)
    with pytest.raises(FileNotFoundError, match=r"current/b\.png.*'b'.*q_dir=.*q"):
        transform(_results('b'))
    with pytest.raises(ValueError, match=r'wide\.png has size \(20, 31\).*\(20, 30\)'):
        transform(_results('wide'))
    with pytest.raises(ValueError, match=r'rgb\.png must be a single-channel'):
        transform(_results('rgb'))
    os.remove(osp.join(q_dir, 'current'))
    os.symlink('phase_9', osp.join(q_dir, 'current'))  # dangling
    with pytest.raises(FileNotFoundError, match='dangling symlink'):
        transform(_results())
    with pytest.raises(KeyError, match='after the image loader'):
        transform(dict(img_id='a'))
    with pytest.raises(ValueError):
        LoadQMap(q_dir='')


def test_load_q_map_with_thresholds(tmp_path):
    """The split of each saved map at the class's count in the Q map (whole image)."""
    from mmseg_sbce.apis.label_io import save_maps_npz
    q_dir = str(tmp_path / 'q')
    store = osp.join(q_dir, 'phase_1')
    q = np.zeros((20, 30), np.uint8)
    q[:4] = 1  # class 0: 120 of 600 pixels
    q[10:, :3] = 3  # class 2: 30 pixels
    _write_q(store, 'a', q)
    os.makedirs(osp.join(store, 'probs'))
    logits = np.zeros((3, 20, 30), np.float32)
    logits[0, :4] = 3.  # class 0: its Q region is the top of its map, then 1, then 0
    logits[0, 4:8] = 1.
    logits[1, :] = -2.  # class 1: Q gives it no pixel
    logits[2, 10:, :3] = 2.  # class 3 (id 2): a plateau at 2 over exactly its Q region
    save_maps_npz(osp.join(store, 'probs', 'a.npz'), logits, np.array([0, 1, 2]),
                  np.full(3, 0.5))
    os.symlink('phase_1', osp.join(q_dir, 'current'))
    transform = TRANSFORMS.build(dict(type='LoadQMap', q_dir=q_dir, with_thresholds=True))
    assert 'with_thresholds=True' in repr(transform)
    out = transform(dict(_results(), num_classes=4))
    assert out['q_thr_logits'].dtype == np.float32
    np.testing.assert_array_equal(out['q_thr_logits'], [2., np.nan, 1., np.nan])
    # without a Q yet: no target; without the flag: no key
    assert np.isnan(LoadQMap(q_dir=str(tmp_path / 'none'), with_thresholds=True)(
        dict(_results(), num_classes=4))['q_thr_logits']).all()
    assert 'q_thr_logits' not in LoadQMap(q_dir=q_dir)(_results())
    # errors name the file
    _write_q(store, 'nomaps', q)
    with pytest.raises(FileNotFoundError, match=r'probs/nomaps\.npz.*save_maps=True'):
        transform(dict(_results('nomaps'), num_classes=4))
    _write_q(store, 'small', q[:10])
    save_maps_npz(osp.join(store, 'probs', 'small.npz'), logits, np.array([0, 1, 2]), None)
    with pytest.raises(ValueError, match=r'small\.npz have size \(20, 30\).*\(10, 30\)'):
        transform(dict(_results('small', (10, 30)), num_classes=4))
    with pytest.raises(ValueError, match=r'classes \[0, 1, 2\], outside 0\.\.1'):
        transform(dict(_results(), num_classes=2))
    with open(osp.join(store, 'probs', 'bad.npz'), 'wb') as f:
        f.write(b'not a zip')
    _write_q(store, 'bad', q)
    with pytest.raises(OSError, match=r'cannot read saved maps .*bad\.npz'):
        transform(dict(_results('bad'), num_classes=4))
    with pytest.raises(KeyError, match='num_classes'):
        transform(_results())


def test_load_q_map_reads_the_maps_entry(tmp_path):
    """Where ``{q_dir}/maps`` exists (QUpdateHook points it at refreshed maps), the
    targets split those maps at the current Q's count, not ``{current}/probs``."""
    from mmseg_sbce.apis.label_io import save_maps_npz
    q_dir = str(tmp_path / 'q')
    store = osp.join(q_dir, 'phase_1')
    q = np.zeros((20, 30), np.uint8)
    q[:4] = 1  # class 0: 120 of 600 pixels
    _write_q(store, 'a', q)
    for maps_dir in ('phase_1/probs', 'phase_1_maps_1/probs'):
        os.makedirs(osp.join(q_dir, maps_dir))
    old = np.zeros((1, 20, 30), np.float32)
    old[0, :4] = 30.  # the maps of the previous phase: split between 30 and 0
    save_maps_npz(osp.join(store, 'probs', 'a.npz'), old, np.array([0]), None)
    new = np.zeros((1, 20, 30), np.float32)
    new[0, :4] = 6.  # the on-training network's newer maps: split between 6 and 0
    save_maps_npz(osp.join(q_dir, 'phase_1_maps_1', 'probs', 'a.npz'), new, np.array([0]),
                  None)
    os.symlink('phase_1', osp.join(q_dir, 'current'))
    transform = LoadQMap(q_dir=q_dir, with_thresholds=True)
    assert transform(dict(_results(), num_classes=2))['q_thr_logits'][0] == 15.
    os.symlink(osp.join(q_dir, 'phase_1_maps_1', 'probs'), osp.join(q_dir, 'maps'))
    assert transform(dict(_results(), num_classes=2))['q_thr_logits'][0] == 3.
    assert "maps='maps'" in repr(transform)
    _write_q(store, 'b', q)  # a Q map whose refreshed maps are missing
    with pytest.raises(FileNotFoundError, match=r'phase_1_maps_1/probs/b\.npz'):
        transform(dict(_results('b'), num_classes=2))


# ---------------------------------------------------------------------- PackWSSSInputs
def test_pack_wsss_inputs():
    res = _results()
    res.update(gt_labels=[0, 3], num_classes=5, gt_seg_map=np.full((20, 30), 2, np.uint8))
    packed = PackWSSSInputs()(res)
    sample = packed['data_samples']
    assert packed['inputs'].shape == (3, 20, 30)
    assert sample.gt_labels.dtype == torch.float32
    assert sample.gt_labels.tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert sample.img_id == 'a' and sample.gt_sem_seg.data.shape == (1, 20, 30)
    assert PackWSSSInputs(num_classes=5)(dict(res))['data_samples'].gt_labels.shape == (5, )
    no_labels = _results()
    assert 'gt_labels' not in PackWSSSInputs()(no_labels)['data_samples']
    assert 'gt_thr_logits' not in PackWSSSInputs()(dict(res))['data_samples']
    thr = PackWSSSInputs()(dict(res, q_thr_logits=np.array([1., np.nan, 2., 3., 4.],
                                                           np.float32)))
    assert thr['data_samples'].gt_thr_logits.dtype == torch.float32
    torch.testing.assert_close(thr['data_samples'].gt_thr_logits,
                               torch.tensor([1., float('nan'), 2., 3., 4.]), equal_nan=True)
    with pytest.raises(ValueError, match='num_classes=4.*5'):
        PackWSSSInputs(num_classes=4)(dict(res))
    with pytest.raises(KeyError, match='num_classes'):
        PackWSSSInputs()(dict(_results(), gt_labels=[1]))
    with pytest.raises(ValueError, match=r'outside 0\.\.4'):
        PackWSSSInputs()(dict(res, gt_labels=[5]))


# ---------------------------------------------------------------------- RandAugment
def _square_sample():
    """Grey 48x48 image with a bright 16x16 square; the map labels the square 1."""
    img = np.full((48, 48, 3), 60, np.uint8)
    img[16:32, 16:32] = 190
    seg = np.zeros((48, 48), np.uint8)
    seg[16:32, 16:32] = 1
    return dict(img=img, gt_seg_map=seg, seg_fields=['gt_seg_map'],
                img_shape=(48, 48), ori_shape=(48, 48))


def _aligned(results):
    """The map still labels what the image shows: each map region is uniform inside, as
    it is before any op. Photometric ops change values, never positions: they may give
    both regions one colour (Posterize to 0 bits), and Sharpness, a 3x3 filter, touches
    1 px on each side of an edge (so 2 px for two ops) and leaves the image's outer
    1 px ring unfiltered; those bands are left out."""
    img = results['img'].astype(np.int32)
    seg = results['gt_seg_map']
    inner_fg = np.zeros_like(seg, bool)
    inner_fg[19:29, 19:29] = True
    inner_bg = np.zeros_like(seg, bool)
    inner_bg[1:-1, 1:-1] = True
    inner_bg[13:35, 13:35] = False
    assert (seg[inner_fg] == 1).all() and (seg[inner_bg] == 0).all()
    fg, bg = img[inner_fg], img[inner_bg]
    return bool((fg == fg[0]).all() and (bg == bg[0]).all())


def test_photometric_policies_are_timm_increasing_without_geometric_ops():
    timm = RANDAUG_POLICIES['timm_increasing']
    assert PHOTOMETRIC_RANDAUG_POLICIES == [
        p for p in timm if p['type'] not in GEOMETRIC_RANDAUG_OPS]
    assert len(timm) - len(PHOTOMETRIC_RANDAUG_POLICIES) == 5


def test_photometric_randaug_keeps_the_map_aligned():
    cfg = photometric_randaug(num_policies=2, magnitude_level=9, magnitude_std=0.5)
    assert cfg['_scope_'] == 'mmpretrain' and cfg['policies'] == 'photometric'
    transform = TRANSFORMS.build(cfg)
    assert type(transform).__module__.startswith('mmpretrain')
    # every op alone, always applied, at full magnitude
    for policy in PHOTOMETRIC_RANDAUG_POLICIES:
        op = TRANSFORMS.build(dict(
            type='RandAugment', _scope_='mmpretrain', num_policies=1, magnitude_level=10,
            policies=[dict(policy, prob=1.0)]))
        assert _aligned(op(_square_sample())), policy['type']
    changed = 0
    for seed in range(40):
        np.random.seed(seed)
        out = transform(_square_sample())
        assert _aligned(out)
        changed += not np.array_equal(out['img'], _square_sample()['img'])
    assert changed > 20  # the ops did something


def test_geometric_randaug_ops_misalign_the_map():
    """Why the photometric list exists: 'timm_increasing' moves the image, not the map."""
    for policy in RANDAUG_POLICIES['timm_increasing']:
        if policy['type'] not in GEOMETRIC_RANDAUG_OPS:
            continue
        op = TRANSFORMS.build(dict(
            type='RandAugment', _scope_='mmpretrain', num_policies=1, magnitude_level=10,
            policies=[dict(policy, prob=1.0)]))
        assert not _aligned(op(_square_sample())), policy
    timm = TRANSFORMS.build(dict(
        type='RandAugment', _scope_='mmpretrain', policies='timm_increasing',
        num_policies=2, total_level=10, magnitude_level=9, magnitude_std=0.5))
    misaligned = 0
    for seed in range(40):
        np.random.seed(seed)
        misaligned += not _aligned(timm(_square_sample()))
    assert misaligned > 0


# ---------------------------------------------------------------------- pipelines
# The pipelines are defined once, in the configs: the tests read them from there.
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def config_pipeline(config, key='train_pipeline', q_dir=None, crop_size=None, scale=None):
    """``key`` of ``configs/{config}`` (a list of transform dicts), with the Q store, the crop
    size and the base scale of RandomResize replaced where given."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    node = cfg
    for part in key.split('.'):  # e.g. 'infer_dataset.pipeline'
        node = node[part]
    pipeline = [t.to_dict() for t in node]
    for t in pipeline:
        if t['type'] == 'LoadQMap' and q_dir is not None:
            t['q_dir'] = q_dir
        elif t['type'] == 'RandomCrop' and crop_size is not None:
            t['crop_size'] = (crop_size, crop_size)
        elif t['type'] == 'RandomResize' and scale is not None:
            t['scale'] = scale
    return pipeline


def _colour_coded_dataset(tmp_path, demo_root, q_dir):
    """Demo ids whose images are PNGs coloured by the GT label; Q = the GT mask."""
    from mmseg_sbce.datasets.demo_data import load_demo_meta
    palette = np.array(load_demo_meta(demo_root)['palette'], np.uint8)
    palette[0] = (128, 128, 128)
    lut = np.zeros((256, 3), np.uint8)
    lut[:len(palette)] = palette
    img_dir = tmp_path / 'coded'
    img_dir.mkdir()
    ds = DemoClsDataset(data_root=demo_root)
    for i in range(len(ds)):
        img_id = ds.get_data_info(i)['img_id']
        mask = np.array(Image.open(ds.get_data_info(i)['seg_map_path']))
        coded = lut[np.where(mask == 255, 0, mask)]
        Image.fromarray(coded).save(img_dir / f'{img_id}.png')
        _write_q(osp.join(q_dir, 'phase_1'), img_id, mask)
    os.symlink('phase_1', osp.join(q_dir, 'current'))
    return str(img_dir), lut


def test_train_pipeline_moves_image_and_q_map_together(tmp_path, demo_root):
    q_dir = str(tmp_path / 'q')
    img_dir, lut = _colour_coded_dataset(tmp_path, demo_root, q_dir)
    # the demo's SBCE pipeline (no RandAugment; ratio range 0.5-2 as in the VOC one)
    pipeline = config_pipeline('demo/sbce_demo.py', q_dir=q_dir, crop_size=48,
                               scale=(256, 64))
    pipeline[2]['ratio_range'] = (0.5, 2.0)
    assert [t['type'] for t in pipeline] == [
        'LoadCheckedImageFromFile', 'LoadQMap', 'RandomResize', 'RandomCrop', 'RandomFlip',
        'PackWSSSInputs']
    ds = DemoClsDataset(data_root=demo_root, data_prefix=dict(img_path=img_dir),
                        img_suffix='.png', pipeline=pipeline)
    flips, sizes = 0, set()
    for seed in range(12):
        np.random.seed(seed)
        sample = ds[seed % len(ds)]
        img = sample['inputs'].permute(1, 2, 0).numpy()[..., ::-1]  # BGR -> RGB
        q_map = sample['data_samples'].gt_sem_seg.data[0].numpy()
        assert img.shape[:2] == q_map.shape
        flips += bool(sample['data_samples'].flip)
        sizes.add(sample['data_samples'].img_shape)
        valid = q_map != 255
        # decode the label from the colour: nearest colour of the look-up table
        dist = ((img[valid][:, None, :].astype(np.int32) -
                 lut[None, :7].astype(np.int32))**2).sum(-1)
        agree = (dist.argmin(1) == q_map[valid]).mean()
        assert agree > 0.97, (seed, agree)
    assert 0 < flips < 12 and len(sizes) > 1


def test_full_train_pipeline_with_randaug(tmp_path, demo_root):
    q_dir = str(tmp_path / 'q')
    ds = DemoClsDataset(
        data_root=demo_root,
        pipeline=config_pipeline('sbce_voc.py', q_dir=q_dir, crop_size=48, scale=(256, 64)))
    pipeline = config_pipeline('sbce_voc.py', q_dir=q_dir)
    assert pipeline[3] == dict(type='RandomCrop', crop_size=(368, 368), cat_max_ratio=1.0)
    assert pipeline[5]['type'] == 'RandAugment' and pipeline[5]['_scope_'] == 'mmpretrain'
    for i in range(4):
        sample = ds[i]
        seg = sample['data_samples'].gt_sem_seg.data
        assert seg.shape[1:] == sample['inputs'].shape[1:]
        assert (seg == 255).all()  # no Q yet: all unknown
        assert sample['data_samples'].gt_labels.sum() >= 1


def test_test_pipeline(demo_root):
    ds = DemoClsDataset(data_root=demo_root, ann_file='ImageSets/Segmentation/val.txt',
                        pipeline=config_pipeline('demo/sbce_demo.py', 'test_pipeline'))
    sample = ds[0]
    gt = sample['data_samples'].gt_sem_seg.data
    mask = np.array(Image.open(ds.get_data_info(0)['seg_map_path']))
    np.testing.assert_array_equal(gt[0].numpy(), mask)
    infer = config_pipeline('demo/sbce_demo.py', 'infer_dataset.pipeline')
    infer.insert(1, dict(type='Resize', scale=(32, 32), keep_ratio=True))
    assert Compose(infer)(
        ds.get_data_info(0))['inputs'].shape[1:] == (32, 32)


def test_photometric_policies_are_a_named_mmpretrain_preset():
    aug = TRANSFORMS.build(dict(type='RandAugment', _scope_='mmpretrain', num_policies=2,
                                policies='photometric', magnitude_level=9))
    names = sorted(type(t).__name__ for t in aug.transforms)
    assert names == sorted(p['type'] for p in PHOTOMETRIC_RANDAUG_POLICIES)


@pytest.mark.parametrize('color_type', ['color', 'unchanged', 'grayscale'])
@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_checked_loader_gives_three_channels(tmp_path, color_type, backend):
    """Grayscale, palette and RGBA files all load as [H, W, 3] BGR, whatever the decoder."""
    from mmseg_sbce.datasets.transforms import LoadCheckedImageFromFile

    gray = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    palette = Image.fromarray((gray % 3).astype(np.uint8), mode='P')
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    palette.putpalette([v for rgb in colours for v in rgb] + [0] * (768 - 9))
    Image.fromarray(gray, mode='L').save(tmp_path / 'gray.png')
    palette.save(tmp_path / 'palette.png')
    loader = LoadCheckedImageFromFile(color_type=color_type, imdecode_backend=backend)

    out = loader(dict(img_path=str(tmp_path / 'gray.png')))['img']
    assert out.shape == (12, 10, 3)
    if color_type != 'grayscale' or backend == 'cv2':
        # every channel carries the gray level (no channel left empty or all zero)
        np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))

    out = loader(dict(img_path=str(tmp_path / 'palette.png')))['img']
    assert out.shape == (12, 10, 3)
    if color_type != 'grayscale':
        # the palette's colours, in BGR; never the palette indices
        bgr = np.array([c[::-1] for c in colours], np.uint8)[gray % 3]
        np.testing.assert_array_equal(out, bgr)
