# Copyright (c) mmseg-sbce contributors.
"""``tools/train.py CONFIG --amp`` on CPU: a real Runner with bfloat16 autocast trains the
baseline and both SBCE sub-phases of the demo's classifier (TinyCNN + SBCEHead) for a few
iterations, with finite losses.

The config is the demo classifier's, written here so that only what the test needs is in
it: the ground-truth masks of the generated data set stand in for the Q store (``current``
points at them), and a phase schedule of 2 BCE iterations and one SBCE phase of 4
(gamma 2, theta 1) gives the modes bce, bce, classifier, threshold, classifier, threshold.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np

from mmseg_sbce.datasets.demo_data import generate_demo_dataset

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

CONFIG = """\
custom_imports = dict(imports=['mmseg_sbce'], allow_failed_imports=False)
default_scope = 'mmseg'
data_root = {data_root!r}
q_dir = {q_dir!r}
phase_schedule = dict(gamma=2, theta=1, bce_iters=2, phase_iters=4, num_phases=1)
model = dict(
    type='SBCEClassifier',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, seg_pad_val=255,
                           size=(48, 48)),
    backbone=dict(type='TinyCNN', channels=(32, 32, 64, 96, 96)),
    decode_head=dict(type='SBCEHead', in_channels=96, num_classes=4, logit_scale_init=0.4),
    test_cfg=dict(threshold=0.3, normalize_cam=True))
train_dataloader = dict(
    batch_size=4, num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True, seed=0),
    dataset=dict(type='DemoClsDataset', data_root=data_root, pipeline=[
        dict(type='LoadCheckedImageFromFile'),
        dict(type='LoadQMap', q_dir=q_dir),
        dict(type='RandomCrop', crop_size=(48, 48), cat_max_ratio=1.0),
        dict(type='PackWSSSInputs')]))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=6, val_interval=10**6)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=6))
custom_hooks = [dict(type='PhaseSwitchHook', schedule=phase_schedule)]
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
"""


def test_train_tool_amp_trains_every_mode_with_finite_losses(tmp_path):
    data_root = str(tmp_path / 'data')
    generate_demo_dataset(data_root, num_train=8, num_val=2, img_size=64, num_classes=4,
                          seed=2)
    q_dir = str(tmp_path / 'q')
    os.makedirs(q_dir)
    os.symlink(osp.join(data_root, 'SegmentationClass'), osp.join(q_dir, 'current'))
    config = tmp_path / 'amp_cfg.py'
    config.write_text(CONFIG.format(data_root=data_root, q_dir=q_dir))
    work = str(tmp_path / 'work')
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='')
    res = subprocess.run(
        [sys.executable, 'tools/train.py', str(config), '--amp', '--work-dir', work],
        capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]

    # --amp on CPU selected bfloat16 autocast (the config as the runner saw it)
    with open(osp.join(work, 'amp_cfg.py')) as f:
        dumped = f.read()
    assert "type='AutocastOptimWrapper'" in dumped and "dtype='bfloat16'" in dumped

    files = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    assert len(files) == 1, files
    with open(files[0]) as f:
        rows = [r for r in map(json.loads, filter(str.strip, f)) if 'sub_phase' in r]
    assert [r['sub_phase'] for r in rows] == [0, 0, 1, 2, 1, 2]
    keys = {0: ('loss', 'loss_bce'), 1: ('loss', 'loss_sbce', 'loss_kl', 'mean_thr'),
            2: ('loss', 'loss_sbce', 'loss_kl', 'mean_thr')}
    for row in rows:
        for key in keys[row['sub_phase']] + ('frac_gap', 'mean_scale'):
            assert key in row and np.isfinite(row[key]), (key, row)
