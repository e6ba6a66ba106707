# Copyright (c) mmseg-sbce contributors.
"""Numpy front ends of the labelling rules and the labelling of one image."""
import numpy as np
import pytest
import torch

import mmseg_sbce  # noqa: F401
from mmseg_sbce.apis import (label_cam, label_eq9, map_threshold, pseudo_label_from_maps,
                             resolve_pseudo_cfg)
from mmseg_sbce.models.labelling import cam_from_logits


def test_map_threshold():
    t = torch.tensor([0.5, 0.9, 0.1, 0.3])
    s = torch.tensor([10.0, 10.0, 4.0, 1.0])
    mapped = map_threshold(t, s)
    # sigmoid(s * x) = t at x = logit(t'), i.e. t' is t seen in the unscaled space.
    assert torch.allclose(torch.sigmoid(s * torch.logit(mapped)), t, atol=1e-5)
    assert torch.allclose(mapped, torch.sigmoid(torch.logit(t) / s))
    assert mapped[0] == 0.5 and mapped[3] == pytest.approx(0.3)
    assert mapped[1] == pytest.approx(1 / (1 + np.exp(-np.log(9) / 10)), abs=1e-6)


def test_label_eq9_hand_made():
    # Classes 0..2; image labels {0, 2}; class 1 is absent however high its map.
    probs = np.array([
        [[0.9, 0.6, 0.2], [0.5, 0.10, 0.0]],  # class 0, t' = 0.5
        [[1.0, 1.0, 1.0], [1.0, 1.00, 1.0]],  # class 1, absent
        [[0.8, 0.9, 0.3], [0.5, 0.35, 0.0]],  # class 2, t' = 0.3
    ], np.float32)
    thr = np.array([0.5, 0.1, 0.3], np.float32)
    # S0 = [.4 .1 -.3 | 0 -.4 -.5]; S2 = [.5 .6 0 | .2 .05 -.3]
    expected = np.array([[3, 3, 0], [3, 3, 0]], np.uint8)
    out = label_eq9(probs, thr, gt_labels=[0, 2])
    np.testing.assert_array_equal(out, expected)
    multi_hot = np.array([1.0, 0.0, 1.0], np.float32)
    np.testing.assert_array_equal(label_eq9(probs, thr, multi_hot), expected)
    # S <= 0 everywhere -> background (eq. 9 uses a strict > 0).
    np.testing.assert_array_equal(label_eq9(probs, np.ones(3, np.float32), [0, 2]),
                                  np.zeros((2, 3), np.uint8))
    # Unsure rule: |max S| <= 0.1 -> 255 (pixels with max S 0.0 and 0.05).
    unsure = label_eq9(probs, thr, [0, 2], unsure_margin=0.1)
    np.testing.assert_array_equal(unsure, [[3, 3, 255], [3, 255, 0]])
    # No positive class -> all background.
    assert not label_eq9(probs, thr, []).any()


def test_label_cam_normalisation():
    logits = np.zeros((2, 1, 4), np.float32)
    logits[0, 0] = [-2.0, 1.0, 4.0, 0.5]  # p = [.12 .73 .98 .62], CAM [0 .25 1 .125]
    logits[1, 0] = [5.0, 0.8, -3.0, 4.5]  # p = [.99 .69 .05 .99], CAM [1 .16 0 .9]
    raw = label_cam(logits, 0.3, [0, 1], normalize_cam=False)
    np.testing.assert_array_equal(raw, [[2, 1, 1, 2]])
    norm = label_cam(logits, 0.3, [0, 1], normalize_cam=True)
    np.testing.assert_array_equal(norm, [[2, 0, 1, 2]])
    np.testing.assert_array_equal(label_cam(logits, 0.95, [0, 1]), [[2, 0, 1, 0]])


