# Copyright (c) mmseg-sbce contributors.
import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mmseg_sbce.apis import label_cam, save_maps_npz
from mmseg_sbce.evaluation import (build_report, confusion_matrix, evaluate_label_dir,
                                   metrics_from_confusion, read_split, sweep_values,
                                   threshold_sweep, write_report)


def test_confusion_matrix_by_hand_with_255_rules():
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 255], [2, 0, 1, 255]], np.uint8)
    cm = confusion_matrix(pred, gt, 3)
    # Rows: gt 0..2; columns: pred 0..2 and "255". GT 255 pixels are not counted at all.
    expected = np.array([
        [1, 1, 0, 0],  # gt 0: one right, one called 1
        [0, 1, 0, 1],  # gt 1: one right, one unsure (a miss)
        [1, 0, 1, 0],  # gt 2: one right, one called 0
    ])
    np.testing.assert_array_equal(cm, expected)
    m = metrics_from_confusion(cm)
    # IoU_c = TP / (GT_c + Pred_c - TP); the unsure pixel is in GT_1 only.
    np.testing.assert_allclose(m['iou'], [1 / (2 + 2 - 1), 1 / (2 + 2 - 1), 1 / (2 + 1 - 1)])
    assert m['miou'] == pytest.approx(np.mean([1 / 3, 1 / 3, 1 / 2]))
    assert m['pixel_acc'] == pytest.approx(3 / 6)
    assert m['unsure_fraction'] == pytest.approx(1 / 6)
    assert m['num_pixels'] == 6


def test_unsure_is_a_miss_not_a_false_positive():
    gt = np.array([1, 1, 1, 1, 0, 0], np.uint8)
    all_unsure = confusion_matrix(np.full(6, 255, np.uint8), gt, 2)
    m = metrics_from_confusion(all_unsure)
    np.testing.assert_array_equal(m['iou'], [0.0, 0.0])
    half = metrics_from_confusion(confusion_matrix(np.array([1, 1, 255, 255, 0, 0],
                                                            np.uint8), gt, 2))
    # Class 1: TP 2, GT 4, Pred 2 -> 0.5; background: TP 2, GT 2, Pred 2 -> 1.
    np.testing.assert_allclose(half['iou'], [1.0, 0.5])


def test_absent_class_left_out_and_bad_ids():
    gt = np.array([0, 0, 1], np.uint8)
    m = metrics_from_confusion(confusion_matrix(np.array([0, 0, 1], np.uint8), gt, 3))
    assert np.isnan(m['iou'][2]) and m['miou'] == 1.0
    with pytest.raises(ValueError, match='prediction holds ids'):
        confusion_matrix(np.array([0, 0, 7], np.uint8), gt, 3)
    with pytest.raises(ValueError, match='ground truth holds ids'):
        confusion_matrix(gt, np.array([0, 0, 9], np.uint8), 3)
    with pytest.raises(ValueError, match='shape'):
        confusion_matrix(gt[:2], gt, 3)


def _write_png(path, arr):
    Image.fromarray(np.asarray(arr, np.uint8), mode='L').save(path)


@pytest.fixture
def label_dirs(tmp_path):
    rng = np.random.default_rng(0)
    gt_dir, pred_dir = tmp_path / 'gt', tmp_path / 'pred'
    gt_dir.mkdir()
    pred_dir.mkdir()
    ids, total = [], np.zeros((4, 5), np.int64)
    for i in range(40):
        gt = rng.integers(0, 4, (9, 11))
        gt[0] = 255
        pred = np.where(rng.random(gt.shape) < 0.7, gt, rng.integers(0, 4, gt.shape))
        pred[pred == 255] = 0
        pred[rng.random(gt.shape) < 0.05] = 255
        _write_png(gt_dir / f'{i:03d}.png', gt)
        _write_png(pred_dir / f'{i:03d}.png', pred)
        ids.append(f'{i:03d}')
        total += confusion_matrix(pred.astype(np.uint8), gt.astype(np.uint8), 4)
    split = tmp_path / 'split.txt'
    split.write_text('\n'.join(ids) + '\n')
    return str(pred_dir), str(gt_dir), str(split), total


def test_evaluate_dir_serial_parallel_and_missing(label_dirs):
    pred_dir, gt_dir, split, total = label_dirs
    ids = read_split(split)
    serial = evaluate_label_dir(pred_dir, gt_dir, ids, 4, workers=0)
    parallel = evaluate_label_dir(pred_dir, gt_dir, ids, 4, workers=2)
    np.testing.assert_array_equal(serial['confusion'], total)
    np.testing.assert_array_equal(parallel['confusion'], total)
    with pytest.raises(ValueError, match=r'2 of 42 .*nope_a, nope_b'):
        evaluate_label_dir(pred_dir, gt_dir, ids + ['nope_a', 'nope_b'], 4)
    # --allow-missing: a missing prediction is all-255, i.e. every labelled pixel a miss.
    gt_only = osp.join(gt_dir, 'extra.png')
    _write_png(gt_only, [[1, 1, 255], [2, 0, 0]])
    res = evaluate_label_dir(pred_dir, gt_dir, ids + ['extra'], 4, allow_missing=True)
    expected = total.copy()
    expected[[1, 2, 0], 4] += [2, 1, 2]
    np.testing.assert_array_equal(res['confusion'], expected)
    assert res['missing'] == ['extra']


