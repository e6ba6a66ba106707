# Copyright (c) mmseg-sbce contributors.
"""tests/conftest.py re-points logger streams closed by an earlier test (the two tests run in
this order; the second needs the first in the same process)."""
import pytest
from mmengine.logging import MMLogger

NAME = 'mmseg_sbce_stale_stream_probe'


def test_logger_created_while_output_is_captured(capsys):
    # MMLogger binds its console handler to this test's capture stream, closed at its end
    MMLogger.get_instance(NAME, log_level='INFO').info('first message')
    assert 'first message' in capsys.readouterr().out


def test_that_logger_logs_cleanly_in_a_later_test(capsys):
    if NAME not in MMLogger._instance_dict:
        pytest.skip('needs the test before it in the same process')
    MMLogger.get_instance(NAME).info('second message')
    captured = capsys.readouterr()
    assert 'Logging error' not in captured.err
    assert 'second message' in captured.out
