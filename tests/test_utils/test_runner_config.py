# Copyright (c) mmseg-sbce contributors.
import os.path as osp

import pytest

from mmseg_sbce.utils import load_runner_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_work_dir_priority_and_options(tmp_path):
    cfg_file = tmp_path / 'my_cfg.py'
    cfg_file.write_text("a = dict(b=1)\n")
    cfg = load_runner_config(str(cfg_file), dict(a=dict(b=2)), 'pytorch')
    assert cfg.a.b == 2 and cfg.launcher == 'pytorch'
    assert cfg.work_dir == osp.join('./work_dirs', 'my_cfg')
    cfg_file.write_text("work_dir = 'from_cfg'\n")
    assert load_runner_config(str(cfg_file)).work_dir == 'from_cfg'
    assert load_runner_config(str(cfg_file), work_dir='cli').work_dir == 'cli'


def test_missing_config_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='config not found: .*nope.py'):
        load_runner_config(str(tmp_path / 'nope.py'))


SBCE_CONFIGS = ['configs/sbce_voc.py', 'configs/sbce_coco.py', 'configs/demo/sbce_demo.py',
                'configs/sbce_voc_from_baseline.py']


def _q_dirs(cfg) -> set:
    """The Q store of the config, LoadQMap and QUpdateHook."""
    found = {cfg.q_dir}
    found |= {s.q_dir for s in cfg.train_dataloader.dataset.pipeline if s.type == 'LoadQMap'}
    found |= {h.q_dir for h in cfg.custom_hooks if h.type == 'QUpdateHook'}
    return found


@pytest.mark.parametrize('config', SBCE_CONFIGS)
def test_q_store_follows_the_work_dir(config, tmp_path):
    """--work-dir moves the Q store: two runs of one config never share it (issue 17)."""
    path = osp.join(REPO, config)
    run1 = load_runner_config(path, work_dir=str(tmp_path / 'run1'))
    run2 = load_runner_config(path, work_dir=str(tmp_path / 'run2'))
    assert _q_dirs(run1) == {osp.join(str(tmp_path / 'run1'), 'q')}
    assert _q_dirs(run2) == {osp.join(str(tmp_path / 'run2'), 'q')}
    # without --work-dir: the config's own work_dir, as before
    default = load_runner_config(path)
    assert _q_dirs(default) == {osp.join(default.work_dir, 'q')}
    # an explicit q_dir option moves all three
    moved = load_runner_config(path, dict(q_dir=str(tmp_path / 'elsewhere')),
                               work_dir=str(tmp_path / 'run1'))
    assert _q_dirs(moved) == {str(tmp_path / 'elsewhere')}


def test_config_without_q_store_is_unchanged(tmp_path):
    cfg = load_runner_config(osp.join(REPO, 'configs/bce_baseline_voc.py'),
                             work_dir=str(tmp_path))
    assert 'q_dir' not in cfg
