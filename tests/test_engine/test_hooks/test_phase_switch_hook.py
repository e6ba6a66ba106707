# Copyright (c) mmseg-sbce contributors.
"""PhaseSwitchHook on a real mmengine Runner: sub-phases per iteration, trained parameters,
the max_iters check (schedule in sbce_run.py)."""
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
