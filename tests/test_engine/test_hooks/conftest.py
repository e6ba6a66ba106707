# Copyright (c) mmseg-sbce contributors.
"""Fixtures of the hook tests: a demo data set and one full training run, shared by both test files (run in file order)."""
import pytest
from mmengine.registry import init_default_scope

from mmseg_sbce.datasets.demo_data import generate_demo_dataset
from sbce_run import NUM_CLASSES, make_cfg, run  # noqa: E402  (this folder is on sys.path)


@pytest.fixture(scope='session')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo'))
    generate_demo_dataset(root, num_train=12, num_val=2, img_size=48,
                          num_classes=NUM_CLASSES, seed=1)
    return root


@pytest.fixture(scope='session')
def full_run(data_root, tmp_path_factory):
    init_default_scope('mmseg')
    work_dir = str(tmp_path_factory.mktemp('full'))
    cfg = make_cfg(data_root, work_dir)
    runner, record = run(cfg)
    return cfg, runner, record

