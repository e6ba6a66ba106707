# Copyright (c) mmseg-sbce contributors.
"""QUpdateHook (with PhaseSwitchHook) on a real mmengine Runner: Q per phase, resume, refusals,
two processes (schedule in sbce_run.py)."""
import copy
import os
import os.path as osp
import shutil
import sys

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from PIL import Image

from mmseg_sbce.apis import generate_pseudo_labels
from mmseg_sbce.engine.hooks.phase_switch_hook import unwrap
from process_group import run_group
from sbce_run import (NUM_CLASSES, PSEUDO_CFG, REPO, SCHEDULE, copy_run_until,  # noqa: E402
                      make_cfg, read_store, run)


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


@pytest.mark.parametrize('centre', [None, 0.01])
def test_two_process_gloo_q_equals_one_process(data_root, tmp_path, centre):
    """tools/dist_train.sh with 2 CPU processes (gloo) gives the same Q as 1 process.

    The learning rate is 0 and BN statistics are frozen, so both runs hold the same (seeded)
    weights when Q is computed, although their ranks saw different batches. With the logit
    centre (PhaseSwitchHook ``centre_start_prob``), set on rank 0 and broadcast, the second
    phase's Q, labelled by both ranks with ``t' = sigmoid(c + logit(t) / s)``, is the same
    too, and so is the centre.
    """
    import torch
    cfg_file = tmp_path / 'tiny.py'
    schedule = dict(gamma=2, theta=1, bce_iters=2, phase_iters=2,
                    num_phases=1 if centre is None else 2)
    qcfg, centres = {}, {}
    for world in (1, 2):
        cfg = make_cfg(data_root, str(tmp_path / f'w{world}'), lr=0.0, schedule=schedule)
        cfg['optim_wrapper']['type'] = 'OptimWrapper'
        cfg['model']['backbone']['norm_eval'] = True
        cfg['custom_hooks'] = cfg['custom_hooks'][:2]
        cfg['custom_hooks'][0]['centre_start_prob'] = centre
        if centre is not None:
            # a small scale puts the centre far from 0 (m + 4.6 / s); without DDP's buffer
            # broadcast only the hook's own broadcast gives rank 1 the centre
            cfg['model']['decode_head']['logit_scale_init'] = 0.1
            cfg['model_wrapper_cfg'] = dict(type='MMDistributedDataParallel',
                                            broadcast_buffers=False)
        cfg['train_dataloader']['batch_size'] = 2
        cfg['custom_imports'] = dict(imports=['mmseg_sbce'], allow_failed_imports=False)
        cfg_file.write_text('\n'.join(f'{k} = {v!r}' for k, v in cfg.items()))
        env = dict(os.environ, PORT=str(29630 + world), PYTHON=sys.executable,
                   CUDA_VISIBLE_DEVICES='')
        res = run_group(
            ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), str(cfg_file), str(world)],
            env=env, timeout=600, cwd=REPO)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
        phase = 'phase_1' if centre is None else 'phase_2'
        qcfg[world] = read_store(osp.join(cfg['work_dir'], 'q', phase))
        last = osp.join(cfg['work_dir'], f'iter_{schedule["bce_iters"] + 2 * 2}.pth')
        if centre is not None:
            state = torch.load(last, map_location='cpu', weights_only=False)['state_dict']
            assert bool(state['decode_head.logit_centre_set'])
            centres[world] = state['decode_head.logit_centre']
    if centre is not None:
        assert centres[1].abs().sum() > 0
        torch.testing.assert_close(centres[1], centres[2])
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


def test_resume_after_an_interrupted_q_update_recomputes_it(full_run, tmp_path):
    """Crash while Q for phase 2 was being written: the resumed run trains iteration 11 on
    phase 1's Q, never reads the half-written store, recomputes it whole, then continues as
    the uninterrupted run did."""
    cfg, _, record = full_run
    work = str(tmp_path / 'wd')
    half = copy_run_until(cfg, 11, work)
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
    half = copy_run_until(cfg, 11, work)
    shutil.copy(osp.join(cfg['work_dir'], 'iter_12.pth'), work)
    cfg2 = make_cfg(cfg['train_dataloader']['dataset']['data_root'], work)
    with pytest.raises(FileNotFoundError, match=f'Q store {half} has no manifest.json'):
        run(cfg2, resume_from=osp.join(work, 'iter_12.pth'))


