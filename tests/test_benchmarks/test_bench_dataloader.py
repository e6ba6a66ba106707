# Copyright (c) mmseg-sbce contributors.
"""``benchmarks/bench_dataloader.py``: its ``--config`` path on tiny generated layouts (the
shipped VOC SBCE loader with its Q store, the demo loader against its step) prints every
table row, and the generated COCO layout is what the COCO recipe's train set reads."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
from benchmark_loader import load_benchmark

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(ROOT, 'benchmarks', 'bench_dataloader.py')


@pytest.fixture(scope='module')
def bench():
    return load_benchmark('bench_dataloader')


def _run(*args):
    res = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    return res.stdout


def _row(out: str, first_cell: str, prefix: bool = False) -> list:
    """The cells of the markdown row whose first cell is (or starts with) ``first_cell``."""
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if line.startswith('|') and (cells[0].startswith(first_cell) if prefix
                                     else cells[0] == first_cell):
            return cells
    raise AssertionError(f'no row {first_cell!r} in:\n{out}')


def test_sbce_voc_loader_and_transforms(tmp_path):
    out = _run('--config', 'configs/sbce_voc.py', '--num', '4', '--size', '40', '56',
               '--rounds', '1', '--batches', '1', '--workers', '0', '--step-iters', '0',
               '--profile', '2', '--gpu-rates', '5', '--work-dir', str(tmp_path))
    assert ('configs/sbce_voc.py: VOCClsDataset, batch 6, num_workers 4 (shipped); '
            '4 generated 40 x 56 images') in out
    for name in ('loader, 4 workers (shipped)', 'loader, 0 workers (in-process)'):
        cells = _row(out, name)
        assert float(cells[1]) > 0 and cells[2:4] == ['-', '-'], cells
        assert float(cells[4]) > 0, cells  # CPU ms per sample of all its processes
    assert 'train_step' not in out
    shares = []
    for k, name in enumerate(['LoadCheckedImageFromFile', 'LoadQMap', 'RandomResize',
                              'RandomCrop', 'RandomFlip', 'RandAugment', 'PackWSSSInputs']):
        cells = _row(out, f'{k + 1}. {name}')
        assert float(cells[1]) > 0, cells
        shares.append(float(cells[2].rstrip(' %')))
    assert 97 <= sum(shares) <= 103
    total = float(_row(out, 'whole pipeline')[1])
    per_core = re.search(r'pipeline alone: ([0-9.]+) ms, ([0-9]+) samples/s per core', out)
    assert per_core and float(per_core.group(1)) == pytest.approx(total, abs=0.006)
    assert int(per_core.group(2)) == pytest.approx(1000 / total, rel=0.01)  # rounded
    need = _row(out, '5')  # step rate 5 it/s: 30 samples/s, cores at the pipeline's cost
    assert len(need) == 3 and need[1] == '30', need
    assert float(need[2]) == pytest.approx(30 * total / 1000, abs=0.006), need
    # The Q store was written as the Q update writes it and LoadQMap read it.
    q_dir = osp.join(tmp_path, 'work_dir', 'q')
    assert osp.realpath(osp.join(q_dir, 'current')) == osp.realpath(osp.join(q_dir,
                                                                              'phase_1'))
    assert len(os.listdir(osp.join(q_dir, 'phase_1'))) == 4


def test_demo_loader_against_the_step():
    out = _run('--config', 'configs/demo/sbce_demo.py', '--num', '4', '--size', '64', '64',
               '--rounds', '1', '--batches', '1', '--workers', '1', '--step-batch', '2',
               '--step-crop', '32', '--gpu-rates', '2')
    assert 'DemoClsDataset, batch 16, num_workers 2 (shipped)' in out
    step = _row(out, 'train_step (sbce-classifier, batch 2, crop 32, ', prefix=True)
    assert float(step[1]) > 0 and step[2:4] == ['1', '1-1'], step
    cost = float(_row(out, 'loader, 1 worker')[4])  # CPU ms per sample
    for name in ('loader, 2 workers (shipped)', 'loader, 1 worker'):
        cells = _row(out, name)  # one round: the median ratio is the whole range
        assert float(cells[1]) > 0 and cells[3] == f'{cells[2]}-{cells[2]}', cells
        assert float(cells[2]) == pytest.approx(float(cells[1]) / float(step[1]), rel=0.02)
    assert 'Transforms in-process' not in out  # --profile 0
    # Without --profile the cores needed come from the 1-worker loader's CPU cost alone.
    assert 'Cores the loader needs at batch 16' in out and 'pipeline alone' not in out
    need = _row(out, '2')  # 2 it/s at batch 16: 32 samples/s
    assert len(need) == 3 and need[1] == '32', need
    assert float(need[2]) == pytest.approx(32 * cost / 1000, abs=0.01), need


def test_coco_layout_feeds_the_recipe(bench, tmp_path):
    from mmseg.registry import DATASETS
    cfg = bench.read_config(osp.join(ROOT, 'configs/sbce_coco.py'), str(tmp_path / 'data'),
                            str(tmp_path / 'work'))
    ids, mask_dir = bench.make_layout('coco', str(tmp_path / 'data'), 3, (36, 52))
    assert mask_dir == str(tmp_path / 'data' / 'SegmentationClass' / 'train2014')
    store = bench.write_q_store(cfg.q_dir, ids, mask_dir)
    with open(tmp_path / 'data' / 'cls_labels_train.json') as f:
        labels = json.load(f)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(dataset) == 3
    for i, img_id in enumerate(ids):
        info = dataset.get_data_info(i)
        assert info['img_id'] == img_id
        assert info['img_path'] == str(tmp_path / 'data' / 'train2014' / f'{img_id}.jpg')
        assert [c + 1 for c in info['gt_labels']] == labels[img_id]
    # LoadQMap reads the Q store's map of the image, at the image's size.
    load_image, load_q = dataset.pipeline.transforms[:2]
    results = load_q(load_image(dataset.get_data_info(0)))
    assert results['q_map_path'] == osp.join(cfg.q_dir, 'current', f'{ids[0]}.png')
    assert results['gt_seg_map'].shape == results['img'].shape[:2] == (36, 52)
    sample = dataset[0]['data_samples']
    assert sample.gt_sem_seg.data.shape[-2:] == sample.metainfo['img_shape']
    assert sample.gt_labels.sum() == len(labels[ids[0]])
    # The Q maps are the masks, written through save_label_png.
    from mmseg_sbce.utils.io import read_label_png
    for img_id in ids:
        np.testing.assert_array_equal(read_label_png(osp.join(store, f'{img_id}.png')),
                                      read_label_png(osp.join(mask_dir, f'{img_id}.png')))


def test_unsupported_dataset_type_is_named(bench, tmp_path):
    with pytest.raises(ValueError, match="no generated layout for train data set type "
                       "'PascalVOCDataset'"):
        bench.main(['--config', 'configs/deeplab/deeplabv3plus_r101-d8_4xb4-20k_voc12aug-'
                    'pseudo-512x512.py', '--work-dir', str(tmp_path)])