def test_cam_comes_from_logits_not_saturated_probabilities():
    # A GAP-BCE classifier's logits reach tens: sigmoid rounds them all to 1 (float32), so a
    # max-normalised probability would call every pixel foreground; the CAM keeps the order.
    logits = torch.tensor([[[40.0, 20.0, 5.0, -3.0]]])
    np.testing.assert_allclose(cam_from_logits(logits)[0, 0], [1.0, 0.5, 0.125, 0.0])
    np.testing.assert_array_equal(label_cam(logits, 0.3, [0]), [[1, 1, 0, 0]])
    assert (torch.sigmoid(logits[0, 0, :3]) == 1.0).sum() >= 2  # what normalising p loses
    assert cam_from_logits(torch.zeros(0, 3, 3)).shape == (0, 3, 3)
    assert (cam_from_logits(-torch.ones(1, 2, 2)) == 0).all()  # no positive logit: all 0


def test_pseudo_label_from_maps_crf_and_unsure():
    img = np.random.default_rng(0).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    probs = np.full((2, 16, 20), 0.0025, np.float32)
    probs[0, :, :8] = 0.9
    probs[1, :, 12:] = 0.8
    probs[1, :, 10:12] = 0.52
    probs = np.log(probs / (1 - probs))  # the maps are logits
    cfg = resolve_pseudo_cfg(dict(unsure=dict(margin=0.05)))
    pos = np.array([1, 4])
    out = pseudo_label_from_maps(img, probs, np.array([0.5, 0.5]), pos, cfg)
    assert set(np.unique(out)) <= {0, 2, 5, 255}
    assert (out[:, 10:12] == 255).all() and (out[:, :8] == 2).all()
    no_crf = resolve_pseudo_cfg(dict(crf=dict(enabled=False)))
    expected = np.zeros((16, 20), np.uint8)
    expected[:, :8], expected[:, 10:] = 2, 5  # ids c + 1 of the positive classes 1 and 4
    np.testing.assert_array_equal(
        pseudo_label_from_maps(img, probs, np.array([0.5, 0.5]), pos, no_crf), expected)
    cam = resolve_pseudo_cfg(dict(threshold=0.6, crf=dict(unary='probs')))
    out = pseudo_label_from_maps(img, probs, None, pos, cam)
    assert (out[:, :8] == 2).all() and (out[:, 13:] == 5).all()


def test_pseudo_label_from_maps_otsu_threshold():
    """threshold='otsu': each class map's t' is Otsu's split of its probabilities, so the
    learned thresholds are ignored (None is fine). Class 1: p 0.9 on 8 columns, 0.2
    elsewhere (split between the groups); class 4: p 0.7 on 4 columns, 0.6 on 2, 0.01
    elsewhere (the 0.6 columns go with 0.7, the split is between 0.01 and 0.6). A fixed
    t' = 0.65 would have left the 0.6 columns to the background."""
    img = np.zeros((4, 20, 3), np.uint8)
    probs = np.full((2, 4, 20), 0.2, np.float32)
    probs[0, :, :8] = 0.9
    probs[1] = 0.01
    probs[1, :, 14:18] = 0.7
    probs[1, :, 12:14] = 0.6
    logits = np.log(probs / (1 - probs))
    pos = np.array([1, 4])
    otsu = resolve_pseudo_cfg(dict(threshold='otsu', crf=dict(enabled=False)))
    expected = np.zeros((4, 20), np.uint8)
    expected[:, :8], expected[:, 12:18] = 2, 5
    np.testing.assert_array_equal(pseudo_label_from_maps(img, logits, None, pos, otsu),
                                  expected)
    np.testing.assert_array_equal(
        pseudo_label_from_maps(img, logits, np.array([0.99, 0.99]), pos, otsu), expected)
    learned = resolve_pseudo_cfg(dict(crf=dict(enabled=False)))
    fixed = pseudo_label_from_maps(img, logits, np.array([0.5, 0.65]), pos, learned)
    assert (fixed[:, 12:14] == 0).all()
    with pytest.raises(ValueError, match='threshold="otsu"'):
        pseudo_label_from_maps(img, logits, None, pos, learned)
