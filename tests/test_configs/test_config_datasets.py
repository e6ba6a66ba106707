# Copyright (c) mmseg-sbce contributors.
"""Every shipped config's datasets build against the documented layouts (docs/data.md).

The VOC 2012 + SBD root is laid out with mmseg's converter names (``trainaug.txt``,
``aug.txt``, ``SegmentationClassAug``), the COCO root as our converter writes it, the demo
root by the demo generator; every dataset a config describes (train/val/test dataloaders,
``infer_dataset``, the Q hook's, ``pseudo_dataloader``) is built with only ``data_root``
redirected, and its first sample is loaded, so a wrong split or folder name fails here.
"""
import glob
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import mmseg_sbce  # noqa: F401  (registers the plugin)
from mmseg.registry import DATASETS
from mmseg_sbce.datasets.demo_data import generate_demo_dataset

from test_coco_configs import make_coco_root  # noqa: E402  (this folder is on sys.path)
from wsss_layouts import VOC_IDS, make_voc_root  # noqa: E402  (tests/ is on sys.path)
from wsss_layouts import palette_png as _palette_png  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)
SIZE = 48
@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    """The shipped configs' data roots -> generated roots in the documented layouts."""
    base = tmp_path_factory.mktemp('layouts')
    voc, coco = str(base / 'voc'), str(base / 'coco')
    demo = str(base / 'data' / 'sbce_demo')  # as in the repository root
    make_voc_root(voc)
    make_coco_root(coco, pseudo=True)
    generate_demo_dataset(demo, num_train=2, num_val=1, img_size=SIZE, seed=0)
    # the demo DeepLab configs train on the labels tools/run_demo.py exports
    pseudo = str(base / 'work_dirs' / 'demo' / 'pseudo_sbce')
    os.makedirs(pseudo, exist_ok=True)
    for name in os.listdir(osp.join(demo, 'SegmentationClass')):
        mask = np.array(Image.open(osp.join(demo, 'SegmentationClass', name)))
        _palette_png(mask, osp.join(pseudo, name))
    return {'data/VOCdevkit/VOC2012': voc, 'data/coco': coco, 'data/sbce_demo': demo}


def _dataset_cfgs(cfg: Config) -> dict:
    """Every dataset a run builds, by where the config describes it."""
    found = {}
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                'pseudo_dataloader'):
        loader = cfg.get(key)
        if loader:
            found[key] = loader.dataset
    if cfg.get('infer_dataset'):
        found['infer_dataset'] = cfg.infer_dataset
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        if 'dataset' in hook:
            found[f'custom_hooks[{i}]({hook.type})'] = hook.dataset
    return found


def _redirect(node, roots: dict, q_dir: str):
    """``data_root`` -> generated root; ``LoadQMap.q_dir`` -> an empty store; the IRN seed
    loader (reads maps a previous stage exported) is dropped."""
    if isinstance(node, dict):
        if node.get('data_root') in roots:
            node['data_root'] = roots[node['data_root']]
        elif 'data_root' in node:
            raise AssertionError(f'unknown data_root {node["data_root"]!r}')
        if node.get('type') == 'LoadQMap':
            node['q_dir'] = q_dir
        if isinstance(node.get('pipeline'), list):
            node['pipeline'] = [s for s in node['pipeline'] if s.get('type') != 'LoadIRNSeeds']
        for value in node.values():
            _redirect(value, roots, q_dir)
    elif isinstance(node, list):
        for value in node:
            _redirect(value, roots, q_dir)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_config_datasets_build_on_documented_layout(path, roots, tmp_path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    datasets = _dataset_cfgs(cfg)
    assert 'train_dataloader' in datasets
    for where, dataset_cfg in datasets.items():
        dataset_cfg = dataset_cfg.to_dict()
        _redirect(dataset_cfg, roots, str(tmp_path / 'q'))
        dataset = DATASETS.build(dataset_cfg)
        assert len(dataset) > 0, where
        info = dataset.get_data_info(0)
        assert osp.isfile(info['img_path']), (where, info['img_path'])
        if info.get('seg_map_path'):
            assert osp.isfile(info['seg_map_path']), (where, info['seg_map_path'])
        sample = dataset[0]
        assert sample['inputs'].shape[0] == 3, where


def test_voc_deeplab_configs_train_on_trainaug(roots):
    """The 10,582-image set is mmseg's ``trainaug.txt`` (not ``aug.txt``/``train_aug.txt``)."""
    init_default_scope('mmseg')
    for path in glob.glob(osp.join(REPO, 'configs', 'deeplab', '*voc12aug*.py')):
        cfg = Config.fromfile(path)
        assert cfg.train_dataloader.dataset.ann_file == 'ImageSets/Segmentation/trainaug.txt'
        dataset_cfg = cfg.train_dataloader.dataset.to_dict()
        _redirect(dataset_cfg, roots, '')
        dataset = DATASETS.build(dataset_cfg)
        assert len(dataset) == len(VOC_IDS['train']) + len(VOC_IDS['aug'])
