# Copyright (c) mmseg-sbce contributors.
"""tools/test.py and tools/dist_test.sh: evaluate a checkpoint on a config's test set.

Both stages of the pipeline: the SBCE demo classifier (eq. 9, single scale) and the stock
DeepLab demo config. The mIoU the tool reports must equal an independent evaluation of the
prediction PNGs it writes with ``--out`` (``evaluate_label_dir``), and 2 gloo processes must
report what 1 process reports.
"""
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import mmseg_sbce  # noqa: F401
from mmseg.registry import MODELS
from mmseg_sbce.datasets.demo_data import generate_demo_dataset
from mmseg_sbce.evaluation.pseudo_eval import evaluate_label_dir, read_split

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SBCE_CFG = 'configs/demo/sbce_demo.py'
DEEPLAB_CFG = 'configs/demo/deeplabv3plus_demo.py'


@pytest.fixture(scope='module')
def test_tool(load_tool):
    return load_tool('test')


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data'))
    generate_demo_dataset(root, num_train=2, num_val=6, img_size=96, num_classes=6, seed=5)
    return root


def _checkpoint(config, path, seed=0):
    """A checkpoint of the config's model at its (seeded) initialisation."""
    init_default_scope('mmseg')
    torch.manual_seed(seed)
    model = MODELS.build(Config.fromfile(osp.join(ROOT, config)).model)
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


def _data_options(root):
    return [f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}']


@pytest.mark.parametrize('config', [SBCE_CFG, DEEPLAB_CFG])
def test_reported_miou_equals_an_evaluation_of_the_written_predictions(
        config, data_root, tmp_path, test_tool):
    ckpt = _checkpoint(config, str(tmp_path / 'model.pth'))
    out = str(tmp_path / 'pred')
    metrics = test_tool.main([osp.join(ROOT, config), ckpt, '--work-dir',
                              str(tmp_path / 'work'), '--out', out, '--cfg-options',
                              *_data_options(data_root)])
    ids = read_split(osp.join(data_root, 'ImageSets', 'Segmentation', 'val.txt'))
    assert sorted(f[:-4] for f in os.listdir(out)) == sorted(ids)
    preds = np.stack([np.array(Image.open(osp.join(out, i + '.png'))) for i in ids])
    assert preds.max() <= 6 and len(np.unique(preds)) > 2  # a non-trivial prediction
    ref = evaluate_label_dir(out, osp.join(data_root, 'SegmentationClass'), ids,
                             num_classes=7, workers=0)
    # mmseg's IoUMetric reports percent, rounded to 2 decimals
    assert metrics['mIoU'] == pytest.approx(100 * ref['miou'], abs=0.006)


def test_missing_checkpoint_is_named(tmp_path, test_tool):
    with pytest.raises(SystemExit, match='checkpoint not found: .*nope.pth'):
        test_tool.main([osp.join(ROOT, SBCE_CFG), str(tmp_path / 'nope.pth')])


def _miou_from_log(text):
    found = re.findall(r'Iter\(test\).*?mIoU: ([0-9.]+)', text)
    assert found, text[-3000:]
    return float(found[-1])


def test_dist_test_two_cpu_processes_equal_one(data_root, tmp_path):
    ckpt = _checkpoint(SBCE_CFG, str(tmp_path / 'model.pth'), seed=1)
    mious = {}
    for world in (1, 2):
        env = dict(os.environ, PORT=str(29660 + world), PYTHON=sys.executable,
                   CUDA_VISIBLE_DEVICES='')
        res = subprocess.run(
            ['bash', 'tools/dist_test.sh', SBCE_CFG, ckpt, str(world), '--work-dir',
             str(tmp_path / f'w{world}'), '--cfg-options', *_data_options(data_root)],
            capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
        mious[world] = _miou_from_log(res.stdout + res.stderr)
    assert mious[1] == mious[2]