def _logit(p):
    p = np.asarray(p, np.float64)
    return np.log(p / (1 - p)).astype(np.float32)


def _sweep_fixture(tmp_path, probs_list, gts, classes_list, thrs=None):
    gt_dir, probs_dir = tmp_path / 'gt', tmp_path / 'probs'
    gt_dir.mkdir(exist_ok=True)
    probs_dir.mkdir(exist_ok=True)
    ids = []
    for i, (p, g, c) in enumerate(zip(probs_list, gts, classes_list)):
        _write_png(gt_dir / f'{i}.png', g)
        # the fixtures are written as probabilities; the files hold their logits
        save_maps_npz(str(probs_dir / f'{i}.npz'), _logit(p), np.asarray(c),
                      None if thrs is None else thrs[i])
        ids.append(str(i))
    return str(probs_dir), str(gt_dir), ids


def test_sweep_picks_the_right_threshold(tmp_path):
    # Object pixels score 0.45, background pixels 0.35: only thresholds in [0.35, 0.45)
    # separate them; on the grid 0.1..0.9 that is 0.4 alone.
    probs = np.full((1, 6, 8), 0.35, np.float32)
    probs[0, 2:5, 2:6] = 0.45
    gt = np.zeros((6, 8), np.uint8)
    gt[2:5, 2:6] = 2  # class index 1 -> id 2
    gt[0, 0] = 255
    probs_dir, gt_dir, ids = _sweep_fixture(tmp_path, [probs], [gt], [[1]], thrs=[[0.5]])
    res = threshold_sweep(probs_dir, gt_dir, ids, sweep_values(0.1, 0.9, 0.1), 3,
                          normalize_cam=False)
    assert res['thresholds'][0] == 0.1 and res['thresholds'][-1] == 0.9
    assert len(res['thresholds']) == 9
    assert res['best_threshold'] == pytest.approx(0.4)
    assert res['best_miou'] == pytest.approx(1.0)
    assert max(m for t, m in zip(res['thresholds'], res['miou']) if t != 0.4) < 1.0
    # Adaptive (eq. 9, no dCRF) from the saved t' = 0.5: everything background.
    np.testing.assert_allclose(res['adaptive']['iou'], [35 / 47, np.nan, 0.0])
    # Their confusion matrices (rows: ground truth 0..2; columns: prediction 0..2, 255):
    # 35 background pixels, 12 of class id 2, one ignored.
    np.testing.assert_array_equal(res['adaptive']['confusion'],
                                  [[35, 0, 0, 0], [0, 0, 0, 0], [12, 0, 0, 0]])
    np.testing.assert_array_equal(res['best']['confusion'],
                                  [[35, 0, 0, 0], [0, 0, 0, 0], [0, 0, 12, 0]])


def test_sweep_matches_brute_force(tmp_path):
    rng = np.random.default_rng(3)
    probs_list, gts, classes = [], [], []
    for i in range(5):
        k = i % 3  # 0, 1 or 2 positive classes
        cls = sorted(rng.choice(4, size=k, replace=False).tolist())
        # probabilities whose logits survive the float16 file exactly
        logit = rng.normal(0, 3, (k, 7, 9)).astype(np.float16).astype(np.float32)
        probs_list.append(1 / (1 + np.exp(-logit.astype(np.float64))))
        g = rng.integers(0, 5, (7, 9)).astype(np.uint8)
        g[rng.random(g.shape) < 0.1] = 255
        gts.append(g)
        classes.append(cls)
    probs_dir, gt_dir, ids = _sweep_fixture(tmp_path, probs_list, gts, classes)
    thresholds = sweep_values(0.0, 0.95, 0.05)
    for normalize in (True, False):
        res = threshold_sweep(probs_dir, gt_dir, ids, thresholds, 5, normalize_cam=normalize,
                              workers=2)
        assert res['adaptive'] is None  # no thresholds were saved
        for j, thr in enumerate(thresholds):
            cm = np.zeros((5, 6), np.int64)
            for p, g, c in zip(probs_list, gts, classes):
                full = np.zeros((4, ) + g.shape, np.float32)
                full[c] = _logit(p).astype(np.float16).astype(np.float32)
                cm += confusion_matrix(label_cam(full, thr, c, normalize_cam=normalize), g, 5)
            assert res['miou'][j] == pytest.approx(metrics_from_confusion(cm)['miou'])


