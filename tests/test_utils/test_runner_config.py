# Copyright (c) mmseg-sbce contributors.
import os.path as osp

import pytest

from mmseg_sbce.utils import load_runner_config


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
