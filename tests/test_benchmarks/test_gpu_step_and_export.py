# Copyright (c) mmseg-sbce contributors.
"""``benchmarks/gpu_step_and_export.py``: refuses to measure without CUDA, and its
``--cpu-smoke`` mode runs the whole script (steps of every mode in both precisions, export
network passes and dCRF) on tiny sizes and prints the table."""
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(ROOT, 'benchmarks', 'gpu_step_and_export.py')


def _run(*args):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='')
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)


def test_refuses_without_cuda():
    res = _run()
    assert res.returncode == 2, res.stdout + res.stderr
    assert 'no CUDA device' in res.stderr and '--cpu-smoke' in res.stderr
    assert '| step |' not in res.stdout


def test_cpu_smoke_prints_the_table():
    res = _run('--cpu-smoke')
    assert res.returncode == 0, res.stderr[-4000:]
    out = res.stdout
    assert 'CPU smoke run' in out
    for precision in ('fp32', 'amp'):
        for mode in ('bce', 'sbce-classifier', 'sbce-threshold'):
            assert f'| {precision} | {mode} |' in out, (precision, mode)
    for row in ('network passes, fp32', 'network passes, bf16', 'labelling + dCRF'):
        assert f'| {row}' in out, row
