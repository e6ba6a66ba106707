# Copyright (c) mmseg-sbce contributors.
"""PhaseSwitchHook + QUpdateHook on a real mmengine Runner with a tiny SBCE classifier.

One schedule is used throughout: a 4-iteration BCE phase, then 2 SBCE phases of 8 iterations
with gamma=4 / theta=3, i.e. modes per iteration::

    0-3 bce | 4-6 cls, 7 thr, 8-10 cls, 11 thr | Q update | 12-14 cls, 15 thr, 16-18 cls, 19 thr
"""
import copy
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from PIL import Image

import mmseg_sbce  # noqa: F401
from mmseg.registry import HOOKS, OPTIM_WRAPPERS
from mmseg_sbce.apis import generate_pseudo_labels
from mmseg_sbce.datasets.demo_data import generate_demo_dataset
from mmseg_sbce.engine import PhaseSchedule
from mmseg_sbce.engine.hooks.phase_switch_hook import unwrap

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCHEDULE = dict(gamma=4, theta=3, bce_iters=4, phase_iters=8, num_phases=2)
NUM_CLASSES = 3
PSEUDO_CFG = dict(scales=(1.0, ), flip=True, threshold='adaptive')
INIT_PSEUDO_CFG = dict(threshold=0.3, normalize_cam=True)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo'))
    generate_demo_dataset(root, num_train=12, num_val=2, img_size=48,
                          num_classes=NUM_CLASSES, seed=1)
    return root


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
            dict(type='PhaseSwitchHook', **schedule),
            dict(type='QUpdateHook', q_dir=q_dir, dataset=infer_ds, pseudo_cfg=PSEUDO_CFG,
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


@pytest.fixture(scope='module')
def full_run(data_root, tmp_path_factory):
    init_default_scope('mmseg')
    work_dir = str(tmp_path_factory.mktemp('full'))
    cfg = make_cfg(data_root, work_dir)
    runner, record = run(cfg)
    return cfg, runner, record


def test_sub_phases_switch_at_the_right_iterations(full_run):
    _, _, record = full_run
    schedule = PhaseSchedule(**SCHEDULE)
    assert record['modes'] == {i: schedule.mode(i) for i in range(20)}
    assert [record['modes'][i] for i in (3, 4, 6, 7, 8, 11, 12, 15)] == [
        'bce', 'sbce-classifier', 'sbce-classifier', 'sbce-threshold', 'sbce-classifier',
        'sbce-threshold', 'sbce-classifier', 'sbce-threshold']


def test_the_right_parameters_get_gradients_in_each_sub_phase(full_run):
    _, _, record = full_run
    grads, modes = record['grads'], record['modes']

    def any_grad(it, prefix):
        return any(v for k, v in grads[it].items() if k.startswith(prefix))

    for it in range(20):
        mode = modes[it]
        assert any_grad(it, 'backbone.'), (it, mode)
        if mode == 'bce':
            assert any_grad(it, 'decode_head.conv_cls')
            assert not any_grad(it, 'decode_head.conv_thr')
            assert not any_grad(it, 'decode_head.T')
        elif mode == 'sbce-classifier':
            assert any_grad(it, 'decode_head.conv_cls') and any_grad(it, 'decode_head.T')
            assert not any_grad(it, 'decode_head.conv_thr')
        else:  # threshold branch trains; the classifier only through the KL term
            assert any_grad(it, 'decode_head.conv_thr')
    assert all(np.isfinite(v) for v in record['losses'].values())


def test_q_is_updated_before_each_phase_and_equals_a_direct_computation(full_run, tmp_path):
    cfg, runner, _ = full_run
    q_dir = osp.join(cfg['work_dir'], 'q')
    phase1, phase2 = read_store(osp.join(q_dir, 'phase_1')), read_store(
        osp.join(q_dir, 'phase_2'))
    assert len(phase1) == len(phase2) == 12
    assert any((phase1[k] != phase2[k]).any() for k in phase1), 'Q did not change'
    assert os.readlink(osp.join(q_dir, 'current')) == osp.abspath(osp.join(q_dir, 'phase_2'))
    # the checkpoint of iteration 12 holds the weights the phase-2 update used
    from mmengine.runner import load_checkpoint
    model = unwrap(runner.model)
    load_checkpoint(model, osp.join(cfg['work_dir'], 'iter_12.pth'), map_location='cpu')
    from mmseg.registry import DATASETS
    ds = DATASETS.build(cfg['custom_hooks'][1]['dataset'])
    generate_pseudo_labels(model, ds, str(tmp_path), PSEUDO_CFG, workers=1, progress=False)
    direct = read_store(str(tmp_path))
    assert direct.keys() == phase2.keys()
    for k in direct:
        np.testing.assert_array_equal(direct[k], phase2[k], err_msg=k)


@pytest.mark.parametrize('resume_iter', [6, 12])  # mid sub-phase; right after the Q update
def test_resume_continues_identically(full_run, resume_iter):
    cfg, _, record = full_run
    ckpt = osp.join(cfg['work_dir'], f'iter_{resume_iter}.pth')
    cfg2 = dict(cfg, custom_hooks=copy.deepcopy(cfg['custom_hooks']))
    # a fresh Runner in the same work_dir: the Q store on disk is the one the run left
    _, rec2 = run(cfg2, resume_from=ckpt)
    assert min(rec2['modes']) == resume_iter
    for it in range(resume_iter, 20):
        assert rec2['modes'][it] == record['modes'][it]
        assert rec2['losses'][it] == pytest.approx(record['losses'][it], rel=1e-4, abs=1e-6)


def test_resume_from_another_schedule_is_refused(full_run, tmp_path):
    cfg, _, _ = full_run
    other = dict(SCHEDULE, theta=2)
    cfg2 = make_cfg(cfg['train_dataloader']['dataset']['data_root'], str(tmp_path),
                    schedule=other)
    with pytest.raises(ValueError, match='another phase schedule'):
        run(cfg2, resume_from=osp.join(cfg['work_dir'], 'iter_6.pth'))


def test_incomplete_init_q_store_is_refused(data_root, tmp_path):
    init_default_scope('mmseg')
    store = tmp_path / 'init_q'
    store.mkdir()
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(store / 'train_00000.png')
    schedule = dict(SCHEDULE, bce_iters=0)
    cfg = make_cfg(data_root, str(tmp_path / 'wd'), schedule=schedule, init_q_dir=str(store))
    with pytest.raises(ValueError, match='lacks 11 of 12 training images'):
        run(cfg)


def test_max_iters_must_match_the_schedule(data_root, tmp_path):
    init_default_scope('mmseg')
    cfg = make_cfg(data_root, str(tmp_path))
    cfg['train_cfg']['max_iters'] = 21
    with pytest.raises(ValueError, match='must equal bce_iters'):
        run(cfg)


def test_two_process_gloo_q_equals_one_process(data_root, tmp_path):
    """tools/dist_train.sh with 2 CPU processes (gloo) gives the same Q as 1 process.

    The learning rate is 0 and BN statistics are frozen, so both runs hold the same (seeded)
    weights when Q is computed, although their ranks saw different batches.
    """
    cfg_file = tmp_path / 'tiny.py'
    schedule = dict(gamma=2, theta=1, bce_iters=2, phase_iters=2, num_phases=1)
    qcfg = {}
    for world in (1, 2):
        cfg = make_cfg(data_root, str(tmp_path / f'w{world}'), lr=0.0, schedule=schedule)
        cfg['optim_wrapper']['type'] = 'OptimWrapper'
        cfg['model']['backbone']['norm_eval'] = True
        cfg['custom_hooks'] = cfg['custom_hooks'][:2]
        cfg['train_dataloader']['batch_size'] = 2
        cfg['custom_imports'] = dict(imports=['mmseg_sbce'], allow_failed_imports=False)
        cfg_file.write_text('\n'.join(f'{k} = {v!r}' for k, v in cfg.items()))
        env = dict(os.environ, PORT=str(29630 + world), PYTHON=sys.executable,
                   CUDA_VISIBLE_DEVICES='')
        res = subprocess.run(
            ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), str(cfg_file), str(world)],
            capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
        qcfg[world] = read_store(osp.join(cfg['work_dir'], 'q', 'phase_1'))
    assert len(qcfg[1]) == 12 and qcfg[1].keys() == qcfg[2].keys()
    for k in qcfg[1]:
        np.testing.assert_array_equal(qcfg[1][k], qcfg[2][k], err_msg=k)


