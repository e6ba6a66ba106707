# Copyright (c) mmseg-sbce contributors.
"""The MS-COCO 2014 configs: they load, build, read the converter's layout, and sbce_coco.py
trains for a few iterations on a real Runner (tiny VGG16 width, generated 80-class data)."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from PIL import Image

import mmseg_sbce  # noqa: F401  (registers the plugin)
from mmseg.registry import DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS
from mmseg_sbce.datasets.coco_cls import COCOClsDataset
from mmseg_sbce.engine import derive_phase_settings

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# The VGG16 classifier variants (the shipped short names use ResNet-38d, the paper's)
CLS_CONFIGS = ['configs/sbce/bce_vgg16_4xb6-62k_coco2014-368x368.py',
               'configs/sbce/sbce_vgg16_4xb6-248k_coco2014-368x368.py']
RESNET38D_CONFIGS = ['configs/bce_baseline_coco.py', 'configs/sbce_coco.py']
VGG_DEEPLAB = 'configs/deeplab/deeplab-largefov_vgg16-os8_4xb4-160k_coco2014-pseudo-512x512.py'
DEEPLAB = 'configs/deeplab/deeplabv3plus_r101-d8_4xb4-160k_coco2014-pseudo-512x512.py'
NUM_TRAIN, NUM_VAL, SIZE = 4, 2, 64
# Class ids of the generated objects: both ends of 1..80 and some in between.
OBJECT_IDS = ((1, 80), (45, ), (80, 17, 3), (2, ))


def load(path: str) -> Config:
    return Config.fromfile(osp.join(ROOT, path))


def _draw(rng, ids):
    img = rng.integers(60, 120, (SIZE, SIZE, 3), dtype=np.uint8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    for k, cid in enumerate(ids):
        y0, x0 = rng.integers(0, SIZE // 2, 2)
        y1, x1 = y0 + rng.integers(16, SIZE // 2), x0 + rng.integers(16, SIZE // 2)
        mask[y0:y1, x0:x1] = cid
        img[y0:y1, x0:x1] = (40 * k + 100, 255 - 3 * cid, 3 * cid)
    mask[0, :] = 255  # an ignore row, as crowd regions become in the converter
    return img, mask


def make_coco_root(root: str, pseudo: bool = False) -> dict:
    """The converter's layout (docs/data.md) with a few 64 x 64 images per split; with
    ``pseudo`` also ``SegmentationClassSBCE/train2014`` (mode-P PNGs, as gen_pseudo writes)."""
    rng = np.random.default_rng(0)
    ids = {}
    for split, num in (('train', NUM_TRAIN), ('val', NUM_VAL)):
        os.makedirs(osp.join(root, f'{split}2014'), exist_ok=True)
        os.makedirs(osp.join(root, 'SegmentationClass', f'{split}2014'), exist_ok=True)
        os.makedirs(osp.join(root, 'ImageSets'), exist_ok=True)
        labels = {}
        for i in range(num):
            img_id = f'COCO_{split}2014_{i:012d}'
            img, mask = _draw(rng, OBJECT_IDS[i % len(OBJECT_IDS)])
            Image.fromarray(img).save(osp.join(root, f'{split}2014', f'{img_id}.jpg'))
            Image.fromarray(mask, mode='L').save(
                osp.join(root, 'SegmentationClass', f'{split}2014', f'{img_id}.png'))
            if pseudo and split == 'train':
                os.makedirs(osp.join(root, 'SegmentationClassSBCE', 'train2014'), exist_ok=True)
                p = Image.fromarray(mask, mode='P')
                p.putpalette([v % 256 for v in range(768)])
                p.save(osp.join(root, 'SegmentationClassSBCE', 'train2014', f'{img_id}.png'))
            labels[img_id] = sorted(int(v) for v in np.unique(mask) if 0 < v < 255)
        with open(osp.join(root, 'ImageSets', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(labels) + '\n')
        with open(osp.join(root, f'cls_labels_{split}.json'), 'w') as f:
            json.dump(labels, f)
        ids[split] = labels
    return ids


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco'))
    return root, make_coco_root(root, pseudo=True)


def _with_root(dataset_cfg, root):
    cfg = dataset_cfg.copy()
    cfg.data_root = root
    return cfg


# ----------------------------------------------------------------- classification configs
@pytest.mark.parametrize('path', CLS_CONFIGS)
def test_cls_config_builds_model_and_pipelines(path, coco_root, tmp_path):
    root, ids = coco_root
    cfg = load(path)
    init_default_scope(cfg.default_scope)
    assert cfg.model.backbone.type == 'VGG16OS8'
    assert cfg.model.backbone.init_cfg.checkpoint == 'pretrain/vgg16_os8_imagenet.pth'
    assert cfg.model.decode_head.num_classes == 80 and cfg.crop_size == (368, 368)
    # batch 24 and lr as on VOC
    assert cfg.train_dataloader.batch_size * 4 == 24
    assert cfg.optim_wrapper.optimizer.lr == 0.01

    cfg.model.backbone.init_cfg = None  # no weights here
    model = MODELS.build(cfg.model)
    assert model.backbone.out_channels[-1] == model.decode_head.in_channels == 1024
    assert model.num_classes == 80

    # Training data (random-resize + crop 368 + RandAugment), with the Q store empty.
    train_cfg = _with_root(cfg.train_dataloader.dataset, root)
    for step in train_cfg.pipeline:
        if step.type == 'LoadQMap':
            step.q_dir = str(tmp_path / 'q')  # no `current` yet: an all-255 map
    train = DATASETS.build(train_cfg)
    assert len(train) == NUM_TRAIN
    sample = train[0]
    assert sample['inputs'].shape[0] == 3 and max(sample['inputs'].shape[1:]) <= 368
    labels = sample['data_samples'].gt_labels
    assert labels.shape == (80, ) and labels.sum() >= 1

    # Validation on the real val2014 masks, and the inference set of the Q update.
    val = DATASETS.build(_with_root(cfg.val_dataloader.dataset, root))
    assert len(val) == NUM_VAL and len(val.metainfo['classes']) == 81
    vs = val[0]['data_samples']
    gt = vs.gt_sem_seg.data
    assert gt.shape[-2:] == (SIZE, SIZE)
    assert set(gt.unique().tolist()) - {255} == {0} | set(ids['val'][vs.img_id])
    assert METRICS.get(cfg.val_evaluator.type) is not None
    infer = DATASETS.build(_with_root(cfg.infer_dataset, root))
    assert len(infer) == NUM_TRAIN
    data = infer[1]
    assert tuple(data['inputs'].shape[1:]) == (SIZE, SIZE)  # labelled at full size
    if 'pseudo_dataloader' in cfg:
        assert cfg.pseudo_dataloader.dataset == cfg.infer_dataset


@pytest.mark.parametrize('path', RESNET38D_CONFIGS)
def test_coco_classifier_is_resnet38d(path, coco_root, tmp_path):
    """Paper sec. 4.2: ResNet-38d classifies in every experiment; only the backbone differs
    from the VGG16 variant."""
    root, _ = coco_root
    cfg, vgg = load(path), load(CLS_CONFIGS[RESNET38D_CONFIGS.index(path)])
    init_default_scope(cfg.default_scope)
    assert cfg.model.backbone.type == 'ResNet38d'
    assert cfg.model.backbone.init_cfg.checkpoint == 'pretrain/resnet38d_ilsvrc.pth'
    assert cfg.model.decode_head.in_channels == 4096
    assert cfg.model.decode_head.num_classes == 80
    for key in ('train_dataloader', 'optim_wrapper', 'param_scheduler', 'train_cfg',
                'crop_size'):
        assert cfg[key] == vgg[key], key
    cfg.model.backbone.update(init_cfg=None, widen_factor=1 / 32)
    cfg.model.decode_head.in_channels = 128
    model = MODELS.build(cfg.model)
    assert model.num_classes == 80
    infer = DATASETS.build(_with_root(cfg.infer_dataset, root))
    assert len(infer) == NUM_TRAIN


def test_deeplab_vgg16_coco_config(coco_root):
    """The paper's COCO segmentation network: DeepLab-LargeFOV, VGG16 backbone."""
    root, ids = coco_root
    cfg, r101 = load(VGG_DEEPLAB), load(DEEPLAB)
    init_default_scope(cfg.default_scope)
    assert cfg.model.backbone.type == 'VGG16OS8'
    assert cfg.model.backbone.init_cfg.checkpoint == 'pretrain/vgg16_os8_imagenet.pth'
    assert cfg.model.decode_head.num_classes == 81 and 'auxiliary_head' not in cfg.model
    for key in ('train_dataloader', 'val_dataloader', 'train_cfg'):
        assert cfg[key] == r101[key], key
    cfg.model.backbone.update(init_cfg=None, base_channels=4, fc_channels=16)
    cfg.model.decode_head.update(in_channels=16, channels=16)
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64), mode='tensor')
    assert out.shape == (1, 81, 8, 8)  # output stride 8
    train = DATASETS.build(_with_root(cfg.train_dataloader.dataset, root))
    assert 'SegmentationClassSBCE' in train.get_data_info(0)['seg_map_path']
    assert len(train) == NUM_TRAIN


