# Copyright (c) mmseg-sbce contributors.
"""A tiny SBCE classifier trained by a real mmengine Runner, shared by the hook tests.

One schedule is used throughout: a 4-iteration BCE phase, then 2 SBCE phases of 8 iterations
with gamma=4 / theta=3, i.e. modes per iteration::

    0-3 bce | 4-6 cls, 7 thr, 8-10 cls, 11 thr | Q update | 12-14 cls, 15 thr, 16-18 cls, 19 thr
"""
import copy
import os
import os.path as osp
import shutil

import numpy as np
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from PIL import Image

import mmseg_sbce  # noqa: F401
from mmseg.registry import HOOKS, OPTIM_WRAPPERS
from mmseg_sbce.engine.hooks.phase_switch_hook import unwrap

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
SCHEDULE = dict(gamma=4, theta=3, bce_iters=4, phase_iters=8, num_phases=2)
NUM_CLASSES = 3
PSEUDO_CFG = dict(scales=(1.0, ), flip=True, threshold='adaptive')
INIT_PSEUDO_CFG = dict(threshold=0.3, normalize_cam=True)


RECORD = {}


@HOOKS.register_module(force=True)
class _RecordHook(Hook):
    """Records the train mode before and the loss after every iteration (test only)."""
    priority = 'LOWEST'

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        RECORD.setdefault('modes', {})[runner.iter] = unwrap(runner.model).train_mode

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        RECORD.setdefault('losses', {})[runner.iter] = float(outputs['loss'])


@OPTIM_WRAPPERS.register_module(force=True)
class _GradRecordingOptimWrapper(OptimWrapper):
    """Records which parameter groups have a non-zero gradient at each step (test only)."""

    def step(self, **kwargs):
        model_grads = {}
        for group in self.optimizer.param_groups:
            for p in group['params']:
                name = self._names[id(p)]
                model_grads[name] = p.grad is not None and bool(p.grad.abs().sum() > 0)
        RECORD.setdefault('grads', []).append(model_grads)
        super().step(**kwargs)


def make_cfg(data_root, work_dir, *, max_keep=None, lr=0.01, schedule=SCHEDULE,
             init_q_dir=None):
    q_dir = osp.join(work_dir, 'q')
    ds = dict(type='DemoClsDataset', data_root=data_root)
    infer_ds = dict(ds, pipeline=[dict(type='LoadCheckedImageFromFile'),
                                  dict(type='PackWSSSInputs')])
    total = schedule['bce_iters'] + schedule['num_phases'] * schedule['phase_iters']
    return dict(
        default_scope='mmseg',
        work_dir=work_dir,
        model=dict(
            type='SBCEClassifier',
            data_preprocessor=dict(type='SegDataPreProcessor', mean=[128.] * 3,
                                   std=[64.] * 3, bgr_to_rgb=True, seg_pad_val=255,
                                   size=(40, 40)),
            backbone=dict(type='ResNet38d', widen_factor=1 / 32, frozen_stages=-1,
                          norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                          dropouts=(0.0, 0.0)),
            decode_head=dict(type='SBCEHead', in_channels=128, num_classes=NUM_CLASSES,
                             channels=16),
            test_cfg=dict(threshold='adaptive')),
        train_dataloader=dict(
            batch_size=4, num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=True, seed=0),
            dataset=dict(ds, pipeline=[
                dict(type='LoadCheckedImageFromFile'),
                dict(type='LoadQMap', q_dir=q_dir),
                dict(type='RandomResize', scale=(48, 48), ratio_range=(0.8, 1.2),
                     keep_ratio=True),
                dict(type='RandomCrop', crop_size=(40, 40), cat_max_ratio=1.0),
                dict(type='RandomFlip', prob=0.5),
                dict(type='PackWSSSInputs')])),
        optim_wrapper=dict(type='_GradRecordingOptimWrapper',
                           optimizer=dict(type='SGD', lr=lr, momentum=0.9)),
        param_scheduler=[dict(type='PhasePolyLR', start_factor=1.0, end_factor=0.1,
                              begin=0, end=total)],
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=total, val_interval=10**6),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1,
                            max_keep_ckpts=max_keep or total)),
        custom_hooks=[
            dict(type='PhaseSwitchHook', schedule=schedule),
            dict(type='QUpdateHook', q_dir=q_dir, dataset=infer_ds, schedule=schedule,
                 pseudo_cfg=PSEUDO_CFG,
                 init_pseudo_cfg=INIT_PSEUDO_CFG, init_q_dir=init_q_dir, workers=1),
            dict(type='_RecordHook'),
        ],
        randomness=dict(seed=0, deterministic=False),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')),
        log_processor=dict(by_epoch=False),
        log_level='WARNING',
        launcher='none',
    )


def run(cfg, resume_from=None):
    RECORD.clear()
    cfg = copy.deepcopy(cfg)
    if resume_from is not None:
        cfg.update(resume=True, load_from=resume_from)
    runner = Runner.from_cfg(cfg)
    names = {id(p): n for n, p in runner.model.named_parameters()}
    runner.build_optim_wrapper = _with_names(runner.build_optim_wrapper, names)
    runner.train()
    return runner, copy.deepcopy(RECORD)


def _with_names(build, names):
    def wrapped(*args, **kwargs):
        wrapper = build(*args, **kwargs)
        wrapper._names = names
        return wrapper
    return wrapped


def read_store(path):
    return {f: np.array(Image.open(osp.join(path, f)))
            for f in sorted(os.listdir(path)) if f.endswith('.png')}


def copy_run_until(cfg, it, dst):
    """A copy of the full run's state as a crash during the Q update after iteration ``it``
    would have left it: checkpoint ``iter_{it}.pth``, the Q store of the earlier phases, and a
    half-written store of the phase being computed (no manifest, some maps missing, one
    truncated), with ``current`` still on the earlier phase."""
    src_q = osp.join(cfg['work_dir'], 'q')
    os.makedirs(osp.join(dst, 'q'))
    shutil.copy(osp.join(cfg['work_dir'], f'iter_{it}.pth'), dst)
    shutil.copytree(osp.join(src_q, 'phase_1'), osp.join(dst, 'q', 'phase_1'))
    half = osp.join(dst, 'q', 'phase_2')
    shutil.copytree(osp.join(src_q, 'phase_2'), half)
    os.remove(osp.join(half, 'manifest.json'))
    names = sorted(f for f in os.listdir(half) if f.endswith('.png'))
    for name in names[:5]:
        os.remove(osp.join(half, name))
    with open(osp.join(half, names[5]), 'wb') as f:
        f.write(b'\x89PNG\r\n')  # truncated write
    os.symlink(osp.join(dst, 'q', 'phase_1'), osp.join(dst, 'q', 'current'))
    return half

