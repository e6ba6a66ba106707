# Copyright (c) mmseg-sbce contributors.
"""What the tests of tools/run_pipeline.py share: shortened schedules of the demo configs
(command-line options only, as a user with a small machine would shorten them), a snapshot
of a data folder (the pipeline must only read it), and a way to run the stage commands in
the test's process.

This module sits in ``tests/`` (on ``sys.path`` under pytest, beside ``conftest.py``), so any
test imports it as ``import run_pipeline_helpers``.
"""
import contextlib
import os
import os.path as osp
import shlex
import subprocess

from log_streams import repoint_closed_log_streams

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

BASELINE = 'configs/demo/bce_baseline_demo.py'
SBCE = 'configs/demo/sbce_demo.py'
DEEPLAB = 'configs/demo/deeplabv3plus_demo.py'
LOADERS = ['train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
           'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
           'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
           'train_dataloader.batch_size=2']
# 2 iterations per run; the SBCE run: 2 phases of 2 iterations (gamma 2 / theta 1: one
# classifier and one threshold iteration each).
SHORT = dict(
    baseline=['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
              'default_hooks.checkpoint.interval=2', 'param_scheduler.0.end=2', *LOADERS],
    sbce=['phase_schedule.phase_iters=2', 'phase_schedule.gamma=2', 'phase_schedule.theta=1',
          'phase_schedule.num_phases=2', *LOADERS],
    deeplab=['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
             'default_hooks.checkpoint.interval=2', 'param_scheduler.0.end=2', *LOADERS])


def snapshot(root: str) -> dict:
    """Every file under ``root`` with its size and modification time."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = osp.join(folder, name)
            out[osp.relpath(path, root)] = (os.path.getsize(path), os.path.getmtime(path))
    return out


def run_stages_in_process(monkeypatch, pipeline_module, load_tool) -> None:
    """Run each stage command of ``pipeline_module.Pipeline`` in this process: the same
    tool (``tools/NAME.py``, its ``main``) with the same arguments, its output in the same
    log file, in the repository root, as the pipeline runs it in a subprocess. Saves the
    interpreter start and the imports of every command (about 4 s each on 2 cores).

    Args:
        monkeypatch: pytest's fixture (undone after the test).
        pipeline_module: tools/run_pipeline.py, loaded.
        load_tool: the ``load_tool`` fixture.
    """

    def py(self, script, *args, log=None):
        argv = [str(a) for a in args]
        print('\n$ python ' + ' '.join(shlex.quote(a) for a in [script, *argv]), flush=True)
        tool = load_tool(osp.splitext(osp.relpath(script, 'tools'))[0])
        with contextlib.ExitStack() as stack:
            if log is not None:
                out = stack.enter_context(open(log, 'w'))
                stack.enter_context(contextlib.redirect_stdout(out))
                stack.enter_context(contextlib.redirect_stderr(out))
            code = tool.main(argv)
        repoint_closed_log_streams()  # a Runner's logger wrote to the closed log file
        if code not in (None, 0):
            raise subprocess.CalledProcessError(code, [script, *argv])

    monkeypatch.setattr(pipeline_module.Pipeline, 'py', py)
    monkeypatch.chdir(REPO)
