# Copyright (c) mmseg-sbce contributors.
"""The demo configs resolve to what they resolved to before the data set description was
derived at load time (issue 17): `bash tools/demo.sh` keeps its numbers."""
import json
import os.path as osp

import pytest

from mmseg_sbce.utils import load_runner_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# Dumped (json, sort_keys, default=str) from load_runner_config(config,
# work_dir='work_dirs/x') before the change.
SNAPSHOT = osp.join(osp.dirname(osp.abspath(__file__)), 'demo_resolved_sections.json')
SECTIONS = ('model', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'infer_dataset',
            'custom_hooks', 'pseudo_dataloader', 'val_evaluator', 'test_evaluator')

with open(SNAPSHOT, encoding='utf-8') as f:
    EXPECTED = json.load(f)


@pytest.mark.parametrize('config', sorted(EXPECTED))
def test_demo_config_sections_unchanged(config):
    cfg = load_runner_config(osp.join(REPO, config), work_dir='work_dirs/x').to_dict()
    got = json.loads(json.dumps({k: cfg[k] for k in SECTIONS if k in cfg}, sort_keys=True,
                                default=str))
    assert got == EXPECTED[config]