def test_sbce_coco_schedule_is_voc_scaled_to_coco():
    coco, voc = load('configs/sbce_coco.py'), load('configs/sbce_voc.py')
    switch_hook, q_hook = coco.custom_hooks
    switch = coco.phase_schedule
    assert switch_hook.schedule == q_hook.schedule == switch
    assert (switch.gamma, switch.theta, switch.num_phases) == (100, 80, 3)
    assert switch.phase_iters % switch.gamma == 0
    assert coco.train_cfg.max_iters == switch.bce_iters + 3 * switch.phase_iters
    batch = coco.train_dataloader.batch_size * 4
    epochs_coco = switch.phase_iters * batch / 82081
    epochs_voc = voc.phase_schedule.phase_iters * voc.train_dataloader.batch_size * 4 / 10582
    assert epochs_coco == pytest.approx(epochs_voc, rel=0.01)
    # one Q store, read by LoadQMap and written by the hook
    load_q = [s for s in coco.train_dataloader.dataset.pipeline if s.type == 'LoadQMap']
    assert load_q[0].q_dir == q_hook.q_dir == coco.q_dir
    # the LR restarts at every phase boundary of the same schedule, over [0, max_iters)
    assert [s.type for s in coco.param_scheduler] == ['PhaseSchedulePolyLR']
    assert coco.param_scheduler[0].schedule == switch


