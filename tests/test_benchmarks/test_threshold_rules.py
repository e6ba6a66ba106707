# Copyright (c) mmseg-sbce contributors.
"""``benchmarks/threshold_rules.py`` on hand-made maps whose every cell is known."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mmseg_sbce.apis.label_io import save_maps_npz
from benchmark_loader import load_benchmark



@pytest.fixture(scope='module')
def bench():
    return load_benchmark('threshold_rules')


def _make_run(tmp_path, learned_second):
    """Two 16x16 images, 2 classes. Image a: class 0 on the left half (logit 4, else -4).
    Image b: class 0 on the top-left quarter, class 1 on the bottom-right quarter. The
    learned t' of image a is 0.5 (right); of image b ``learned_second``."""
    data, maps = tmp_path / 'data', tmp_path / 'maps'
    for sub in ('JPEGImages', 'SegmentationClass'):
        os.makedirs(data / sub)
    os.makedirs(maps / 'probs')
    with open(data / 'meta.json', 'w') as f:
        json.dump(dict(classes=['background', 'cat', 'dog']), f)
    gt_a = np.zeros((16, 16), np.uint8)
    gt_a[:, :8] = 1
    gt_b = np.zeros((16, 16), np.uint8)
    gt_b[:8, :8] = 1
    gt_b[8:, 8:] = 2
    for name, gt, classes, thr in (('a', gt_a, [0], [0.5]),
                                   ('b', gt_b, [0, 1], learned_second)):
        Image.fromarray(gt).save(data / 'SegmentationClass' / f'{name}.png')
        colours = np.array([[20, 20, 20], [200, 40, 40], [40, 40, 200]], np.uint8)
        Image.fromarray(colours[gt]).save(data / 'JPEGImages' / f'{name}.jpg', quality=100)
        logits = np.stack([np.where(gt == c + 1, 4., -4.) for c in classes]).astype(np.float32)
        save_maps_npz(str(maps / 'probs' / f'{name}.npz'), logits, np.array(classes),
                      np.array(thr, np.float32))
    return str(maps), str(data)


def _cells(table):
    rows = {}
    for line in table.splitlines():
        if line.startswith('| ') and '---' not in line and 'threshold rule' not in line:
            name, *cells = [c.strip() for c in line.strip('|').split('|')]
            rows[name] = cells
    return rows


def test_rules_on_known_maps(bench, tmp_path):
    """Clean two-level maps: every Otsu rule and the best constant label them exactly
    (100.0, foreground 50 % of the pixels); the learned t' of image b is 0.9999, above
    both of its maps' p = sigmoid(4) = 0.982, so image b is all background."""
    maps, data = _make_run(tmp_path, [0.9999, 0.9999])
    out = tmp_path / 'table.md'
    bench.main([maps, data, '--workers', '1', '--out', str(out)])
    rows = _cells(out.read_text())
    for rule in ('otsu logits', 'otsu probabilities', 'otsu logits, one per image'):
        assert rows[rule] == ['100.0 (50.0)', '100.0 (50.0)'], rule
    best = next(k for k in rows if k.startswith('best constant'))
    assert rows[best] == ['100.0 (50.0)', '100.0 (50.0)']
    # Learned: image a right (128 cat pixels), image b nothing (64 cat + 64 dog missed).
    # background: 128 + 128 true, 128 false -> 256 / 384; cat 128 / 192; dog 0 / 64.
    expected = 100 * np.mean([256 / 384, 128 / 192, 0.])
    assert rows['learned'][0] == f'{expected:.1f} (25.0)'


def test_no_crf_and_bad_input(bench, tmp_path, capsys):
    maps, data = _make_run(tmp_path, [0.5, 0.5])
    bench.main([maps, data, '--workers', '1', '--no-crf'])
    rows = _cells(capsys.readouterr().out)
    assert rows['learned'] == ['100.0 (50.0)', '-']
    with pytest.raises(SystemExit, match='no saved maps'):
        bench.main([str(tmp_path / 'nowhere'), data])
    os.remove(osp.join(data, 'meta.json'))
    with pytest.raises(SystemExit, match='--num-classes'):
        bench.main([maps, data])
    os.remove(osp.join(data, 'SegmentationClass', 'b.png'))
    with pytest.raises(FileNotFoundError, match='b.png'):
        bench.main([maps, data, '--num-classes', '2', '--workers', '1', '--no-crf'])


def test_cam_rules(bench, tmp_path):
    """--cam: the maps are max-normalised CAMs (object 1, background 0 here), so every
    rule is exact except a config threshold of 1.0, which labels nothing."""
    maps, data = _make_run(tmp_path, [0.5, 0.5])
    out = tmp_path / 'cam.md'
    bench.main([maps, data, '--workers', '1', '--no-crf', '--cam', '--out', str(out)])
    text = out.read_text()
    assert 'max-normalised CAMs' in text
    rows = _cells(text)
    assert set(rows) == {'config threshold', 'otsu CAM', 'otsu CAM, one per image',
                         next(k for k in rows if k.startswith('best constant'))}
    assert all(cells == ['100.0 (50.0)', '-'] for cells in rows.values())
    bench.main([maps, data, '--workers', '1', '--cam', '--cam-threshold', '1.0', '--out',
                str(out)])
    rows = _cells(out.read_text())
    # Nothing labelled: background IoU 256 / 512, the classes 0.
    assert rows['config threshold'] == [f'{100 * 0.5 / 3:.1f} (0.0)'] * 2


def test_q_fraction_rule(bench, tmp_path):
    """--q-dir: each map is thresholded at the fraction of its image Q gives its class.
    A Q equal to the ground truth labels the two-level maps exactly; a Q that gives the
    dog of image b no pixel leaves it unlabelled (its map's maximum is the threshold)."""
    maps, data = _make_run(tmp_path, [0.5, 0.5])
    q_dir = tmp_path / 'q'
    os.makedirs(q_dir)
    for name in ('a', 'b'):
        gt = np.array(Image.open(osp.join(data, 'SegmentationClass', f'{name}.png')))
        Image.fromarray(gt).save(q_dir / f'{name}.png')
    out = tmp_path / 'q.md'
    bench.main([maps, data, '--workers', '1', '--q-dir', str(q_dir), '--out', str(out)])
    rows = _cells(out.read_text())
    assert rows['Q fraction'] == ['100.0 (50.0)', '100.0 (50.0)']

    # Ties: image a's cat is a plateau of 128 equal values; a Q that gives the cat 96
    # pixels puts the threshold just below the plateau (128 labelled is nearer 96 than 0).
    q_a = np.array(Image.open(q_dir / 'a.png'))
    q_a[:, 6:8] = 0
    assert (q_a == 1).sum() == 96
    Image.fromarray(q_a).save(q_dir / 'a.png')
    bench.main([maps, data, '--workers', '1', '--no-crf', '--q-dir', str(q_dir), '--out',
                str(out)])
    assert _cells(out.read_text())['Q fraction'] == ['100.0 (50.0)', '-']
    # ... and stops above it when that is nearer: a Q with 48 cat pixels labels none.
    q_a[:, 3:] = 0
    assert (q_a == 1).sum() == 48
    Image.fromarray(q_a).save(q_dir / 'a.png')
    bench.main([maps, data, '--workers', '1', '--no-crf', '--q-dir', str(q_dir), '--out',
                str(out)])
    # image a all background: background 128 / 256, cat 64 / 192 (b's), dog 64 / 64.
    expected = 100 * np.mean([(128 + 128) / (256 + 128), 64 / 192, 1.])
    assert _cells(out.read_text())['Q fraction'] == [f'{expected:.1f} (25.0)', '-']
    q_a = np.array(Image.open(osp.join(data, 'SegmentationClass', 'a.png')))
    Image.fromarray(q_a).save(q_dir / 'a.png')

    q_b = np.array(Image.open(q_dir / 'b.png'))
    q_b[q_b == 2] = 0
    Image.fromarray(q_b).save(q_dir / 'b.png')
    bench.main([maps, data, '--workers', '1', '--no-crf', '--q-dir', str(q_dir), '--out',
                str(out)])
    rows = _cells(out.read_text())
    # background 256 right of 320 labelled or true; cat 192 / 192; dog 0 / 64.
    expected = 100 * np.mean([256 / 320, 1., 0.])
    assert rows['Q fraction'] == [f'{expected:.1f} (37.5)', '-']
    assert rows['learned'] == ['100.0 (50.0)', '-']  # the other rules are unchanged

    os.remove(q_dir / 'a.png')
    with pytest.raises(FileNotFoundError, match='a.png'):
        bench.main([maps, data, '--workers', '1', '--no-crf', '--q-dir', str(q_dir)])
    with pytest.raises(SystemExit, match='not with --cam'):
        bench.main([maps, data, '--cam', '--q-dir', str(q_dir)])
