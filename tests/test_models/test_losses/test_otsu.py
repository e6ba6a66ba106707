# Copyright (c) mmseg-sbce contributors.
import pytest
import torch

from mmseg_sbce.models.losses.otsu import otsu_threshold


def maps(*rows):
    """[1, len(rows), 1, N] from equal-length lists of values."""
    return torch.tensor(rows, dtype=torch.float32).view(1, len(rows), 1, -1)


def test_two_groups_split_in_the_middle_of_the_gap():
    """Values 0.1 (x6) and 0.9 (x2), 10 bins: every split between bin 1 and bin 8 scores
    the same; the middle one (after bin 4) gives t = 0.5."""
    t = otsu_threshold(maps([0.1] * 6 + [0.9] * 2), bins=10)
    torch.testing.assert_close(t, torch.tensor([[0.5]]))


def test_split_by_hand_on_three_values():
    """Values 0.05 (x4), 0.45 (x2), 0.95 (x2) in 10 bins (centres 0.05, 0.45, 0.95).
    Between-group variance n_lo n_hi (mu_lo - mu_hi)^2 / n^2:
    split after 0.05: 4 * 4 * (0.05 - 0.7)^2 = 6.76; after 0.45: 6 * 2 * (0.1833 -
    0.95)^2 = 7.05. The second wins; its gap spans bins 5-8, middle bin 6, t = 0.7."""
    t = otsu_threshold(maps([0.05] * 4 + [0.45] * 2 + [0.95] * 2), bins=10)
    torch.testing.assert_close(t, torch.tensor([[0.7]]))
    x = maps([0.05] * 4 + [0.45] * 2 + [0.95] * 2)[0, 0, 0]
    assert (x > 0.7).float().mean().item() == pytest.approx(0.25)


def test_never_an_edge_on_a_unimodal_map():
    """A single bump (no gap): the split lies inside the range of the values, leaving
    pixels on both sides (the paper's side-mean objective goes to an edge here)."""
    torch.manual_seed(0)
    x = (0.47 + 0.03 * torch.randn(400)).view(1, 1, 20, 20)
    t = otsu_threshold(x).item()
    above = (x > t).float().mean().item()
    assert 0.2 < above < 0.8


def test_own_range_for_logits():
    """value_range=None: bins over each map's [min, max]; logits -2 (x6) and 2 (x2) split
    in the middle of the gap, 0; a shifted copy of the map shifts the split with it."""
    x = maps([-2.] * 6 + [2.] * 2, [3.] * 6 + [7.] * 2)
    t = otsu_threshold(x, value_range=None)
    torch.testing.assert_close(t, torch.tensor([[0., 5.]]))
    # Padding excluded from the range as well as from the counts.
    img = torch.tensor([[-1., -1., 3.], [-90., -90., -90.]]).view(1, 1, 2, 3)
    valid = torch.tensor([[True] * 3, [False] * 3]).view(1, 2, 3)
    t = otsu_threshold(img, value_range=None, valid_pixels=valid).item()
    assert -1 < t < 3
    one = otsu_threshold(maps([4.] * 4), value_range=None)
    assert (maps([4.] * 4) > one).sum() == 0
    with pytest.raises(ValueError, match='value_range'):
        otsu_threshold(x, value_range=(1., 1.))


def test_mask_fill_and_one_valued_map():
    x = torch.cat([maps([0.1, 0.1, 0.9, 0.9]), maps([0.33] * 4)], dim=1)
    t = otsu_threshold(x, mask=torch.tensor([[True, True]]), bins=10)
    torch.testing.assert_close(t, torch.tensor([[0.5, 0.4]]))  # one bin: its upper edge
    assert (x[0, 1] > t[0, 1]).sum() == 0
    t = otsu_threshold(x, mask=torch.tensor([[False, True]]), bins=10, fill_value=-1.)
    torch.testing.assert_close(t, torch.tensor([[-1., 0.4]]))
    t = otsu_threshold(x, mask=torch.tensor([[False, False]]), fill_value=7.)
    torch.testing.assert_close(t, torch.tensor([[7., 7.]]))


def test_padding_is_not_counted():
    """Padded cells (here a column of 0.0 pixels, the image's zero padding) would form a
    group of their own; with valid_pixels they are ignored."""
    img = torch.tensor([[0.4, 0.4, 0.8], [0.4, 0.4, 0.8], [0.0, 0.0, 0.0]]).view(1, 1, 3, 3)
    valid = torch.tensor([[True] * 3, [True] * 3, [False] * 3]).view(1, 3, 3)
    t_all = otsu_threshold(img, bins=10).item()
    t_valid = otsu_threshold(img, bins=10, valid_pixels=valid).item()
    assert t_all < 0.4  # splits the padding off
    assert 0.4 < t_valid < 0.8
    with pytest.raises(ValueError, match='valid_pixels'):
        otsu_threshold(img, valid_pixels=valid[:, :2])


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision(dtype):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8)
    t = otsu_threshold(x.to(dtype))
    assert t.dtype == torch.float32
    torch.testing.assert_close(t, otsu_threshold(x.to(dtype).float()))


def test_bad_input():
    with pytest.raises(ValueError, match=r'\[B, C, H, W\]'):
        otsu_threshold(torch.rand(3, 4, 4))
    with pytest.raises(ValueError, match='bins'):
        otsu_threshold(torch.rand(1, 1, 4, 4), bins=1)
    with pytest.raises(ValueError, match='mask'):
        otsu_threshold(torch.rand(1, 2, 4, 4), mask=torch.ones(2, 1, dtype=torch.bool))