# ------------------------------------------------------------------------------- DeepLab
def _types(node, out):
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            out.add(node['type'])
        for v in node.values():
            _types(v, out)
    elif isinstance(node, (list, tuple)):
        for v in node:
            _types(v, out)
    return out


def test_deeplab_coco_config_is_plain_mmseg(coco_root):
    root, ids = coco_root
    cfg = load(DEEPLAB)
    init_default_scope(cfg.default_scope)
    assert 'custom_imports' not in cfg
    plugin_types = {
        name
        for registry in (MODELS, DATASETS, TRANSFORMS, HOOKS, METRICS)
        for name, cls in registry.module_dict.items()
        if cls.__module__.startswith('mmseg_sbce')
    }
    assert not _types(cfg.to_dict(), set()) & plugin_types
    assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == 81
    assert tuple(cfg.coco_metainfo['classes']) == COCOClsDataset.METAINFO['classes']
    assert cfg.train_cfg.max_iters == cfg.param_scheduler[0].end == 160000

    cfg.model.pretrained = None
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert model.decode_head.conv_seg.out_channels == 81

    # trains on the exported pseudo-labels, validates on the real masks
    train = DATASETS.build(_with_root(cfg.train_dataloader.dataset, root))
    assert len(train) == NUM_TRAIN
    info = train.get_data_info(0)
    assert 'SegmentationClassSBCE' in info['seg_map_path']
    sample = train[0]['data_samples']
    assert set(sample.gt_sem_seg.data.unique().tolist()) <= set(range(81)) | {255}
    val = DATASETS.build(_with_root(cfg.val_dataloader.dataset, root))
    info = val.get_data_info(1)
    assert info['seg_map_path'].endswith(osp.join('SegmentationClass', 'val2014',
                                                   'COCO_val2014_000000000001.png'))
    gt = val[1]['data_samples'].gt_sem_seg.data
    img_id = 'COCO_val2014_000000000001'
    assert set(gt.unique().tolist()) - {255} == {0} | set(ids['val'][img_id])
    Compose(cfg.test_pipeline)  # builds


