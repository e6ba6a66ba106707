# Copyright (c) mmseg-sbce contributors.
"""The config handling that ``tools/train.py`` and ``tools/test.py`` share (as mmseg's)."""
import logging
import os.path as osp
from typing import Optional

from mmengine.config import Config

# The Q store's folder inside a run's work dir (configs: ``q_dir = work_dir + '/q'``).
Q_SUBDIR = 'q'


def _set_q_dir(node, old: str, new: str) -> None:
    """Point every ``LoadQMap`` / ``QUpdateHook`` that reads or writes ``old`` at ``new``."""
    if isinstance(node, dict):
        if node.get('type') in ('LoadQMap', 'QUpdateHook') and node.get('q_dir') == old:
            node['q_dir'] = new
        for value in node.values():
            _set_q_dir(value, old, new)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _set_q_dir(value, old, new)


def place_q_store(cfg: Config, cfg_options: Optional[dict] = None) -> None:
    """Put the SBCE Q store inside the run's work dir, so that runs never share one.

    The configs resolve ``q_dir = work_dir + '/q'`` when they are parsed, before
    ``--work-dir`` is known; this re-derives it as ``{cfg.work_dir}/q`` unless ``q_dir`` was
    given in ``cfg_options`` (then that value) or is absolute in the config. ``LoadQMap`` and
    ``QUpdateHook`` that used the parsed value follow; an explicitly overridden one keeps its
    value (``QUpdateHook`` refuses to run if the two then disagree). A config without
    ``q_dir`` is left alone.
    """
    old = cfg.get('q_dir', None)
    if old is None:
        return
    if cfg_options is not None and 'q_dir' in cfg_options:
        new = cfg_options['q_dir']
    elif osp.isabs(old):
        new = old
    else:
        new = osp.join(cfg.work_dir, Q_SUBDIR)
    cfg.q_dir = new
    for key in ('train_dataloader', 'custom_hooks'):
        node = cfg.get(key, None)
        if node is not None:
            _set_q_dir(node, old, new)


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

    The SBCE Q store follows the work_dir (:func:`place_q_store`): every output of a run lives
    in its work dir.
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config not found: {config}')
    cfg = Config.fromfile(config)
    parsed_q_dir = cfg.get('q_dir', None)
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
    if parsed_q_dir is not None:
        cfg.q_dir = parsed_q_dir  # a `q_dir=` option is read from cfg_options below
        place_q_store(cfg, cfg_options)
    return cfg


def resolve_resume(cfg: Config, resume: bool) -> None:
    """Set ``cfg.resume`` / ``cfg.load_from`` so that ``--resume`` resumes the work dir's run.

    mmengine resumes from ``load_from`` whenever it is set (see ``Runner.load_or_resume``),
    so ``--resume`` with a config that initialises from a baseline checkpoint would restart
    from the baseline. Here ``--resume`` means the run in ``cfg.work_dir``: its latest
    checkpoint becomes the one resumed (``load_from`` only initialises a new run); with no
    checkpoint there yet, a run with ``load_from`` starts from it as a new run.

    Args:
        cfg (Config): the config from :func:`load_runner_config` (``work_dir`` set).
        resume (bool): ``--resume`` was given.
    """
    from mmengine.logging import print_log
    from mmengine.runner import find_latest_checkpoint
    cfg.resume = bool(resume)
    if not resume:
        return
    latest = find_latest_checkpoint(cfg.work_dir)
    load_from = cfg.get('load_from', None)
    if latest is not None:
        if load_from is not None and load_from != latest:
            print_log(f'--resume: resuming the run in {cfg.work_dir} from its checkpoint '
                      f'{latest}; load_from={load_from} is not used (it initialises a new '
                      'run only)', logger='current')
        cfg.load_from = latest
    elif load_from is not None:
        print_log(f'--resume: no checkpoint in {cfg.work_dir} yet, so a new run starts from '
                  f'load_from={load_from}', logger='current', level=logging.WARNING)
        cfg.resume = False
