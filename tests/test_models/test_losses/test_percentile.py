# Copyright (c) mmseg-sbce contributors.
import math

import numpy as np
import pytest
import torch

from mmseg_sbce.models.losses import count_split, percentile_threshold


def reference(probs, fraction):
    """Full descending sort, value at floor(f * N) clamped into range."""
    B, C, H, W = probs.shape
    n = H * W
    out = torch.empty(B, C, dtype=probs.dtype)
    for b in range(B):
        for c in range(C):
            ordered = probs[b, c].flatten().sort(descending=True).values
            idx = min(max(int(math.floor(float(fraction[b, c]) * n)), 0), n - 1)
            out[b, c] = ordered[idx]
    return out


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_matches_full_sort_including_fraction_0_and_1(dtype):
    torch.manual_seed(0)
    probs = torch.rand(3, 4, 5, 7, dtype=dtype)
    probs[0, 0] = 0.5  # ties
    fraction = torch.rand(3, 4, dtype=dtype)
    fraction[0, 1], fraction[1, 2], fraction[2, 3] = 0.0, 1.0, 0.999
    out = percentile_threshold(probs, fraction)
    torch.testing.assert_close(out, reference(probs, fraction), rtol=0, atol=0)
    assert out[0, 1] == probs[0, 1].max() and out[1, 2] == probs[1, 2].min()


def test_exact_indices_on_a_known_map():
    probs = torch.arange(10, dtype=torch.float32).view(1, 1, 2, 5) / 10  # 0.0 .. 0.9
    for frac, value in [(0.0, 0.9), (0.1, 0.8), (0.25, 0.7), (0.3, 0.6), (1.0, 0.0)]:
        out = percentile_threshold(probs, torch.tensor([[frac]]))
        assert out.item() == pytest.approx(value)


def test_mask_fill_and_detached():
    probs = torch.rand(2, 3, 4, 4, requires_grad=True)
    fraction = torch.full((2, 3), 0.5)
    mask = torch.tensor([[True, False, False], [False, False, True]])
    out = percentile_threshold(probs, fraction, mask=mask, fill_value=-1.0)
    assert not out.requires_grad
    assert (out[~mask] == -1).all()
    torch.testing.assert_close(out[mask], reference(probs.detach(), fraction)[mask])
    empty = percentile_threshold(probs, fraction, mask=torch.zeros(2, 3, dtype=torch.bool))
    assert (empty == 0.5).all()


def test_selection_on_logits_commutes_with_sigmoid():
    torch.manual_seed(2)
    logits = torch.randn(2, 3, 6, 6) * 4
    fraction = torch.rand(2, 3)
    torch.testing.assert_close(
        percentile_threshold(logits, fraction).sigmoid(),
        percentile_threshold(logits.sigmoid(), fraction))


def test_bad_shapes():
    with pytest.raises(ValueError):
        percentile_threshold(torch.rand(3, 4, 4), torch.rand(3, 4))
    with pytest.raises(ValueError):
        percentile_threshold(torch.rand(2, 3, 4, 4), torch.rand(3, 2))


def test_valid_pixels_select_over_the_image_only():
    torch.manual_seed(2)
    probs = torch.rand(2, 3, 5, 6)
    fraction = torch.rand(2, 3)
    valid = torch.zeros(2, 5, 6, dtype=torch.bool)
    valid[0, :3, :4] = True  # sample 0: a 3 x 4 crop padded at the bottom and right
    valid[1] = True
    out = percentile_threshold(probs, fraction, valid_pixels=valid)
    torch.testing.assert_close(out[:1], reference(probs[:1, :, :3, :4], fraction[:1]))
    torch.testing.assert_close(out[1:], reference(probs[1:], fraction[1:]))
    with pytest.raises(ValueError, match='valid_pixels must be'):
        percentile_threshold(probs, fraction, valid_pixels=valid[:, :4])
    with pytest.raises(ValueError, match='without any valid pixel'):
        percentile_threshold(probs, fraction, valid_pixels=torch.zeros_like(valid))


# ------------------------------------------------------------------------- count_split
def test_count_split_by_hand():
    """Map [5, 4, 4, 4, 1, 0, 0, 0, 0, 0] (N = 10), thresholds labelling ``value > thr``:

    - fraction 0.1: rank 1 is 4, a plateau of three; labelling it gives 4 pixels (3 away
      from the wanted 1), not labelling it 1 (exact): split between 5 and 4, at 4.5;
    - fraction 0.3: want 3; 4 (the plateau, 1 away) beats 1 (2 away): split at 2.5;
    - fraction 0.25: want 2.5; 4 is 1.5 away, 1 is 1.5 away: the smaller count, at 4.5;
    - fraction 0.5: want 5, rank 5 is 0, a plateau of five: 5 (exact) beats 10, split
      between 1 and 0 at 0.5;
    - fraction 0: label nothing (thr is the maximum, no split);
    - fraction 1: label everything (thr just below the minimum, no split).
    """
    row = np.array([5, 4, 4, 4, 1, 0, 0, 0, 0, 0], np.float32)
    fractions = [0.1, 0.3, 0.25, 0.5, 0.0, 1.0]
    thr, split = count_split(np.tile(row, (6, 1)).reshape(6, 2, 5), fractions)
    assert thr.dtype == np.float32
    np.testing.assert_array_equal(thr[:4], [4.5, 2.5, 4.5, 0.5])
    assert split.tolist() == [True, True, True, True, False, False]
    assert thr[4] == 5 and (row > thr[4]).sum() == 0
    assert thr[5] < 0 and (row > thr[5]).sum() == 10
    for t, want in zip(thr, [1, 4, 1, 5, 0, 10]):
        assert (row > t).sum() == want


def test_count_split_between_adjacent_values():
    """No float16 lies strictly between two adjacent ones: the split is the lower value,
    which still labels exactly the higher one."""
    low = np.float16(16.0)
    high = np.nextafter(low, np.float16(np.inf))
    thr, split = count_split(np.array([[high, low, low, low]], np.float16), [0.25])
    assert split.tolist() == [True] and thr[0] == low
    assert (np.array([high, low, low, low]) > thr[0]).sum() == 1


def test_count_split_matches_the_percentile_rank():
    """Without ties the percentile's value p, at rank floor(fraction * N), offers two
    counts: ``> p`` (floor(fraction * N) pixels) and ``>= p`` (one more); the split takes
    the nearer to fraction * N."""
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(4, 7, 9)).astype(np.float32)
    fractions = np.array([0.05, 0.3, 0.61, 0.9])  # fraction * 63: 3.15, 18.9, 38.43, 56.7
    thr, split = count_split(maps, fractions)
    assert split.all()
    pct = percentile_threshold(torch.from_numpy(maps)[None],
                               torch.from_numpy(fractions)[None].float())[0].numpy()
    for m, t, p, plus_one in zip(maps, thr, pct, [False, True, False, True]):
        labelled = (m >= p) if plus_one else (m > p)
        np.testing.assert_array_equal(m > t, labelled)
    assert [int((m > t).sum()) for m, t in zip(maps, thr)] == [3, 19, 38, 57]


def test_count_split_errors():
    with pytest.raises(ValueError, match='2 maps but 1 fractions'):
        count_split(np.zeros((2, 3, 3)), [0.5])
