# Copyright (c) mmseg-sbce contributors.
"""Run a launcher (``tools/dist_*.sh``) whose ranks must not outlive a timeout.

``subprocess.run(..., timeout=T)`` kills only the process it started: the ranks and
dataloader / pool workers that ``torchrun`` spawned keep running after a hang (seen: a
forked labelling worker deadlocked at fork, the test timed out, and the two ranks stayed
alive). Here the launcher gets a session of its own and, on a timeout, the whole process
group is killed before :class:`subprocess.TimeoutExpired` is raised. The tests directory is
on ``sys.path`` (pytest's rootdir conftest), so a test imports it as
``from process_group import run_group``.
"""
import os
import signal
import subprocess


def run_group(args, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)``
    that kills the launcher's whole process group when the timeout fires."""
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True, **kwargs) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(args, timeout, output=out, stderr=err)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)
