# Copyright (c) mmseg-sbce contributors.
"""``benchmarks/activation_profile.py`` on hand-made maps whose statistics are known."""
import os

import numpy as np
import pytest
from PIL import Image

from mmseg_sbce.apis.label_io import save_maps_npz
from benchmark_loader import load_benchmark


@pytest.fixture(scope='module')
def bench():
    return load_benchmark('activation_profile')


def _make_run(tmp_path):
    """Image a: class 0 on the left half, logit 2 there (10 at one pixel), background 0
    with 16 of its 128 pixels at 4: object median / peak 0.2 below background p95 / peak
    0.4 (no threshold separates them). Image b: class 0 on the top-left quarter, logit 8
    (10 at one pixel), background -2: 0.8 against -0.2; its class 1 has no ground-truth
    pixel and is skipped, as is a map whose peak is not positive."""
    data, maps = tmp_path / 'data', tmp_path / 'maps'
    os.makedirs(data / 'SegmentationClass')
    os.makedirs(maps / 'probs')
    gt_a = np.zeros((16, 16), np.uint8)
    gt_a[:, :8] = 1
    x_a = np.where(gt_a == 1, 2., 0.)
    x_a[0, 0] = 10
    x_a[:, 8:][:2] = 4  # 2 rows x 8 columns = 16 background pixels
    gt_b = np.zeros((16, 16), np.uint8)
    gt_b[:8, :8] = 1
    x_b = np.where(gt_b == 1, 8., -2.)
    x_b[0, 0] = 10
    for name, gt, logits, classes in (('a', gt_a, [x_a], [0]),
                                      ('b', gt_b, [x_b, np.full_like(x_b, 3.)], [0, 1]),
                                      ('c', gt_a, [np.full_like(x_a, -1.)], [0])):
        Image.fromarray(gt).save(data / 'SegmentationClass' / f'{name}.png')
        save_maps_npz(str(maps / 'probs' / f'{name}.npz'),
                      np.stack(logits).astype(np.float32), np.array(classes),
                      np.full(len(classes), 0.5, np.float32))
    return str(maps), str(data)


def test_map_stats_by_hand(bench, tmp_path):
    maps, data = _make_run(tmp_path)
    r = bench.profile(maps, data)
    assert r['maps'] == 2
    assert r['peak'] == pytest.approx(10)
    assert r['object'] == pytest.approx(0.5)  # median of 0.2 and 0.8
    assert r['background'] == pytest.approx(0.1)  # median of 0.4 and -0.2
    assert r['fraction'] == pytest.approx(0.375)
    assert r['inseparable'] == pytest.approx(0.5)  # image a only


def test_main_writes_the_table(bench, tmp_path):
    maps, data = _make_run(tmp_path)
    out = tmp_path / 'profile.md'
    bench.main([maps, data, '--out', str(out)])
    text = out.read_text()
    assert f'| {maps} | 2 | 10.0 | 0.50 [0.35, 0.65] | 0.10 | 50 % | 0.375 |' in text
    with pytest.raises(SystemExit):
        bench.main([maps])  # an odd number of paths
    with pytest.raises(SystemExit, match='no saved maps'):
        bench.main([str(tmp_path), data])