def test_report_writer(tmp_path, label_dirs):
    pred_dir, gt_dir, split, _ = label_dirs
    ids = read_split(split)
    result = evaluate_label_dir(pred_dir, gt_dir, ids, 4, workers=0)
    probs = np.full((1, 4, 4), 0.6, np.float32)
    gt = np.ones((4, 4), np.uint8)
    (tmp_path / 'sweep').mkdir()
    probs_dir, gt2, sids = _sweep_fixture(tmp_path / 'sweep', [probs], [gt], [[0]],
                                          thrs=[[0.4]])
    sweep = threshold_sweep(probs_dir, gt2, sids, sweep_values(0.2, 0.8, 0.3), 4,
                            normalize_cam=False)
    report = build_report(pred_dir, gt_dir, result, sweep, sweep_range=(0.2, 0.8, 0.3))
    md, js = write_report(report, str(tmp_path / 'rep' / 'eval'))
    text = open(md).read()
    data = json.load(open(js))
    assert 'mIoU' in text and 'class_3' in text and '0.2 to 0.8 step 0.3' in text
    assert 'chosen with ground truth' in text and '255 rule' in text
    assert data['prediction']['miou'] == pytest.approx(result['miou'])
    assert data['sweep']['range'] == [0.2, 0.8, 0.3]
    assert data['sweep']['thresholds'] == [0.2, 0.5, 0.8]
    # Adaptive: 0.6 > t' = 0.4 everywhere -> class id 1 only (other classes absent).
    assert data['sweep']['adaptive']['miou'] == pytest.approx(1.0)
    assert data['sweep']['adaptive']['iou'][0] is None  # NaN is written as null
    assert len(data['prediction']['confusion']) == 4


def test_sweep_flags_a_best_threshold_on_the_edge(tmp_path):
    # Object 0.97, background 0.92 and 0.85: only thresholds in [0.92, 0.97) separate them;
    # a range 0.5..0.9 gets closest at its last threshold (the 0.85 pixels become
    # background) and cannot reach the optimum: the best lies on the edge.
    probs = np.full((1, 6, 8), 0.92, np.float32)
    probs[0, :, :4] = 0.85
    probs[0, 2:5, 2:6] = 0.97
    gt = np.zeros((6, 8), np.uint8)
    gt[2:5, 2:6] = 2
    probs_dir, gt_dir, ids = _sweep_fixture(tmp_path, [probs], [gt], [[1]])
    res = threshold_sweep(probs_dir, gt_dir, ids, sweep_values(0.5, 0.9, 0.1), 3,
                          normalize_cam=False)
    assert res['best_threshold'] == pytest.approx(0.9) and res['best_on_edge'] is True
    assert res['best_miou'] < 1.0
    # The default range (DEFAULT_SWEEP, 0.01..0.99) holds the optimum inside.
    from mmseg_sbce.evaluation import DEFAULT_SWEEP
    res = threshold_sweep(probs_dir, gt_dir, ids, sweep_values(*DEFAULT_SWEEP), 3,
                          normalize_cam=False)
    assert res['best_threshold'] == pytest.approx(0.92) and res['best_on_edge'] is False
    assert res['best_miou'] == pytest.approx(1.0)
    report = build_report('pred', gt_dir, evaluate_label_dir_stub(gt), sweep=res)
    md = write_report(report, str(tmp_path / 'rep'))[0]
    assert 'lies on an edge' not in open(md).read()
    res_edge = threshold_sweep(probs_dir, gt_dir, ids, sweep_values(0.5, 0.9, 0.1), 3,
                               normalize_cam=False)
    md = write_report(build_report('pred', gt_dir, evaluate_label_dir_stub(gt),
                                   sweep=res_edge), str(tmp_path / 'rep2'))[0]
    assert 'lies on an edge' in open(md).read()


def evaluate_label_dir_stub(gt):
    """The result of evaluating a perfect prediction of ``gt`` (for building a report)."""
    cm = confusion_matrix(gt, gt, 3)
    result = metrics_from_confusion(cm)
    result.update(confusion=cm, num_images=1, missing=[], gt_missing=[])
    return result


def test_missing_ground_truth_is_skipped_with_allow_missing(tmp_path):
    gt_dir, pred_dir = tmp_path / 'gt', tmp_path / 'pred'
    gt_dir.mkdir()
    pred_dir.mkdir()
    gt = np.zeros((4, 4), np.uint8)
    gt[1:3, 1:3] = 1
    for img_id in ('a', 'b'):
        Image.fromarray(gt, mode='L').save(gt_dir / f'{img_id}.png')
        Image.fromarray(gt, mode='L').save(pred_dir / f'{img_id}.png')
    Image.fromarray(gt, mode='L').save(pred_dir / 'c.png')
    with pytest.raises(ValueError, match=r'no ground truth.*c .*--allow-missing'):
        evaluate_label_dir(str(pred_dir), str(gt_dir), ['a', 'b', 'c'], 2)
    res = evaluate_label_dir(str(pred_dir), str(gt_dir), ['a', 'b', 'c'], 2,
                             allow_missing=True)
    assert res['gt_missing'] == ['c'] and res['num_images'] == 2 and res['miou'] == 1.0
