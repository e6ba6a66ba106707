# Copyright (c) mmseg-sbce contributors.
"""The demo IRN config trains through a real mmengine Runner and resumes."""
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

import mmseg_sbce  # noqa: F401
from mmseg_sbce.apis import save_maps_npz
from mmseg_sbce.datasets.demo_data import generate_demo_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIG = osp.join(REPO, 'configs', 'irn', 'irn_r18-scratch_1xb8-300_demo-96x96.py')


@pytest.fixture(scope='module')
def demo_with_maps(tmp_path_factory):
    """A tiny demo data set and stand-in saved maps (logits from the masks, t' = 0.5)."""
    root = str(tmp_path_factory.mktemp('irn_demo'))
    generate_demo_dataset(root, num_train=4, num_val=1, img_size=48, num_classes=3, seed=1)
    maps = osp.join(root, 'maps')
    with open(osp.join(root, 'ImageSets', 'Segmentation', 'train.txt')) as f:
        ids = f.read().split()
    os.makedirs(maps)
    for img_id in ids:
        mask = np.array(Image.open(osp.join(root, 'SegmentationClass', img_id + '.png')))
        classes = np.array(sorted(set(np.unique(mask).tolist()) - {0, 255})) - 1
        logits = np.stack([np.where(mask == c + 1, 4.0, -4.0) for c in classes])
        save_maps_npz(osp.join(maps, img_id + '.npz'), logits.astype(np.float32), classes,
                      np.full(len(classes), 0.5, np.float32))
    return root, maps


def _cfg(root: str, maps: str, work_dir: str, iters: int, resume: bool) -> Config:
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = work_dir
    cfg.resume = resume
    cfg.crop_size = (32, 32)
    cfg.model.data_preprocessor.size = (32, 32)
    loader = cfg.train_dataloader
    loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    loader.dataset.data_root = root
    pipeline = loader.dataset.pipeline
    pipeline[1].maps_dir = maps
    pipeline[2].scale = (48, 48)
    pipeline[3].crop_size = (32, 32)
    cfg.train_cfg.max_iters = iters
    cfg.param_scheduler[0].end = iters
    cfg.default_hooks.checkpoint.update(interval=2, max_keep_ckpts=2)
    cfg.default_hooks.logger.interval = 1
    return cfg


def test_train_and_resume(demo_with_maps, tmp_path):
    root, maps = demo_with_maps
    work = str(tmp_path / 'work')
    Runner.from_cfg(_cfg(root, maps, work, iters=4, resume=False)).train()
    assert osp.isfile(osp.join(work, 'iter_2.pth')) and osp.isfile(osp.join(work, 'iter_4.pth'))

    # A run interrupted after iteration 2: only that checkpoint exists; resume finishes it.
    crashed = tmp_path / 'crashed'
    crashed.mkdir()
    shutil.copy(osp.join(work, 'iter_2.pth'), crashed / 'iter_2.pth')
    (crashed / 'last_checkpoint').write_text(str(crashed / 'iter_2.pth'))
    resumed = Runner.from_cfg(_cfg(root, maps, str(crashed), iters=4, resume=True))
    resumed.train()
    assert resumed.iter == 4 and osp.isfile(crashed / 'iter_4.pth')
    at_2 = torch.load(crashed / 'iter_2.pth', map_location='cpu', weights_only=False)
    before = at_2['state_dict']['edge_out.weight']
    assert at_2['meta']['iter'] == 2
    assert not torch.allclose(before, resumed.model.state_dict()['edge_out.weight'])
