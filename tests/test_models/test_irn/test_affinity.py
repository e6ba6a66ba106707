# Copyright (c) mmseg-sbce contributors.
import math

import pytest
import torch

from mmseg_sbce.models.irn import (InterPixelAffinityLoss, affinity_targets,
                                   inter_pixel_affinity_loss, pair_affinity, pair_offsets,
                                   path_points)


def test_offsets_half_plane_within_radius():
    offsets = pair_offsets(3)
    assert offsets == ((0, 1), (0, 2), (1, -2), (1, -1), (1, 0), (1, 1), (1, 2), (2, -2),
                       (2, -1), (2, 0), (2, 1), (2, 2))
    # Every unordered pair once: no offset together with its negation.
    assert not set(offsets) & {(-dy, -dx) for dy, dx in offsets}
    with pytest.raises(ValueError, match='radius'):
        pair_offsets(1)


def test_path_points():
    assert path_points(0, 2) == ((0, 0), (0, 1), (0, 2))
    assert path_points(1, 1) == ((0, 0), (1, 1))
    assert path_points(3, -1) == ((0, 0), (1, 0), (2, -1), (3, -1))


def test_pair_affinity_by_hand():
    boundary = torch.tensor([[[0.1, 0.2], [0.3, 0.4]]])
    aff, inside = pair_affinity(boundary, 2)  # offsets (0,1) (1,-1) (1,0) (1,1)
    assert pair_offsets(2) == ((0, 1), (1, -1), (1, 0), (1, 1))
    expected_inside = torch.tensor([[[1, 0], [1, 0]], [[0, 1], [0, 0]], [[1, 1], [0, 0]],
                                    [[1, 0], [0, 0]]], dtype=torch.bool)
    assert torch.equal(inside, expected_inside)
    got = aff[0][inside]
    # (0,0)-(0,1), (1,0)-(1,1), (0,1)-(1,0), (0,0)-(1,0), (0,1)-(1,1), (0,0)-(1,1)
    assert torch.allclose(got, torch.tensor([0.8, 0.6, 0.7, 0.7, 0.6, 0.6]))


def test_affinity_targets_and_loss_by_hand():
    boundary = torch.tensor([[[0.1, 0.3, 0.05, 0.6]]])
    seeds = torch.tensor([[[0, 0, 1, 255]]])
    pos_bg, pos_fg, neg = affinity_targets(seeds, 3)
    assert int(pos_bg.sum()) == 1 and int(pos_fg.sum()) == 0 and int(neg.sum()) == 2
    loss, stats = inter_pixel_affinity_loss(boundary, seeds, radius=3)
    # bg pair (0,1): a = 0.7; negative pairs (1,2) and (0,2): a = 0.7; no fg pair.
    eps = 1e-5
    expected = ((-math.log(0.7 + eps) + 0.0) / 2 - math.log(1 + eps - 0.7)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert stats['pairs_neg'].item() == 2


def test_loss_fg_pairs_and_gradient():
    boundary = torch.tensor([[[0.2, 0.5], [0.1, 0.4]]], requires_grad=True)
    seeds = torch.tensor([[[2, 2], [0, 0]]])
    loss, stats = inter_pixel_affinity_loss(boundary, seeds, radius=2)
    # fg: (0,0)-(0,1) a=.5; bg: (1,0)-(1,1) a=.6; neg: (0,1)-(1,0) a=.5, (0,0)-(1,0) a=.8,
    # (0,1)-(1,1) a=.5, (0,0)-(1,1) a=.6.
    eps = 1e-5
    neg = -sum(math.log(1 + eps - a) for a in (0.5, 0.8, 0.5, 0.6)) / 4
    expected = ((-math.log(0.6 + eps) - math.log(0.5 + eps)) / 2 + neg) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert boundary.grad is not None and torch.isfinite(boundary.grad).all()
    module = InterPixelAffinityLoss(radius=2, loss_weight=2.0)
    assert module(boundary, seeds)[0].item() == pytest.approx(2 * expected, rel=1e-5)
    assert 'loss' in module.loss_name


def test_all_unknown_seeds_give_zero_loss():
    loss, stats = inter_pixel_affinity_loss(torch.rand(1, 3, 3), torch.full((1, 3, 3), 255),
                                            radius=2)
    assert loss.item() == 0.0 and stats['pairs_bg'].item() == 0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match='same shape'):
        inter_pixel_affinity_loss(torch.rand(1, 3, 3), torch.zeros(1, 3, 4, dtype=torch.long))
