# Copyright (c) mmseg-sbce contributors.
"""Console handlers of mmengine loggers whose stream has been closed.

``MMLogger`` binds its ``StreamHandler`` to ``sys.stdout`` when the logger is created. Created
while that is a stream someone closes later (a test's ``capsys`` capture, a stage's log file
under ``contextlib.redirect_stdout``), every later record through that logger (each
``print_log(logger='current')`` while it is the newest) prints a ``--- Logging error ---``
traceback to stderr instead of the message. :func:`repoint_closed_log_streams` points such
handlers at whatever ``sys.stdout`` is when a record is logged.

This module sits in ``tests/`` (on ``sys.path`` under pytest, beside ``conftest.py``).
"""
import logging
import sys


class CurrentStdout:
    """Writes to whatever ``sys.stdout`` is at the time of writing."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def repoint_closed_log_streams() -> None:
    """Point every mmengine logger's console handler whose stream is closed at
    :class:`CurrentStdout` (nothing to do before mmengine's logging is imported)."""
    module = sys.modules.get('mmengine.logging.logger')
    if module is None:
        return
    for logger in list(module.MMLogger._instance_dict.values()):
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler and \
                    getattr(handler.stream, 'closed', False):
                with handler.lock:  # not setStream: it flushes the closed stream
                    handler.stream = CurrentStdout()