def test_start_from_a_baseline_checkpoint_and_an_initial_q(full_run, tmp_path):
    """`load_from` a checkpoint without SBCE state + `init_q_dir` (the separate-baseline way)."""
    cfg, _, _ = full_run
    schedule = dict(SCHEDULE, bce_iters=0, num_phases=1)
    init_q = osp.join(cfg['work_dir'], 'q', 'phase_1')
    cfg2 = make_cfg(cfg['train_dataloader']['dataset']['data_root'], str(tmp_path),
                    schedule=schedule, init_q_dir=init_q)
    cfg2['load_from'] = osp.join(cfg['work_dir'], 'iter_4.pth')
    runner, record = run(cfg2)
    assert record['modes'][0] == 'sbce-classifier'
    assert os.readlink(osp.join(str(tmp_path), 'q', 'current')) == osp.abspath(init_q)
    assert all(np.isfinite(v) for v in record['losses'].values())


def _copy_run_until(cfg, it, dst):
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


def test_resume_after_an_interrupted_q_update_recomputes_it(full_run, tmp_path):
    """Crash while Q for phase 2 was being written: the resumed run trains iteration 11 on
    phase 1's Q, never reads the half-written store, recomputes it whole, then continues as
    the uninterrupted run did."""
    cfg, _, record = full_run
    work = str(tmp_path / 'wd')
    half = _copy_run_until(cfg, 11, work)
    cfg2 = make_cfg(cfg['train_dataloader']['dataset']['data_root'], work)
    _, rec2 = run(cfg2, resume_from=osp.join(work, 'iter_11.pth'))
    for it in range(11, 20):
        assert rec2['modes'][it] == record['modes'][it]
        assert rec2['losses'][it] == pytest.approx(record['losses'][it], rel=1e-4, abs=1e-6)
    assert osp.isfile(osp.join(half, 'manifest.json'))
    assert os.readlink(osp.join(work, 'q', 'current')) == osp.abspath(half)
    # the recomputed store is complete and equals a direct computation on the same weights
    from mmengine.runner import load_checkpoint
    from mmseg.registry import DATASETS
    model = unwrap(Runner.from_cfg(copy.deepcopy(cfg2)).model)
    load_checkpoint(model, osp.join(work, 'iter_12.pth'), map_location='cpu')
    direct_dir = str(tmp_path / 'direct')
    generate_pseudo_labels(model, DATASETS.build(cfg2['custom_hooks'][1]['dataset']),
                           direct_dir, PSEUDO_CFG, workers=1, progress=False)
    direct, store = read_store(direct_dir), read_store(half)
    assert len(store) == 12 and direct.keys() == store.keys()
    for k in direct:
        np.testing.assert_array_equal(direct[k], store[k], err_msg=k)


def test_resume_into_a_q_store_without_manifest_is_refused(full_run, tmp_path):
    """A checkpoint saved after the phase-2 update, but its store lost the manifest (never
    completed): the resume stops with an error naming the store, instead of training on it."""
    cfg, _, _ = full_run
    work = str(tmp_path / 'wd')
    half = _copy_run_until(cfg, 11, work)
    shutil.copy(osp.join(cfg['work_dir'], 'iter_12.pth'), work)
    cfg2 = make_cfg(cfg['train_dataloader']['dataset']['data_root'], work)
    with pytest.raises(FileNotFoundError, match=f'Q store {half} has no manifest.json'):
        run(cfg2, resume_from=osp.join(work, 'iter_12.pth'))
