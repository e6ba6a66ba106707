# Copyright (c) mmseg-sbce contributors.
"""PhaseSwitchHook on a real mmengine Runner: sub-phases per iteration, trained parameters,
the max_iters check (schedule in sbce_run.py)."""
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope

from mmseg_sbce.engine import PhaseSchedule
from sbce_run import SCHEDULE, make_cfg, run  # noqa: E402  (this folder is on sys.path)


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


def test_max_iters_must_match_the_schedule(data_root, tmp_path):
    init_default_scope('mmseg')
    cfg = make_cfg(data_root, str(tmp_path))
    cfg['train_cfg']['max_iters'] = 21
    with pytest.raises(ValueError, match='must equal bce_iters'):
        run(cfg)




def test_disagreeing_schedule_copies_are_named(data_root, tmp_path):
    """An override of one copy of the schedule (as --cfg-options makes) stops the run before
    anything trains, naming each component and key that disagrees."""
    init_default_scope('mmseg')
    cfg = make_cfg(data_root, str(tmp_path))
    cfg['custom_hooks'][1]['schedule'] = dict(SCHEDULE, theta=2)
    cfg['param_scheduler'] = [dict(type='PhaseSchedulePolyLR',
                                   schedule=dict(SCHEDULE, phase_iters=4))]
    with pytest.raises(ValueError) as err:
        run(cfg)
    msg = str(err.value)
    assert 'QUpdateHook has theta=2, PhaseSwitchHook has theta=3' in msg
    assert 'PhaseSchedulePolyLR has phase_iters=4, PhaseSwitchHook has phase_iters=8' in msg


def test_derive_phase_settings_follows_an_overridden_schedule(data_root, tmp_path):
    """What tools/train.py does after --cfg-options phase_schedule.*: every copy follows."""
    from mmengine.config import Config
    from mmseg_sbce.engine import derive_phase_settings
    cfg = make_cfg(data_root, str(tmp_path))
    cfg['param_scheduler'] = [dict(type='PhaseSchedulePolyLR', schedule=dict(SCHEDULE))]
    cfg['phase_schedule'] = dict(SCHEDULE)
    cfg = Config(cfg)
    cfg.merge_from_dict({'phase_schedule.phase_iters': 4, 'phase_schedule.bce_iters': 2})
    derive_phase_settings(cfg)
    layout = dict(SCHEDULE, phase_iters=4, bce_iters=2)
    assert cfg.custom_hooks[0].schedule == layout and cfg.custom_hooks[1].schedule == layout
    assert cfg.param_scheduler[0].schedule == layout
    assert cfg.train_cfg.max_iters == 10 and cfg.train_cfg.val_interval == 4
    assert cfg.default_hooks.checkpoint.interval == 4


def test_checkpoints_record_the_trained_modes(full_run):
    """meta['sbce']['trained_modes'] lists the modes of the iterations run so far."""
    import os.path as osp

    import torch
    cfg, _, _ = full_run
    schedule = PhaseSchedule(**SCHEDULE)
    for it in (1, 5, 8, 20):
        ckpt = torch.load(osp.join(cfg['work_dir'], f'iter_{it}.pth'), map_location='cpu',
                          weights_only=False)
        seen = {schedule.mode(i) for i in range(it)}
        expected = [m for m in ('bce', 'sbce-classifier', 'sbce-threshold') if m in seen]
        assert ckpt['meta']['sbce'] == dict(trained_modes=expected), it


@pytest.mark.parametrize('it, resume, from_config', [
    (4, False, True),    # the BCE phase only: its scale was never trained
    (5, False, False),   # one Spatial-BCE iteration trained the scale: kept
    (4, True, False),    # a resume restores the checkpoint as it was
])
def test_the_logit_scale_a_baseline_checkpoint_starts_from(full_run, data_root, tmp_path,
                                                            it, resume, from_config):
    """``load_from`` a checkpoint that never trained a Spatial-BCE mode starts the scale at
    this config's ``logit_scale_init`` (the baseline's checkpoint holds only its own
    config's initial value); a trained scale and every resume keep the checkpoint's."""
    import math
    import os.path as osp
    import shutil

    import torch
    from mmengine.runner import Runner
    cfg, _, _ = full_run
    path = osp.join(cfg['work_dir'], f'iter_{it}.pth')
    saved = torch.load(path, map_location='cpu', weights_only=False)['state_dict']
    init_default_scope('mmseg')
    new = make_cfg(data_root, str(tmp_path))
    new['model']['decode_head']['logit_scale_init'] = 2.0
    new.update(load_from=path, resume=resume)
    if resume:  # a resume checks the Q store of the run it continues
        shutil.copytree(osp.join(cfg['work_dir'], 'q'), osp.join(str(tmp_path), 'q'),
                        symlinks=True)
    runner = Runner.from_cfg(new)
    runner.load_or_resume()
    got = runner.model.decode_head.T.detach()
    assert not torch.allclose(saved['decode_head.T'], torch.full_like(got, math.log(2.0)))
    expected = torch.full_like(got, math.log(2.0)) if from_config else saved['decode_head.T']
    torch.testing.assert_close(got, expected)
    # every other weight is the checkpoint's
    torch.testing.assert_close(runner.model.decode_head.conv_cls.weight.detach(),
                               saved['decode_head.conv_cls.weight'])


