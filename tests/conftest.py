# Copyright (c) mmseg-sbce contributors.
import importlib.util
import os.path as osp

import pytest

from log_streams import repoint_closed_log_streams

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='session')
def load_tool():
    """Import a script under ``tools/`` (not a package) as a module, e.g.
    ``load_tool('gen_pseudo')`` or ``load_tool('model_converters/vgg16_to_mmseg')``."""
    loaded = {}

    def load(name: str):
        if name not in loaded:
            path = osp.join(ROOT, 'tools', name + '.py')
            spec = importlib.util.spec_from_file_location(
                '_tool_' + name.replace('/', '_'), path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded[name] = module
        return loaded[name]

    return load


@pytest.fixture(autouse=True)
def _no_stale_log_streams():
    """Before each test, re-point mmengine loggers' console handlers whose stream an earlier
    test closed (a logger created under ``capsys`` writes to that test's capture; a later
    test logging through it got a ``--- Logging error ---`` traceback on stderr)."""
    repoint_closed_log_streams()
    yield
