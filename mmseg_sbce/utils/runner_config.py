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
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config not found: {config}')
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg
