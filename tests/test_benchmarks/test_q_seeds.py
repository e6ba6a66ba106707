# Copyright (c) mmseg-sbce contributors.
"""``benchmarks/q_seeds.py`` on hand-made maps, Q and ground truth whose counts are known."""
import os

import numpy as np
import pytest
from PIL import Image

from mmseg_sbce.apis.label_io import save_maps_npz
from benchmark_loader import load_benchmark


@pytest.fixture(scope='module')
def bench():
    return load_benchmark('q_seeds')


def _make_run(tmp_path):
    """One 16 x 16 image. Class 0 is the left half (128 pixels, fraction 0.5); class 1 the
    bottom-right quarter (64 pixels). Q gives class 0 the top-left quarter plus 16
    background pixels (80 pixels: fraction 0.3125, 64 of them on the object) and class 1
    nothing. Class 0's map is brightest on the right half's top two rows (16 background
    pixels), then on the top 4 rows of the object (32 pixels), then on the rest, so its
    top 80 pixels are those 48 plus the next 32 in scan order (the object's rows 4-7)."""
    data, maps, q_dir = tmp_path / 'data', tmp_path / 'maps', tmp_path / 'q'
    os.makedirs(data / 'SegmentationClass')
    os.makedirs(maps / 'probs')
    os.makedirs(q_dir)
    gt = np.zeros((16, 16), np.uint8)
    gt[:, :8] = 1
    gt[8:, 8:] = 2
    q = np.zeros_like(gt)
    q[:8, :8] = 1
    q[8, 8:] = 1
    q[9, 8:] = 1
    x0 = np.zeros((16, 16), np.float32)
    x0[:2, 8:] = 9
    x0[:4, :8] = 8
    x0[4:8, :8] = 5
    x0[8:, :8] = 5 - 1e-3  # below rows 4-7 of the object, above the background's 0
    x1 = np.where(gt == 2, 3., 0.).astype(np.float32)
    Image.fromarray(gt).save(data / 'SegmentationClass' / 'a.png')
    Image.fromarray(q).save(q_dir / 'a.png')
    save_maps_npz(str(maps / 'probs' / 'a.npz'), np.stack([x0, x1]), np.array([0, 1]),
                  np.full(2, 0.5, np.float32))
    return str(maps), str(q_dir), str(data)


def test_counts_by_hand(bench, tmp_path):
    maps, q_dir, data = _make_run(tmp_path)
    r = bench.measure(maps, q_dir, data)
    assert r['maps'] == 2
    assert r['q_empty'] == pytest.approx(0.5)  # class 1
    # ratios 0.3125 / 0.5 = 0.625 (class 0) and 0 / 0.25 (class 1): median 0.3125
    assert r['q_over_gt'] == pytest.approx(0.3125)
    assert r['top_object'] == pytest.approx(64 / 80)
    assert r['top_background'] == pytest.approx(16 / 80)
    assert r['top_other'] == pytest.approx(0)
    assert r['q_object'] == pytest.approx(64 / 80)


def test_top_pixels_follow_the_map_not_q(bench):
    """Q only sets how many pixels are pushed up: the same Q on a map that is brightest on
    the other class's object puts every top pixel there."""
    gt = np.zeros((4, 4), np.uint8)
    gt[:2] = 1
    gt[2:] = 2
    q = np.where(gt == 1, 1, 0).astype(np.uint8)  # Q is exactly class 0's object
    x = np.where(gt == 2, 4., 1.)[None].astype(np.float32)
    (rec, ) = bench.image_counts(x, np.array([0]), q, gt, min_pixels=1)
    assert rec['top'] == 8 and rec['top_object'] == 0 and rec['top_background'] == 0
    assert rec['q_object'] == 8


def test_ignored_q_pixels_are_not_counted(bench):
    gt = np.ones((4, 4), np.uint8)
    q = np.full((4, 4), 255, np.uint8)
    q[0] = 1  # 4 valid pixels, all class 0: fraction 1 of the valid ones
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    (rec, ) = bench.image_counts(x, np.array([0]), q, gt, min_pixels=1)
    assert rec['q_fraction'] == 1 and rec['top'] == 4


def test_main_writes_the_table_and_refuses_bad_input(bench, tmp_path):
    maps, q_dir, data = _make_run(tmp_path)
    out = tmp_path / 'seeds.md'
    bench.main([maps, q_dir, data, '--names', 'run', '--out', str(out)])
    assert '| run | 2 | 0.31 | 50 % | 80.0 % | 20.0 % | 0.0 % | 80.0 % |' in out.read_text()
    with pytest.raises(SystemExit):
        bench.main([maps, q_dir])  # not a triple
    with pytest.raises(SystemExit):
        bench.main([maps, q_dir, data, '--names', 'a', 'b'])
    with pytest.raises(SystemExit, match='no Q map for a'):
        bench.main([maps, str(tmp_path), data])
    with pytest.raises(SystemExit, match='no saved maps'):
        bench.main([str(tmp_path), q_dir, data])
