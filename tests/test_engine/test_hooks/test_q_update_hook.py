# Copyright (c) mmseg-sbce contributors.
"""QUpdateHook (with PhaseSwitchHook) on a real mmengine Runner: Q per phase, resume, refusals,
two processes (schedule in sbce_run.py)."""
import copy
import json
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


@pytest.mark.parametrize('centre, refresh', [(None, 0), (0.01, 0), (None, 1)])
def test_two_process_gloo_q_equals_one_process(data_root, tmp_path, centre, refresh):
    """tools/dist_train.sh with 2 CPU processes (gloo) gives the same Q as 1 process.

    The learning rate is 0 and BN statistics are frozen, so both runs hold the same (seeded)
    weights when Q is computed, although their ranks saw different batches. With the logit
    centre (PhaseSwitchHook ``centre_start_prob``), set on rank 0 and broadcast, the second
    phase's Q, labelled by both ranks with ``t' = sigmoid(c + logit(t) / s)``, is the same
    too, and so is the centre. With ``threshold_loss='q_count'`` and ``refresh_maps=1``
    the maps refreshed in the middle of the phase, each rank labelling its shard, are
    those of one process.
    """
    import torch
    cfg_file = tmp_path / 'tiny.py'
    schedule = dict(gamma=2, theta=1, bce_iters=2, phase_iters=2,
                    num_phases=1 if centre is None else 2)
    qcfg, centres, maps = {}, {}, {}
    for world in (1, 2):
        cfg = make_cfg(data_root, str(tmp_path / f'w{world}'), lr=0.0, schedule=schedule)
        cfg['optim_wrapper']['type'] = 'OptimWrapper'
        cfg['model']['backbone']['norm_eval'] = True
        cfg['custom_hooks'] = cfg['custom_hooks'][:2]
        cfg['custom_hooks'][0]['centre_start_prob'] = centre
        if refresh:
            cfg['model']['decode_head']['threshold_loss'] = 'q_count'
            cfg['train_dataloader']['dataset']['pipeline'][1]['with_thresholds'] = True
            cfg['custom_hooks'][1].update(save_maps=True, refresh_maps=refresh)
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
        if refresh:
            maps[world] = _read_maps(osp.join(cfg['work_dir'], 'q', 'phase_1_maps_1',
                                              'probs'))
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
    if refresh:
        assert len(maps[1]) == 12 and maps[1].keys() == maps[2].keys()
        for k in maps[1]:
            np.testing.assert_array_equal(maps[1][k], maps[2][k], err_msg=k)


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


def _q_count_cfg(data_root, work_dir, refresh_maps=0):
    cfg = make_cfg(data_root, work_dir)
    cfg['model']['decode_head']['threshold_loss'] = 'q_count'
    cfg['train_dataloader']['dataset']['pipeline'][1]['with_thresholds'] = True
    cfg['custom_hooks'][1].update(save_maps=True, refresh_maps=refresh_maps)
    return cfg


def _expected_targets(maps_dir, q_maps, img_id):
    """The split of each saved map of ``img_id`` at the count Q gives its class."""
    from mmseg_sbce.apis.label_io import load_maps_npz
    from mmseg_sbce.models.losses import count_split
    logits, classes, _ = load_maps_npz(osp.join(maps_dir, img_id + '.npz'))
    q = q_maps[img_id + '.png']
    thr, split = count_split(logits, [(q == c + 1).mean() for c in classes])
    expected = np.full(NUM_CLASSES, np.nan, np.float32)
    expected[classes[split]] = thr[split]
    return expected, int(split.sum())


def _targets_read(cfg, q_dir, current, maps):
    from mmseg.registry import DATASETS
    ds = DATASETS.build(dict(cfg['train_dataloader']['dataset'], pipeline=[
        dict(type='LoadCheckedImageFromFile'),
        dict(type='LoadQMap', q_dir=q_dir, current=current, with_thresholds=True,
             maps=maps)]))
    return [ds[i] for i in range(len(ds))]


@pytest.fixture(scope='module')
def q_count_run(data_root, tmp_path_factory):
    init_default_scope('mmseg')
    cfg = _q_count_cfg(data_root, str(tmp_path_factory.mktemp('qcount')), refresh_maps=1)
    _, record = run(cfg)
    return cfg, record


