# Copyright (c) mmseg-sbce contributors.
"""Every shipped config parses (mmseg:: bases + custom_imports) and builds its model."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmseg_sbce  # noqa: F401
from mmseg.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)


def _no_weights(node):
    if isinstance(node, dict):
        for key in ('init_cfg', 'pretrained'):
            if key in node:
                node[key] = None
        for value in node.values():
            _no_weights(value)
    elif isinstance(node, list):
        for value in node:
            _no_weights(value)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_config_loads_and_builds_model(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = cfg.model.to_dict()
    _no_weights(model_cfg)
    model = MODELS.build(model_cfg)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert cfg.train_dataloader.dataset.type
