# Copyright (c) mmseg-sbce contributors.
import math

import pytest
import torch

from mmseg_sbce.models.losses import percentile_threshold


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
