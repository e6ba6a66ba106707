# Copyright (c) mmseg-sbce contributors.
import numpy as np
import pytest
import torch

from mmseg_sbce.models.irn import (REFINE_CFG_DEFAULTS, InterPixelAffinityLoss, pair_offsets,
                                   path_points, random_walk, refine_labels, resolve_refine_cfg,
                                   sparse_transition)


def dense_reference(maps, boundary, radius, beta, exp_times):
    """IRN's dense walk, written pair by pair: A over all pixel pairs within the radius
    (1 - max B on the path), A ** beta, ones on the diagonal, T = A / colsum, squared
    ``exp_times`` times, applied to ``maps * (1 - B)``."""
    h, w = boundary.shape
    n = h * w
    a = torch.eye(n, dtype=boundary.dtype)
    for y in range(h):
        for x in range(w):
            for dy, dx in pair_offsets(radius):
                qy, qx = y + dy, x + dx
                if not (0 <= qy < h and 0 <= qx < w):
                    continue
                peak = max(boundary[y + py, x + px].item() for py, px in path_points(dy, dx))
                value = (1 - peak)**beta
                a[y * w + x, qy * w + qx] = value
                a[qy * w + qx, y * w + x] = value
    trans = a / a.sum(0, keepdim=True)
    for _ in range(exp_times):
        trans = trans @ trans
    x = (maps * (1 - boundary)).reshape(maps.shape[0], n)
    return (x @ trans).reshape(maps.shape)


@pytest.mark.parametrize('exp_times', [0, 3, 8])
def test_sparse_walk_matches_dense_reference(exp_times):
    gen = torch.Generator().manual_seed(0)
    boundary = torch.rand(6, 7, generator=gen, dtype=torch.float64) * 0.6
    boundary[:, 3] = 0.95  # a wall
    maps = torch.rand(2, 6, 7, generator=gen, dtype=torch.float64)
    got = random_walk(maps, boundary, radius=3, beta=10.0, exp_times=exp_times)
    ref = dense_reference(maps, boundary, radius=3, beta=10.0, exp_times=exp_times)
    assert torch.allclose(got, ref, rtol=1e-9, atol=1e-12)
    got32 = random_walk(maps.float(), boundary.float(), radius=3, exp_times=exp_times)
    assert torch.allclose(got32.double(), ref, rtol=1e-4, atol=1e-6)


def test_transition_rows_sum_to_one():
    trans = sparse_transition(torch.rand(5, 4), radius=2).to_dense()
    assert torch.allclose(trans.sum(1), torch.ones(20))
    assert torch.allclose(trans.diagonal(), trans.diagonal().clamp(min=0))


def test_refine_labels_stops_at_a_boundary():
    logits = torch.full((1, 32, 32), -5.0)
    logits[0, 12:20, 0:6] = 10.0  # the class map only covers a strip on the left
    boundary = torch.zeros(8, 8)
    boundary[:, 4] = 1.0  # a wall between grid columns 0-3 and 5-7
    labels = refine_labels(logits, [2], boundary)
    assert labels.dtype == np.uint8 and labels.shape == (32, 32)
    assert (labels[:, :13] == 3).all()  # spread over the whole left region
    assert (labels[:, 20:] == 0).all()  # not across the wall


def test_refine_labels_edge_cases():
    assert (refine_labels(torch.zeros(0, 9, 10), [], torch.zeros(3, 3)) == 0).all()
    with pytest.raises(ValueError, match='stride-4 grid'):
        refine_labels(torch.zeros(1, 9, 10), [0], torch.zeros(2, 3))
    with pytest.raises(ValueError, match='class indices'):
        refine_labels(torch.zeros(1, 8, 8), [0, 1], torch.zeros(2, 2))
    with pytest.raises(KeyError, match='unknown key'):
        resolve_refine_cfg(dict(alpha=1))
    with pytest.raises(ValueError, match='bg_threshold'):
        resolve_refine_cfg(dict(bg_threshold=1.5))


def test_refine_defaults_are_the_notes():
    """The walk's defaults are the project notes' (docs/irn.md): the neighbourhood is the
    training pairs' radius 10, beta 10, 2^8 steps, background 0.25; and they are in effect."""
    assert REFINE_CFG_DEFAULTS == dict(radius=10, beta=10.0, exp_times=8, bg_threshold=0.25)
    assert InterPixelAffinityLoss().radius == REFINE_CFG_DEFAULTS['radius']
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 64, 64, generator=gen) * 4
    boundary = torch.rand(16, 16, generator=gen) * 0.5
    labels = refine_labels(logits, [0, 3], boundary, dict(exp_times=2))
    assert (labels == refine_labels(logits, [0, 3], boundary,
                                    dict(exp_times=2, radius=10))).all()
    assert (labels != refine_labels(logits, [0, 3], boundary,
                                    dict(exp_times=2, radius=5))).any()
