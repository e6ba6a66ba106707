# Copyright (c) mmseg-sbce contributors.
import importlib.util
import logging
import os.path as osp
import sys

import pytest

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


class _CurrentStdout:
    """Writes to whatever ``sys.stdout`` is when a record is logged (pytest swaps it for
    each test that captures output)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture(autouse=True)
def _no_stale_log_streams():
    """Re-point mmengine loggers' console handlers whose stream was closed by an earlier
    test.

    ``MMLogger`` binds its ``StreamHandler`` to ``sys.stdout`` when the logger is created;
    created inside a test that captures output (``capsys``), that is the test's capture
    stream, closed when the test ends. A later test logging through the same logger (every
    ``print_log(logger='current')``) then gets a ``--- Logging error ---`` traceback on
    stderr instead of its message. Re-pointed handlers follow the current ``sys.stdout``.
    """
    mmlogger = sys.modules.get('mmengine.logging.logger')
    if mmlogger is not None:
        for logger in list(mmlogger.MMLogger._instance_dict.values()):
            for handler in logger.handlers:
                if type(handler) is logging.StreamHandler and \
                        getattr(handler.stream, 'closed', False):
                    with handler.lock:  # not setStream: it flushes the closed stream
                        handler.stream = _CurrentStdout()
    yield
