# Copyright (c) mmseg-sbce contributors.
import pytest
from mmengine.registry import init_default_scope

import mmseg_sbce  # noqa: F401  (registers the plugin, applies the compat fixes)
from mmseg_sbce.datasets.demo_data import generate_demo_dataset

DEMO_KWARGS = dict(num_train=12, num_val=6, img_size=64, num_classes=6, seed=3)


@pytest.fixture(scope='session')
def demo_kwargs():
    """The options of the ``demo_root`` data set."""
    return dict(DEMO_KWARGS)


@pytest.fixture(scope='session')
def demo_root(tmp_path_factory):
    """A small demo data set shared by the tests of this package (read-only!)."""
    root = tmp_path_factory.mktemp('demo')
    generate_demo_dataset(str(root), **DEMO_KWARGS)
    return str(root)


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')
