# Copyright (c) mmseg-sbce contributors.
import numpy as np
import pytest
import torch

from mmseg_sbce.models.losses import target_fractions


def test_by_hand_with_ignore_and_foreign_ids():
    seg = torch.full((1, 4, 5), 255)
    seg[0, 0] = 1  # 5 pixels of class 0
    seg[0, 1, :2] = 0  # 2 background
    seg[0, 1, 2] = 7  # a labelled pixel of no class (id > C)
    seg[0, 1, 3] = 3  # 1 pixel of class 2
    frac, num_labelled = target_fractions(seg, 3, 255)
    assert num_labelled == 9
    assert frac.dtype == torch.float32
    torch.testing.assert_close(frac, torch.tensor([5 / 9, 0., 1 / 9]))


def test_no_labelled_pixel_gives_zeros():
    frac, num_labelled = target_fractions(torch.full((3, 3), 255), 4, 255)
    assert num_labelled == 0 and frac.shape == (4, ) and (frac == 0).all()


def test_matches_numpy_reference_on_random_maps():
    rng = np.random.default_rng(0)
    for _ in range(5):
        seg = rng.integers(0, 6, size=(1, 17, 13))
        seg[rng.random(seg.shape) < 0.3] = 255
        labelled = seg[seg != 255]
        expected = np.array([(labelled == c + 1).sum() for c in range(5)]) / labelled.size
        frac, num_labelled = target_fractions(torch.from_numpy(seg), 5, 255)
        assert num_labelled == labelled.size
        np.testing.assert_allclose(frac.numpy(), expected, rtol=1e-6)


def test_ignore_index_that_is_a_class_id_is_refused():
    with pytest.raises(ValueError, match='ignore_index 3'):
        target_fractions(torch.zeros(2, 2), 3, 3)
