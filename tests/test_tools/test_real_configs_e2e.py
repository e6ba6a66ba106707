# Copyright (c) mmseg-sbce contributors.
"""END TO END, SLOW (the longest module of the suite): the shipped VOC and COCO
configs through every tool, on small data sets in the documented layouts.

    tools/train.py configs/sbce_{voc,coco}.py (BCE phase, initial Q, SBCE phases with Q updates)
    -> tools/gen_pseudo.py -> tools/eval_pseudo.py
    -> tools/train.py on the shipped DeepLab config, trained on the exported labels
    -> tools/test.py on that DeepLab checkpoint

The configs are used as shipped (ResNet-38d classifier, their real pipelines, multi-scale +
flip + dCRF inference); only sizes, iteration counts, loader workers and the data roots are
changed, and only on the command line (``--cfg-options``), as a user with a small machine
would. No ImageNet weights exist here, so ``model.backbone.init_cfg=None`` (and the DeepLab
configs' ``model.pretrained=None``). VOC 2012 + SBD is generated with mmseg's converter names;
COCO 2014 is a generated instances JSON run through our converter
(``tools/dataset_converters/coco2014.py``).
"""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

import wsss_layouts

CROP = 64
# Phase layout: a 1-iteration BCE phase (its CAMs give the initial Q), then 2 SBCE phases of
# 2 iterations (gamma 2 / theta 1: one classifier and one threshold iteration each).
PHASES = ['phase_schedule.bce_iters=1', 'phase_schedule.phase_iters=2',
          'phase_schedule.gamma=2', 'phase_schedule.theta=1', 'phase_schedule.num_phases=2']
LAST_ITER = 1 + 2 * 2
SMALL = [f'model.data_preprocessor.size=({CROP},{CROP})',
         'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
         'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
         'val_dataloader.persistent_workers=False', 'test_dataloader.num_workers=0',
         'test_dataloader.persistent_workers=False', 'default_hooks.logger.interval=1',
         'randomness.seed=0']
SBCE_SMALL = [*SMALL, 'model.backbone.init_cfg=None',
              'train_dataloader.dataset.pipeline.2.scale=(128,64)',  # RandomResize
              f'train_dataloader.dataset.pipeline.3.crop_size=({CROP},{CROP})',  # RandomCrop
              'custom_hooks.1.workers=0']
DEEPLAB_SMALL = [*SMALL, 'model.pretrained=None', 'model.backbone.init_cfg=None',
                 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                 'default_hooks.checkpoint.interval=2',
                 'param_scheduler.0.end=2',
                 'train_dataloader.dataset.pipeline.2.scale=(128,64)',  # RandomResize
                 f'train_dataloader.dataset.pipeline.3.crop_size=({CROP},{CROP})',
                 f'train_dataloader.dataset.pipeline.6.size=({CROP},{CROP})',  # Pad
                 'val_dataloader.dataset.pipeline.1.scale=(128,64)',  # Resize
                 'test_dataloader.dataset.pipeline.1.scale=(128,64)']

DATASETS = dict(
    voc=dict(sbce='configs/sbce_voc.py',
             deeplab='configs/deeplab/deeplabv3plus_r101-d8_4xb4-20k_voc12aug-pseudo-512x512.py',
             num_classes=21, export_split='ImageSets/Segmentation/trainaug.txt',
             export_gt='SegmentationClassAug'),
    coco=dict(sbce='configs/sbce_coco.py',
              deeplab='configs/deeplab/'
              'deeplabv3plus_r101-d8_4xb4-160k_coco2014-pseudo-512x512.py',
              num_classes=81, export_split='ImageSets/train.txt',
              export_gt='SegmentationClass/train2014'))


