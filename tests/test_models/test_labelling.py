# Copyright (c) mmseg-sbce contributors.
import pytest
import torch

from mmseg_sbce.models.labelling import eq9_scores, label_eq9, map_threshold


@pytest.mark.parametrize('t, s', [(0.5, 10.0), (0.3, 10.0), (0.9, 4.0), (0.05, 25.0)])
def test_pixel_at_learned_threshold_sits_at_mapped_threshold(t, s):
    t = torch.tensor([t], dtype=torch.float64)
    s = torch.tensor([s], dtype=torch.float64)
    x = torch.logit(t) / s  # the unscaled logit with sigmoid(s * x) == t
    torch.testing.assert_close(torch.sigmoid(s * x), t)
    torch.testing.assert_close(torch.sigmoid(x), map_threshold(t, s))
    torch.testing.assert_close(
        map_threshold(torch.logit(t), s, from_logits=True), map_threshold(t, s))


def test_mapping_moves_thresholds_towards_half():
    t = torch.tensor([0.1, 0.5, 0.9])
    mapped = map_threshold(t, torch.full((3, ), 10.0))
    assert mapped[0] > 0.1 and mapped[1] == 0.5 and mapped[2] < 0.9
    torch.testing.assert_close(map_threshold(t, 1.0), t)


def test_label_eq9_by_hand():
    probs = torch.tensor([[[0.6, 0.2, 0.5, 0.9]],   # class 0, t = 0.5
                          [[0.4, 0.4, 0.5, 0.95]]])  # class 1, t = 0.3
    thr = torch.tensor([0.5, 0.3])
    # scores: c0 = [.1, -.3, 0, .4], c1 = [.1, .1, .2, .65]
    assert label_eq9(probs, thr).tolist() == [[1, 2, 2, 2]]  # tie .1/.1 -> first class
    assert label_eq9(probs, thr, torch.tensor([1., 0.])).tolist() == [[1, 0, 0, 1]]
    # fixed background threshold == eq. 9 with a constant t
    assert label_eq9(probs, 0.55).tolist() == [[1, 0, 0, 2]]
    none = torch.zeros(2)
    assert label_eq9(probs, thr, none).tolist() == [[0, 0, 0, 0]]


def test_equal_to_threshold_is_background_and_batched_shapes():
    probs = torch.full((2, 3, 4, 5), 0.4)
    thr = torch.full((2, 3), 0.4)
    assert (label_eq9(probs, thr) == 0).all()
    scores = eq9_scores(probs, thr, torch.tensor([[1, 0, 1], [0, 0, 0]]))
    assert scores.shape == (2, 4, 4, 5)
    assert (scores[:, 0] == 0).all() and (scores[0, 2] == -2).all()
    with pytest.raises(ValueError):
        label_eq9(torch.rand(4, 5), 0.5)
