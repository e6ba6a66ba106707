# Copyright (c) mmseg-sbce contributors.
"""The config handling that ``tools/train.py`` and ``tools/test.py`` share (as mmseg's)."""
import os.path as osp
from typing import Optional

from mmengine.config import Config


def load_runner_config(config: str,
                       cfg_options: Optional[dict] = None,
                       launcher: str = 'none',
                       work_dir: Optional[str] = None) -> Config:
    """Read ``config``, apply ``--cfg-options`` and pick the work_dir.

    work_dir priority, as in mmseg's tools: ``work_dir`` argument > the config's
    ``work_dir`` > ``./work_dirs/{config file name}``.

    Options that change the phase layout (``phase_schedule.KEY=VALUE``) update every value
    derived from it (hooks, ``PhaseSchedulePolyLR``, ``max_iters``, the validation and
    checkpoint intervals; :func:`mmseg_sbce.engine.derive_phase_settings`); the other options
    are applied after that, so an explicit override of a derived key wins (and
    ``PhaseSwitchHook`` reports it if it disagrees with the schedule).
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config not found: {config}')
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
        if any(key.split('.')[0] == 'phase_schedule' for key in cfg_options):
            from mmseg_sbce.engine import derive_phase_settings
            derive_phase_settings(cfg)
            cfg.merge_from_dict(
                {k: v for k, v in cfg_options.items() if k.split('.')[0] != 'phase_schedule'})
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg
