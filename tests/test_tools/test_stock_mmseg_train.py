# Copyright (c) mmseg-sbce contributors.
"""The demo's final segmentation config trains with mmseg's own, unmodified tools/train.py.

What the training subprocess runs:

* mmseg's stock ``tools/train.py`` (``mmseg/.mim/tools/train.py``), executed unchanged with
  ``runpy`` on ``configs/demo/deeplabv3plus_demo.py``;
* before it, only the two environment fixes that mmseg itself needs on this CPU machine with
  mmcv-lite and torch >= 2.6: the stub ``mmcv._ext`` (``import mmseg.models`` fails without
  it) and the allow-list for mmengine checkpoint loads
  (``install_mmcv_ext_stub`` and ``allow_mmengine_checkpoint_globals``).

What is and is not loaded: the fixes come from ``mmseg_sbce/utils/compat.py`` loaded **by
file path** under a private module name, so the package ``mmseg_sbce`` is never imported,
none of its classes is registered, and the config has no ``custom_imports``. The subprocess
asserts ``'mmseg_sbce' not in sys.modules`` after training. On a machine with a full mmcv
build the fixes are not needed (the stub is skipped there) and ``tools/train.py`` runs as is.
"""
import os
import os.path as osp
import re
import subprocess
import sys

from mmseg_sbce.datasets.demo_data import generate_demo_dataset

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'demo', 'deeplabv3plus_demo.py')
COMPAT = osp.join(ROOT, 'mmseg_sbce', 'utils', 'compat.py')

# argv: COMPAT, then the arguments of mmseg's train.py.
_LAUNCHER = """\
import importlib.util, os, runpy, sys
spec = importlib.util.spec_from_file_location('_sbce_env_fixes', sys.argv[1])
fixes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixes)
fixes.install_mmcv_ext_stub()
fixes.allow_mmengine_checkpoint_globals()
import mmseg
tool = os.path.join(os.path.dirname(mmseg.__file__), '.mim', 'tools', 'train.py')
sys.argv = [tool] + sys.argv[2:]
runpy.run_path(tool, run_name='__main__')
loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'mmseg_sbce')
print('PLUGIN MODULES LOADED:', loaded)
"""


def test_stock_train_tool_runs_demo_config(tmp_path):
    data_root = str(tmp_path / 'data')
    generate_demo_dataset(data_root, num_train=8, num_val=2, img_size=64, seed=0)
    # The ground-truth masks stand in for a pseudo-label directory (absolute path).
    pseudo_dir = osp.join(data_root, 'SegmentationClass')
    work_dir = str(tmp_path / 'work')
    iters = 2
    options = [
        f'train_dataloader.dataset.data_root={data_root}',
        f'train_dataloader.dataset.data_prefix.seg_map_path={pseudo_dir}',
        f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
        'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        # 64 px images: scales and crop shrunk with them (pipeline indices of the config).
        'train_dataloader.dataset.pipeline.2.scale=(256,64)',
        'train_dataloader.dataset.pipeline.3.crop_size=(48,48)',
        'train_dataloader.dataset.pipeline.5.size=(48,48)',
        'val_dataloader.dataset.pipeline.1.scale=(256,64)',
        'model.data_preprocessor.size=(48,48)',
        f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={iters}',
        f'param_scheduler.0.end={iters}',
        f'default_hooks.checkpoint.interval={iters}',
        'default_hooks.logger.interval=1',
    ]
    proc = subprocess.run(
        [sys.executable, '-c', _LAUNCHER, COMPAT, CONFIG, '--work-dir', work_dir,
         '--cfg-options', *options],
        cwd=str(tmp_path), env=dict(os.environ, OMP_NUM_THREADS='1'),
        capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert osp.isfile(osp.join(work_dir, f'iter_{iters}.pth')), os.listdir(work_dir)
    assert re.search(r'Iter\(val\) \[2/2\].*mIoU: \d+\.\d+', log), log[-4000:]
    assert 'PLUGIN MODULES LOADED: []' in proc.stdout, log[-4000:]
