# Copyright (c) mmseg-sbce contributors.
"""Every SBCE config takes its phase boundaries from its one `phase_schedule`, and the
learning rates it gives are those of the PhasePolyLR lists the configs used to write out."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmseg_sbce  # noqa: F401
from mmseg.registry import PARAM_SCHEDULERS
from mmseg_sbce.engine import PhasePolyLR, PhaseSchedule
from mmseg_sbce.utils import load_runner_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SBCE_CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p and 'phase_schedule' in Config.fromfile(p))
DEMO = osp.join(REPO, 'configs', 'demo', 'sbce_demo.py')
VOC = osp.join(REPO, 'configs', 'sbce_voc.py')


def _check_derived(cfg):
    layout = cfg.phase_schedule.to_dict()
    schedule = PhaseSchedule(**layout)
    hooks = {h.type: h for h in cfg.custom_hooks}
    assert hooks['PhaseSwitchHook'].schedule == layout
    assert hooks['QUpdateHook'].schedule == layout
    assert [s.schedule for s in cfg.param_scheduler] == [layout]
    assert cfg.train_cfg.max_iters == schedule.total_iters
    assert cfg.train_cfg.val_interval == schedule.phase_iters
    assert cfg.default_hooks.checkpoint.interval == schedule.phase_iters


def test_the_shipped_sbce_configs_and_their_aliases_are_found():
    names = {osp.relpath(p, REPO) for p in SBCE_CONFIGS}
    assert {'configs/sbce_voc.py', 'configs/sbce_coco.py', 'configs/sbce_voc_from_baseline.py',
            'configs/demo/sbce_demo.py'} <= names
    # five recipes under configs/sbce/ (COCO: ResNet-38d and the VGG16 variant) and four
    # short names
    assert len(names) == 9


@pytest.mark.parametrize('path', SBCE_CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_everything_follows_phase_schedule(path):
    _check_derived(Config.fromfile(path))


def test_cfg_options_on_phase_schedule_rederive_every_copy():
    cfg = load_runner_config(DEMO, {'phase_schedule.gamma': 2, 'phase_schedule.theta': 1,
                                    'phase_schedule.phase_iters': 4})
    _check_derived(cfg)
    assert cfg.train_cfg.max_iters == 12 and cfg.custom_hooks[0].schedule.gamma == 2
    # an explicit override of a derived key is applied after, and wins
    cfg = load_runner_config(DEMO, {'phase_schedule.phase_iters': 40,
                                    'train_cfg.val_interval': 120})
    assert cfg.train_cfg.max_iters == 120 and cfg.train_cfg.val_interval == 120
    # options that leave the schedule alone change nothing else
    cfg = load_runner_config(DEMO, {'train_cfg.max_iters': 7})
    assert cfg.train_cfg.max_iters == 7 and cfg.custom_hooks[0].schedule.phase_iters == 200


def _lrs(build, iters):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
    opt = torch.optim.AdamW([dict(params=[p], lr=lr) for p, lr in zip(
        params, (2e-3, 2e-2, 2e-4))])
    scheds = build(opt)
    lrs = []
    for _ in range(iters):
        lrs.append([g['lr'] for g in opt.param_groups])
        opt.step()
        for s in scheds:
            s.step()
    return lrs


def _former_demo(opt):
    """The demo config's param_scheduler before PhaseSchedulePolyLR, written out."""
    bce_iters, phase_iters, num_phases = 0, 200, 3
    phase_start_factors = [0.05] + [0.025] * (num_phases - 1)
    return [PhasePolyLR(opt, start_factor=phase_start_factors[k], end_factor=0.0, power=0.9,
                        begin=bce_iters + k * phase_iters,
                        end=bce_iters + (k + 1) * phase_iters) for k in range(num_phases)]


def _former_voc(opt):
    """The VOC config's param_scheduler before PhaseSchedulePolyLR, written out."""
    bce_iters, phase_iters, num_phases = 8000, 8000, 3
    return [PhasePolyLR(opt, start_factor=1.0, end_factor=0.1, power=0.9, begin=0,
                        end=bce_iters)] + [
        PhasePolyLR(opt, start_factor=0.1, end_factor=0.0, power=0.9,
                    begin=bce_iters + k * phase_iters, end=bce_iters + (k + 1) * phase_iters)
        for k in range(num_phases)]


@pytest.mark.parametrize('path, former', [(DEMO, _former_demo), (VOC, _former_voc)],
                         ids=['demo', 'voc'])
def test_config_lr_is_bit_identical_to_the_former_phase_poly_lr_list(path, former):
    init_default_scope('mmseg')
    cfg = Config.fromfile(path)

    def build(opt):
        return [PARAM_SCHEDULERS.build(s.to_dict(), default_args=dict(optimizer=opt))
                for s in cfg.param_scheduler]

    iters = cfg.train_cfg.max_iters + 2
    assert _lrs(build, iters) == _lrs(former, iters)