@pytest.fixture
def one_thread():
    # Small tensors on a shared 2-core machine: extra OpenMP threads mostly wait.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _data_root(name: str, base, load_tool) -> str:
    """A fresh root in the documented layout for data set ``name``."""
    if name == 'voc':
        root = str(base / 'VOCdevkit' / 'VOC2012')
        wsss_layouts.make_voc_root(root, pseudo=False)
        return root
    # COCO: the download's instances JSON through our converter, as docs/data.md runs it
    source, root = str(base / 'coco_download'), str(base / 'coco2014')
    stems = wsss_layouts.make_coco_source(source)
    converter = load_tool('dataset_converters/coco2014')
    assert converter.main([source, '--out', root, '--no-progress']) == 0
    for split, labels in stems.items():
        assert sorted(wsss_layouts.split_ids(osp.join(root, 'ImageSets', f'{split}.txt'))) \
            == sorted(labels)
    return root


@pytest.mark.parametrize('name', ['voc', 'coco'])
def test_shipped_configs_end_to_end(name, tmp_path, load_tool, one_thread):
    spec = DATASETS[name]
    root = _data_root(name, tmp_path / 'data', load_tool)
    work = tmp_path / 'work'
    train, gen_pseudo, eval_pseudo, test = (
        load_tool(t) for t in ('train', 'gen_pseudo', 'eval_pseudo', 'test'))

    # 1. the classifier: BCE phase -> initial Q -> SBCE phases, one run
    # the data set description's root reaches every data set (loaders, infer_dataset,
    # pseudo_dataloader, the Q hook's)
    sbce_roots = [f'data_root={root}']
    sbce_work = str(work / 'sbce')
    train.main([spec['sbce'], '--work-dir', sbce_work, '--cfg-options', *PHASES,
                *SBCE_SMALL, *sbce_roots])
    ckpt = osp.join(sbce_work, f'iter_{LAST_ITER}.pth')
    assert osp.isfile(ckpt)
    # the Q store lives in the run's work dir and was updated before phase 2
    assert osp.realpath(osp.join(sbce_work, 'q', 'current')) == \
        osp.realpath(osp.join(sbce_work, 'q', 'phase_2'))

    # 2. pseudo-labels of the training set (multi-scale + flip, eq. 9, dCRF) and their score
    pseudo = str(work / 'pseudo')
    assert gen_pseudo.main([spec['sbce'], ckpt, '--out', pseudo, '--no-progress',
                            '--workers', '0', '--cfg-options', *sbce_roots]) in (0, None)
    ids = wsss_layouts.split_ids(osp.join(root, spec['export_split']))
    for img_id in ids:
        label = np.array(Image.open(osp.join(pseudo, f'{img_id}.png')))
        gt = np.array(Image.open(osp.join(root, spec['export_gt'], f'{img_id}.png')))
        assert label.shape == gt.shape
        assert set(np.unique(label).tolist()) <= set(range(spec['num_classes'])) | {255}
    report = str(work / 'eval')
    assert eval_pseudo.main([pseudo, '--gt', osp.join(root, spec['export_gt']), '--split',
                             osp.join(root, spec['export_split']), '--num-classes',
                             str(spec['num_classes']), '--out', report]) in (0, None)
    with open(report + '.json') as f:
        miou = json.load(f)['prediction']['miou']
    assert 0.0 <= miou <= 1.0

    # 3. the shipped DeepLab config on the exported labels, then tools/test.py on it
    deeplab_roots = [f'data_root={root}']
    deeplab_work = str(work / 'deeplab')
    train.main([spec['deeplab'], '--work-dir', deeplab_work, '--cfg-options', *DEEPLAB_SMALL,
                *deeplab_roots, f'train_dataloader.dataset.data_prefix.seg_map_path={pseudo}'])
    deeplab_ckpt = osp.join(deeplab_work, 'iter_2.pth')
    assert osp.isfile(deeplab_ckpt)
    test_work, preds = str(work / 'test'), str(work / 'test_preds')
    test.main([spec['deeplab'], deeplab_ckpt, '--work-dir', test_work, '--out', preds,
               '--cfg-options', *DEEPLAB_SMALL, *deeplab_roots])
    val_ids = wsss_layouts.split_ids(osp.join(
        root, 'ImageSets/Segmentation/val.txt' if name == 'voc' else 'ImageSets/val.txt'))
    assert sorted(p[:-4] for p in os.listdir(preds)) == sorted(val_ids)