def test_q_count_threshold_targets_on_a_real_run(q_count_run):
    """SBCEHead(threshold_loss='q_count') end to end: QUpdateHook(save_maps=True) keeps the
    maps of every Q and points ``{q_dir}/maps`` at them, ``refresh_maps=1`` replaces them
    half-way through each phase with the on-training network's, LoadQMap(with_thresholds=
    True) turns the maps it points at into the split at Q's count, and the branch trains on
    them in every SBCE iteration."""
    cfg, record = q_count_run
    q_dir = osp.join(cfg['work_dir'], 'q')
    for phase in (1, 2):
        store = osp.join(q_dir, f'phase_{phase}')
        assert sorted(os.listdir(osp.join(store, 'probs'))) == sorted(
            osp.splitext(k)[0] + '.npz' for k in read_store(store))
    # phase 2's refresh is what the targets come from now; phase 1's was deleted
    last = osp.join(q_dir, 'phase_2_maps_1')
    assert os.readlink(osp.join(q_dir, 'maps')) == osp.abspath(osp.join(last, 'probs'))
    assert not osp.exists(osp.join(q_dir, 'phase_1_maps_1'))
    from mmseg_sbce.apis.manifest import check_complete
    assert check_complete(last)['status'] == 'complete'
    # each store's own maps (the `maps` entry bypassed) and the refresh, at that Q's count
    # (phase 1's Q, from the baseline's CAMs, has foreground; this tiny net's phase-2 Q may
    # have none)
    targets = {}
    for phase, maps_dir, maps_entry in ((1, 'phase_1/probs', 'none'),
                                        (2, 'phase_2/probs', 'none'),
                                        ('refresh', 'phase_2_maps_1/probs', 'maps')):
        current = 'phase_2' if phase == 'refresh' else f'phase_{phase}'
        q_maps, targets[phase] = read_store(osp.join(q_dir, current)), 0
        for res in _targets_read(cfg, q_dir, current, maps_entry):
            expected, n = _expected_targets(osp.join(q_dir, maps_dir), q_maps, res['img_id'])
            np.testing.assert_array_equal(res['q_thr_logits'], expected)
            targets[phase] += n
    assert targets[1] > 0
    # the refreshed maps are the network's after iteration 16, the refresh's iteration
    # (before iteration 4 + 8 + 8 // 2), without dCRF: a direct export agrees
    import tempfile
    from mmengine.runner import load_checkpoint
    from mmseg.registry import DATASETS, MODELS
    from mmseg_sbce.apis.label_io import load_maps_npz
    model = MODELS.build(cfg['model'])
    load_checkpoint(model, osp.join(cfg['work_dir'], 'iter_16.pth'), map_location='cpu')
    ds = DATASETS.build(cfg['custom_hooks'][1]['dataset'])
    with tempfile.TemporaryDirectory() as out:
        generate_pseudo_labels(model, ds, out, dict(PSEUDO_CFG, crf=dict(enabled=False)),
                               workers=1, progress=False, save_probs=True)
        names = os.listdir(osp.join(out, 'probs'))
        assert len(names) == 12
        for name in names:
            direct = load_maps_npz(osp.join(out, 'probs', name))
            refreshed = load_maps_npz(osp.join(last, 'probs', name))
            for a, b in zip(direct, refreshed):
                np.testing.assert_array_equal(a, b, err_msg=name)
    # the branch trains in every SBCE iteration of phase 1 (every image has targets there)
    # and never in the BCE phase
    assert all(record['grads'][it]['decode_head.conv_thr.weight'] for it in range(4, 12))
    assert not any(record['grads'][it]['decode_head.conv_thr.weight'] for it in range(4))


def _read_maps(maps_dir):
    from mmseg_sbce.apis.label_io import load_maps_npz
    return {name: load_maps_npz(osp.join(maps_dir, name))[0]
            for name in sorted(os.listdir(maps_dir))}


@pytest.mark.parametrize('resume_iter', [14, 16])  # before phase 2's refresh; right after
def test_q_count_refresh_resumes_identically(q_count_run, resume_iter):
    """Resumed before the refresh, the refresh is made again from the same weights;
    resumed after it, the checkpoint's refresh is used as it is, not redone."""
    cfg, record = q_count_run
    maps_dir = osp.join(cfg['work_dir'], 'q', 'phase_2_maps_1', 'probs')
    before = _read_maps(maps_dir)
    ckpt = osp.join(cfg['work_dir'], f'iter_{resume_iter}.pth')
    _, rec2 = run(copy.deepcopy(cfg), resume_from=ckpt)
    assert min(rec2['modes']) == resume_iter
    for it in range(resume_iter, 20):
        assert rec2['losses'][it] == pytest.approx(record['losses'][it], rel=1e-4, abs=1e-6)
    after = _read_maps(maps_dir)
    assert after.keys() == before.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)


def test_q_count_refresh_of_an_older_checkpoint_is_redone(q_count_run, tmp_path):
    """Resumed where the checkpoint's refresh is gone: a warning, the maps are refreshed
    again from the resumed network, and training goes on."""
    cfg, _ = q_count_run
    work = str(tmp_path / 'copy')
    shutil.copytree(cfg['work_dir'], work, symlinks=True)
    cfg2 = _q_count_cfg(cfg['train_dataloader']['dataset']['data_root'], work,
                        refresh_maps=1)
    q_dir = osp.join(work, 'q')
    with open(osp.join(q_dir, 'run.json'), 'w') as f:  # the copy is this run's store
        json.dump(dict(work_dir=osp.abspath(work)), f)
    for name in ('current', 'maps'):  # the copy's links point into the original
        os.remove(osp.join(q_dir, name))
    shutil.rmtree(osp.join(q_dir, 'phase_2_maps_1'))
    _, rec2 = run(cfg2, resume_from=osp.join(work, 'iter_17.pth'))
    assert min(rec2['modes']) == 17 and all(np.isfinite(v) for v in rec2['losses'].values())
    assert os.readlink(osp.join(q_dir, 'maps')) == osp.abspath(
        osp.join(q_dir, 'phase_2_maps_1', 'probs'))


def test_refresh_maps_arguments_are_checked(tmp_path):
    from mmseg_sbce.engine.hooks import QUpdateHook
    kwargs = dict(q_dir=str(tmp_path), dataset={}, schedule=SCHEDULE)
    with pytest.raises(ValueError, match='needs save_maps=True'):
        QUpdateHook(**kwargs, refresh_maps=1)
    with pytest.raises(ValueError, match='non-negative int'):
        QUpdateHook(**kwargs, save_maps=True, refresh_maps=-1)
    with pytest.raises(ValueError, match='below the phase length 8'):
        QUpdateHook(**kwargs, save_maps=True, refresh_maps=8)
