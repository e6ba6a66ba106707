# Copyright (c) mmseg-sbce contributors.
import numpy as np
import pytest

from mmseg_sbce.models.irn import irn_seed_labels, resolve_seed_cfg

NO_CRF = dict(crf=dict(enabled=False))


def test_fixed_rule_by_hand():
    # CAMs relu(x) / max: class 2 -> [1, .5, .2, .02, 0, 0]; class 4 peaks on the last pixel.
    logits = np.array([[[10, 5, 2, 0.2, -1, -1]], [[-1, -1, -1, -1, 1, 10]]], np.float32)
    seeds = irn_seed_labels(None, logits, [2, 4], cfg=dict(high=0.3, low=0.05, **NO_CRF))
    # high (0.3): fg px 0, 1, 5; low (0.05): fg px 0, 1, 2, 4 (CAM .1), 5; bg in both: px 3.
    assert seeds.tolist() == [[3, 3, 255, 0, 255, 5]]


def test_adaptive_rule_by_hand():
    logits = np.array([[[3.0, 0.2, -0.2, -3.0]]], np.float32)  # p = .95 .55 .45 .05
    seeds = irn_seed_labels(None, logits, [0], thr=[0.5],
                            cfg=dict(mode='adaptive', margin=0.1, **NO_CRF))
    # high t' = .6: fg px 0; low t' = .4: fg px 0, 1, 2; bg in both: px 3.
    assert seeds.tolist() == [[1, 255, 255, 0]]


def test_adaptive_needs_thresholds():
    logits = np.zeros((1, 2, 2), np.float32)
    with pytest.raises(ValueError, match='mapped thresholds'):
        irn_seed_labels(None, logits, [0], thr=[np.nan], cfg=dict(mode='adaptive', **NO_CRF))
    with pytest.raises(ValueError, match='mapped thresholds'):
        irn_seed_labels(None, logits, [0], thr=None, cfg=dict(mode='adaptive', **NO_CRF))


def test_no_classes_and_bad_cfg():
    assert (irn_seed_labels(None, np.zeros((0, 3, 4)), []) == 0).all()
    with pytest.raises(ValueError, match='low < high'):
        resolve_seed_cfg(dict(high=0.05, low=0.3))
    with pytest.raises(KeyError, match='crf.sigma'):
        resolve_seed_cfg(dict(crf=dict(sigma=1)))
    with pytest.raises(ValueError, match='RGB image'):
        irn_seed_labels(None, np.zeros((1, 3, 4)), [0])


def test_with_dense_crf():
    img = np.full((24, 24, 3), 40, np.uint8)
    img[6:18, 6:18] = 220  # a bright square
    yy, xx = np.mgrid[:24, :24]
    dist = np.maximum(abs(yy - 11.5), abs(xx - 11.5))
    logits = (8.0 - dist)[None].astype(np.float32)  # CAM peaks in the centre, 0 outside 8 px
    seeds = irn_seed_labels(img, logits, [1])
    assert set(np.unique(seeds).tolist()) <= {0, 2, 255}
    assert seeds[12, 12] == 2 and seeds[0, 0] == 0
    assert seeds.shape == (24, 24) and seeds.dtype == np.uint8