def test_q_store_belongs_to_one_run(data_root, tmp_path):
    """Two runs in two work dirs keep two Q stores; resuming run 1 after run 2 trains on run
    1's Q; a run pointed at another run's store is refused (issue 17)."""
    schedule = dict(gamma=2, theta=1, bce_iters=2, phase_iters=2, num_phases=1)
    work1, work2, work3 = (str(tmp_path / name) for name in ('run1', 'run2', 'run3'))
    cfg1 = make_cfg(data_root, work1, schedule=schedule)
    run(cfg1)
    q1 = read_store(osp.join(work1, 'q', 'phase_1'))
    # run 2 of the same config, another work dir, another seed: its own store
    cfg2 = make_cfg(data_root, work2, schedule=schedule, lr=0.05)
    cfg2['randomness'] = dict(seed=1, deterministic=False)
    run(cfg2)
    q2 = read_store(osp.join(work2, 'q', 'phase_1'))
    assert any(not np.array_equal(q1[k], q2[k]) for k in q1)  # two different runs
    for k, q in read_store(osp.join(work1, 'q', 'phase_1')).items():
        np.testing.assert_array_equal(q, q1[k], err_msg=k)

    # resuming run 1 (after its Q update) installs run 1's Q again
    run(cfg1, resume_from=osp.join(work1, 'iter_3.pth'))
    current = osp.realpath(osp.join(work1, 'q', 'current'))
    assert current == osp.realpath(osp.join(work1, 'q', 'phase_1'))
    for k, q in read_store(current).items():
        np.testing.assert_array_equal(q, q1[k], err_msg=k)

    # a third run told to use run 1's store is refused before it writes anything
    cfg3 = make_cfg(data_root, work3, schedule=schedule)
    foreign = osp.join(work1, 'q')
    cfg3['train_dataloader']['dataset']['pipeline'][1]['q_dir'] = foreign
    cfg3['custom_hooks'][1]['q_dir'] = foreign
    with pytest.raises(ValueError, match='belongs to the run in .*run1'):
        run(cfg3)
    assert not osp.exists(osp.join(work3, 'iter_1.pth'))


def test_q_count_threshold_targets_on_a_real_run(data_root, tmp_path):
    """SBCEHead(threshold_loss='q_count') end to end: QUpdateHook(save_maps=True) keeps the
    maps of every Q, LoadQMap(with_thresholds=True) turns them into the split at Q's
    count, and only the threshold sub-phases train the branch on them."""
    from mmseg.registry import DATASETS
    from mmseg_sbce.apis.label_io import load_maps_npz
    from mmseg_sbce.models.losses import count_split
    init_default_scope('mmseg')
    cfg = make_cfg(data_root, str(tmp_path / 'work'))
    cfg['model']['decode_head']['threshold_loss'] = 'q_count'
    cfg['train_dataloader']['dataset']['pipeline'][1]['with_thresholds'] = True
    cfg['custom_hooks'][1]['save_maps'] = True
    _, record = run(cfg)
    q_dir = osp.join(cfg['work_dir'], 'q')
    for phase in (1, 2):
        store = osp.join(q_dir, f'phase_{phase}')
        assert sorted(os.listdir(osp.join(store, 'probs'))) == sorted(
            osp.splitext(k)[0] + '.npz' for k in read_store(store))
    # each phase's targets: the split of each saved map at that phase's Q count (phase 1's
    # Q, from the baseline's CAMs, has foreground; this tiny net's phase-2 Q may have none)
    targets = {}
    for phase in (1, 2):
        store = osp.join(q_dir, f'phase_{phase}')
        ds = DATASETS.build(dict(cfg['train_dataloader']['dataset'], pipeline=[
            dict(type='LoadCheckedImageFromFile'),
            dict(type='LoadQMap', q_dir=q_dir, current=f'phase_{phase}',
                 with_thresholds=True)]))
        q_maps, targets[phase] = read_store(store), 0
        for i in range(len(ds)):
            res = ds[i]
            logits, classes, _ = load_maps_npz(
                osp.join(store, 'probs', res['img_id'] + '.npz'))
            q = q_maps[res['img_id'] + '.png']
            thr, split = count_split(logits, [(q == c + 1).mean() for c in classes])
            expected = np.full(NUM_CLASSES, np.nan, np.float32)
            expected[classes[split]] = thr[split]
            np.testing.assert_array_equal(res['q_thr_logits'], expected)
            targets[phase] += int(split.sum())
    assert targets[1] > 0
    # the branch trains in the threshold sub-phases (iterations 7, 11 | 15, 19) on the maps
    # that have a target, and on nothing else
    thr_iters = [it for it, mode in record['modes'].items() if mode == 'sbce-threshold']
    assert thr_iters == [7, 11, 15, 19]
    for it in thr_iters:
        phase = 1 if it < 12 else 2
        assert record['grads'][it]['decode_head.conv_thr.weight'] == (targets[phase] > 0), it
    assert not any(record['grads'][it]['decode_head.conv_thr.weight']
                   for it in record['modes'] if it not in thr_iters)
