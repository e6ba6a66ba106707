# Copyright (c) mmseg-sbce contributors.
"""``tests/process_group.run_group``: what it returns, and that a timeout leaves no child."""
import os
import subprocess
import time

import pytest

from process_group import run_group


def test_returns_like_subprocess_run():
    res = run_group(['bash', '-c', 'echo out; echo err >&2; exit 3'], timeout=30)
    assert (res.returncode, res.stdout, res.stderr) == (3, 'out\n', 'err\n')


def test_timeout_kills_the_grandchildren(tmp_path):
    """A launcher that starts a background child and waits: on the timeout both are gone
    (subprocess.run would leave the child running)."""
    pid_file = tmp_path / 'child.pid'
    script = f'sleep 300 & echo $! > {pid_file}; echo started; wait'
    with pytest.raises(subprocess.TimeoutExpired) as exc_info:
        run_group(['bash', '-c', script], timeout=2)
    assert 'started' in exc_info.value.output
    child = int(pid_file.read_text())
    for _ in range(50):  # the kill is asynchronous: give the kernel a moment
        if not _alive(child):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f'child {child} still alive after the timeout')


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent that does not reap it counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False