@pytest.fixture(scope='module')
def centred_run(data_root, tmp_path_factory):
    """The full run's schedule with ``centre_start_prob=0.01`` on 8 images, recording the
    head's logit centre before every iteration."""
    import torch
    from mmengine.hooks import Hook

    from mmseg.registry import HOOKS
    from mmseg_sbce.engine.hooks.phase_switch_hook import unwrap
    centres = {}

    @HOOKS.register_module(force=True)
    class _CentreRecordHook(Hook):
        priority = 'LOWEST'

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            head = unwrap(runner.model).decode_head
            centres[runner.iter] = (head.logit_centre.clone(), bool(head.logit_centre_set))

    init_default_scope('mmseg')
    cfg = make_cfg(data_root, str(tmp_path_factory.mktemp('centred')))
    cfg['custom_hooks'][0].update(centre_start_prob=0.01, centre_num_images=8)
    cfg['custom_hooks'].append(dict(type='_CentreRecordHook'))
    _, record = run(cfg)
    return cfg, centres, record


def test_logit_centre_is_set_once_from_the_network_s_own_logits(centred_run):
    """Unset through the BCE iterations, set before the first Spatial-BCE iteration and
    never changed after; its value, computed here again from the checkpoint the run had
    then (iter_4.pth), with the same seeded pipeline draws: per class, the median over the
    positive maps of the first 8 training images of each map's median logit (valid
    pixels, eval mode), plus logit(0.99) / s."""
    import math
    import random

    from mmengine.dataset import pseudo_collate
    import torch
    from mmengine.runner import Runner
    cfg, centres, _ = centred_run
    for it in range(4):
        assert not centres[it][1] and centres[it][0].abs().sum() == 0
    assert all(centres[it][1] for it in range(4, 20))
    for it in range(5, 20):
        torch.testing.assert_close(centres[it][0], centres[4][0])

    new = dict(cfg, load_from=osp.join(cfg['work_dir'], 'iter_4.pth'), resume=False)
    new['work_dir'] = cfg['work_dir'] + '_check'
    runner = Runner.from_cfg(new)
    runner.load_or_resume()
    model = runner.model.eval()
    head = model.decode_head
    dataset = runner.train_dataloader.dataset
    per_class = [[] for _ in range(head.num_classes)]
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    items = [dataset[i] for i in range(8)]
    with torch.no_grad():
        for start in (0, 4):  # the train loader's batch size
            data = model.data_preprocessor(pseudo_collate(items[start:start + 4]), True)
            logits, _ = model.extract_maps(data['inputs'])
            valid = head.get_valid_pixels(data['data_samples'], logits.shape[2:], 'cpu')
            for b, sample in enumerate(data['data_samples']):
                for c in np.flatnonzero(np.asarray(sample.gt_labels) > 0.5):
                    values = logits[b, c].numpy()
                    if valid is not None:
                        values = values[valid[b].numpy()]
                    per_class[c].append(np.percentile(values, 50, method='lower'))
    assert all(per_class), 'every class has a positive map in these 8 images'
    scale = head.logit_scale.detach()
    expected = torch.tensor([np.median(v) for v in per_class], dtype=torch.float32)
    expected = expected + math.log(99) / scale
    torch.testing.assert_close(centres[4][0], expected, rtol=1e-4, atol=1e-4)


def test_a_resume_keeps_the_logit_centre(centred_run, monkeypatch):
    """A run resumed after the centre was set restores it from the checkpoint, does not
    set it again, and continues as the uninterrupted run did."""
    import copy

    import torch

    from mmseg_sbce.engine import PhaseSwitchHook
    cfg, centres, record = centred_run

    def fail(*args, **kwargs):
        raise AssertionError('the centre was set again')

    monkeypatch.setattr(PhaseSwitchHook, '_set_logit_centre', fail)
    # a fresh Runner in the same work_dir: the Q store on disk is the one the run left
    cfg2 = dict(cfg, custom_hooks=copy.deepcopy(cfg['custom_hooks']))
    runner, rec2 = run(cfg2, resume_from=osp.join(cfg['work_dir'], 'iter_6.pth'))
    torch.testing.assert_close(runner.model.decode_head.logit_centre, centres[4][0])
    assert min(rec2['modes']) == 6
    for it in range(6, 20):
        assert rec2['losses'][it] == pytest.approx(record['losses'][it], rel=1e-4, abs=1e-6)


def test_centre_start_prob_out_of_range_is_refused():
    from mmseg_sbce.engine import PhaseSwitchHook
    with pytest.raises(ValueError, match='centre_start_prob must be in'):
        PhaseSwitchHook(SCHEDULE, centre_start_prob=1.0)