# --------------------------------------------------------------- a few iterations on a Runner
class _Record(Hook):
    """Parameters once initialised, then each iteration's mode and losses."""
    priority = 'VERY_LOW'

    def __init__(self):
        self.before, self.iters = None, []

    def before_train(self, runner):
        self.before = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.iters.append((runner.model.train_mode,
                           {k: float(torch.as_tensor(v).detach()) for k, v in outputs.items()}))


@pytest.fixture
def one_thread():
    # Tiny convolutions: with several OpenMP threads on a busy shared machine each step
    # waits on descheduled threads (measured 1-3 s instead of 10-30 ms per iteration).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_sbce_coco_trains_on_a_runner(tmp_path, one_thread):
    from mmengine.runner import Runner
    root = str(tmp_path / 'coco')
    ids = make_coco_root(root)
    work = tmp_path / 'work'
    q_dir = str(work / 'q')
    # Q of phase 1 (as gen_pseudo would export it from the baseline): the masks themselves
    init_q = tmp_path / 'q_init'
    init_q.mkdir()
    for img_id in ids['train']:
        mask = np.array(Image.open(osp.join(root, 'SegmentationClass', 'train2014',
                                            f'{img_id}.png')))
        Image.fromarray(mask, mode='L').save(init_q / f'{img_id}.png')

    cfg = load('configs/sbce/sbce_vgg16_4xb6-248k_coco2014-368x368.py')
    cfg.work_dir = str(work)
    cfg.model.backbone.update(base_channels=4, fc_channels=16, init_cfg=None)
    cfg.model.decode_head.update(in_channels=16, channels=8)
    cfg.model.data_preprocessor.size = (48, 48)
    for step in cfg.train_dataloader.dataset.pipeline:
        if step.type == 'LoadQMap':
            step.q_dir = q_dir
        elif step.type == 'RandomResize':
            step.update(scale=(96, 64), ratio_range=(0.75, 1.25))
        elif step.type == 'RandomCrop':
            step.crop_size = (48, 48)
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.data_root = root
    cfg.val_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.val_dataloader.dataset.data_root = root
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    # 2 phases x 2 iterations, gamma 2 / theta 1: classifier, threshold, Q update, again;
    # hooks, LR restarts, max_iters follow phase_schedule (as tools/train.py re-derives them)
    phase_iters, num_phases = 2, 2
    cfg.phase_schedule.update(gamma=2, theta=1, bce_iters=0, phase_iters=phase_iters,
                              num_phases=num_phases)
    derive_phase_settings(cfg)
    cfg.custom_hooks[1].update(
        q_dir=q_dir, dataset=_with_root(cfg.infer_dataset, root), init_q_dir=str(init_q),
        workers=0)
    max_iters = phase_iters * num_phases
    assert cfg.train_cfg.max_iters == max_iters
    cfg.train_cfg.update(val_interval=max_iters)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = max_iters
    cfg.randomness = dict(seed=0)

    runner = Runner.from_cfg(cfg)
    record = _Record()
    runner.register_hook(record)
    runner.train()

    modes = [mode for mode, _ in record.iters]
    assert modes == ['sbce-classifier', 'sbce-threshold'] * num_phases
    for _, losses in record.iters:
        assert {'loss', 'loss_sbce', 'loss_kl'} <= set(losses)
        assert all(np.isfinite(v) for v in losses.values()), losses

    after = runner.model.state_dict()
    changed = {k for k, v in after.items() if not torch.equal(v, record.before[k])}
    assert 'backbone.stage1.0.conv.weight' not in changed  # frozen_stages=1
    for key in ('backbone.stage3.0.conv.weight', 'backbone.fc7.conv.weight',
                'decode_head.conv_cls.weight', 'decode_head.conv_thr.weight',
                'decode_head.T'):
        assert key in changed, key

    # Q of phase 2 was computed in-run by the hook, with the config's pseudo_cfg
    current = osp.realpath(osp.join(q_dir, 'current'))
    assert current == osp.realpath(osp.join(q_dir, 'phase_2'))
    manifest = json.load(open(osp.join(current, 'manifest.json')))
    assert manifest['counts']['total'] == NUM_TRAIN
    assert manifest['identity']['pseudo_cfg']['flip'] is True
    for img_id, labels in ids['train'].items():
        q = np.array(Image.open(osp.join(current, f'{img_id}.png')))
        assert q.shape == (SIZE, SIZE)
        assert set(np.unique(q).tolist()) <= {0, 255} | set(labels)
