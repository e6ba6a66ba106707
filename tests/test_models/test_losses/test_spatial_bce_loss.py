# Copyright (c) mmseg-sbce contributors.
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmseg_sbce.models.losses import (SpatialBCELoss, positive_uncertainty,
                                      positive_uncertainty_from_logits, spatial_bce_loss)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def make_case():
    """B=1, C=3, 1x2 maps: class 0 positive (t=.4), class 1 negative, class 2 positive.
    The loss takes thresholds as logits: ``thr`` is ``logit(t)``."""
    probs = torch.tensor([[[[0.1, 0.7]], [[0.2, 0.5]], [[0.4, 0.9]]]], dtype=torch.float64)
    logits = torch.logit(probs)
    labels = torch.tensor([[1., 0., 1.]], dtype=torch.float64)
    thr = torch.logit(torch.tensor([[0.4, 0.5, 0.4]], dtype=torch.float64))
    return logits, labels, thr


# hand-computed terms of make_case()
BELOW_01 = 1 - (1 - 0.1 / 0.4)**2  # 0.4375 (p <= t)
ABOVE_07 = 1 - ((0.7 - 0.4) / 0.6)**2  # 0.75 (p > t)
AT_T = 1.0  # p == t
ABOVE_09 = 1 - ((0.9 - 0.4) / 0.6)**2  # 0.30555...
NEG_02 = -math.log(0.8)
NEG_05 = -math.log(0.5)


def test_positive_uncertainty_branches_by_hand():
    p = torch.tensor([0.1, 0.7, 0.4, 0.9], dtype=torch.float64)
    r = positive_uncertainty(p, torch.tensor(0.4, dtype=torch.float64))
    expected = torch.tensor([BELOW_01, ABOVE_07, AT_T, ABOVE_09], dtype=torch.float64)
    torch.testing.assert_close(r, expected)
    assert BELOW_01 == pytest.approx(0.4375) and ABOVE_07 == pytest.approx(0.75)


@pytest.mark.parametrize('t', [0.05, 0.3, 0.5, 0.8, 0.99])
def test_uncertainty_is_one_at_threshold_and_zero_at_ends(t):
    p = torch.tensor([0.0, t, 1.0], dtype=torch.float64)
    r = positive_uncertainty(p, torch.tensor(t, dtype=torch.float64))
    torch.testing.assert_close(r, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))


def test_mean_reduction_by_hand():
    logits, labels, thr = make_case()
    loss = spatial_bce_loss(logits, labels, thr)
    expected = (BELOW_01 + ABOVE_07 + NEG_02 + NEG_05 + AT_T + ABOVE_09) / 6
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_none_and_sum_reductions_agree_with_mean():
    logits, labels, thr = make_case()
    none = spatial_bce_loss(logits, labels, thr, reduction='none')
    assert none.shape == logits.shape
    torch.testing.assert_close(
        none[0, :, 0],
        torch.tensor([[BELOW_01, ABOVE_07], [NEG_02, NEG_05], [AT_T, ABOVE_09]],
                     dtype=torch.float64))
    total = spatial_bce_loss(logits, labels, thr, reduction='sum')
    torch.testing.assert_close(total, none.sum())


def test_side_mean_by_hand_and_excludes_negatives():
    logits, labels, thr = make_case()
    loss = spatial_bce_loss(logits, labels, thr, reduction='side_mean')
    below = (BELOW_01 + AT_T) / 2  # p = 0.1 and p = t are on the "<= t" side
    above = (ABOVE_07 + ABOVE_09) / 2
    assert loss.item() == pytest.approx(below + above, rel=1e-10)
    # Negative-class logits do not enter the threshold-phase reduction.
    moved = logits.clone()
    moved[0, 1] += 5
    assert spatial_bce_loss(moved, labels, thr, reduction='side_mean').item() == \
        pytest.approx(loss.item())


def test_side_mean_empty_side_contributes_zero():
    logits = torch.logit(torch.tensor([[[[0.1, 0.2]]]], dtype=torch.float64))
    labels = torch.ones(1, 1, dtype=torch.float64)
    thr = torch.zeros((1, 1), dtype=torch.float64, requires_grad=True)  # t = .5
    loss = spatial_bce_loss(logits, labels, thr, reduction='side_mean')
    expected = ((1 - (1 - 0.2)**2) + (1 - (1 - 0.4)**2)) / 2  # no pixel above t
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert torch.isfinite(thr.grad).all()
    # No positive class at all: 0, finite gradient.
    none_pos = spatial_bce_loss(logits, torch.zeros(1, 1), thr, reduction='side_mean')
    assert none_pos.item() == 0


def test_weight_drops_maps_and_rescales_mean():
    logits, labels, thr = make_case()
    weight = torch.tensor([[0., 1., 1.]], dtype=torch.float64)
    loss = spatial_bce_loss(logits, labels, thr, weight=weight)
    expected = (NEG_02 + NEG_05 + AT_T + ABOVE_09) / 4
    assert loss.item() == pytest.approx(expected)
    zero = spatial_bce_loss(logits, labels, thr, weight=torch.zeros_like(weight))
    assert zero.item() == 0


def test_matches_naive_reference_on_random_data():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 6, 7, dtype=torch.float64) * 3
    labels = (torch.rand(3, 5) < 0.4).double()
    thr = torch.rand(3, 5, dtype=torch.float64) * 0.9 + 0.05
    p = logits.sigmoid()
    t = thr[:, :, None, None]
    thr = torch.logit(thr)
    r = torch.where(p <= t, 1 - (1 - p / t)**2, 1 - ((p - t) / (1 - t))**2)
    neg = -torch.log(1 - p)
    y = labels[:, :, None, None]
    ref = (y * r + (1 - y) * neg).mean()
    torch.testing.assert_close(spatial_bce_loss(logits, labels, thr), ref)


def test_gradcheck_float64():
    torch.manual_seed(1)
    logits = (torch.randn(2, 3, 3, 4, dtype=torch.float64) * 2).requires_grad_()
    labels = torch.tensor([[1., 0., 1.], [0., 1., 1.]], dtype=torch.float64)
    thr = (torch.randn(2, 3, dtype=torch.float64) * 2).requires_grad_()
    for reduction in ('mean', 'side_mean', 'sum'):
        assert torch.autograd.gradcheck(
            lambda x, t: spatial_bce_loss(x, labels, t, reduction=reduction),
            (logits, thr))


@pytest.mark.parametrize('p, sign', [(0.8, -1), (0.95, -1), (0.2, 1), (0.05, 1)])
def test_gradient_sign_on_positive_class(p, sign):
    """Descent raises p above t (negative gradient) and lowers it below t (positive)."""
    probs = torch.tensor([p], dtype=torch.float64, requires_grad=True)
    positive_uncertainty(probs, torch.tensor(0.5, dtype=torch.float64)).sum().backward()
    assert torch.sign(probs.grad).item() == sign
    logits = torch.full((1, 1, 1, 1), logit(p), dtype=torch.float64, requires_grad=True)
    spatial_bce_loss(logits, torch.ones(1, 1), torch.zeros(1, 1)).backward()  # t = .5
    assert torch.sign(logits.grad).item() == sign


def test_gradient_is_zero_at_threshold():
    probs = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
    positive_uncertainty(probs, torch.tensor(0.3, dtype=torch.float64)).sum().backward()
    assert probs.grad.item() == 0


FINITE = st.one_of(
    st.sampled_from([0.0, 1e30, -1e30, 88.0, -88.0, 17.0, -17.0]),
    st.floats(min_value=-1e30, max_value=1e30, allow_nan=False))
THRESHOLD = FINITE  # threshold logits


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(FINITE, min_size=8, max_size=8),
    thrs=st.lists(THRESHOLD, min_size=2, max_size=2),
    labels=st.lists(st.booleans(), min_size=2, max_size=2),
    reduction=st.sampled_from(['mean', 'side_mean', 'sum']))
def test_finite_for_extreme_logits_and_thresholds(values, thrs, labels, reduction):
    logits = torch.tensor(values, dtype=torch.float32).view(1, 2, 2, 2).requires_grad_()
    thr = torch.tensor([thrs], dtype=torch.float32, requires_grad=True)
    y = torch.tensor([labels], dtype=torch.float32)
    loss = spatial_bce_loss(logits, y, thr, reduction=reduction)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all() and torch.isfinite(thr.grad).all()


def test_logit_form_equals_probability_form():
    torch.manual_seed(2)
    x = torch.randn(200, dtype=torch.float64) * 4
    xt = torch.randn(200, dtype=torch.float64) * 3
    torch.testing.assert_close(positive_uncertainty_from_logits(x, xt),
                               positive_uncertainty(x.sigmoid(), xt.sigmoid()))


def test_saturated_logits_keep_their_side():
    """Scaled logits in the hundreds: every sigmoid is 1, yet pixels above the percentile
    logit must be pushed up and pixels below it down (the probability form cannot tell)."""
    logits = torch.tensor([[[[300.0, 200.0, 120.0, -5.0]]]], requires_grad=True)
    thr = torch.tensor([[150.0]])  # between the 2nd and 3rd pixel
    assert (logits.sigmoid()[0, 0, 0, :3] == 1).all() and thr.sigmoid().item() == 1
    spatial_bce_loss(logits, torch.ones(1, 1), thr, reduction='sum').backward()
    grad = logits.grad[0, 0, 0]
    # above: descent never lowers them (0 where even exp(-150) underflows); the pixel far
    # below is pushed down
    assert (grad <= 0)[:2].all() and grad[3] > 0
    r = positive_uncertainty_from_logits(torch.tensor([300.0, 200.0, 120.0, -5.0],
                                                      dtype=torch.float64),
                                         torch.tensor(150.0, dtype=torch.float64))
    # 300 / 200 are above, (1 - p) / (1 - t) = exp(sp(150) - sp(x)) ~ 0 -> R ~ 0; 120 is
    # below but p / t = 1 -> R = 1 (it is at the threshold in probability); -5: r = p / t
    # = sigmoid(-5)
    s5 = 1 / (1 + math.exp(5))
    torch.testing.assert_close(r, torch.tensor([0.0, 0.0, 1.0, s5 * (2 - s5)],
                                               dtype=torch.float64))
    # a moderate case where the float32 probability form breaks and the logit form does
    # not: p = sigmoid(20) and t = sigmoid(18) are both 1 in float32
    x32 = torch.tensor([20.0, 16.0])
    t32 = torch.tensor(18.0)
    assert positive_uncertainty(x32.sigmoid(), t32.sigmoid()).tolist() == [1.0, 1.0]
    r32 = positive_uncertainty_from_logits(x32, t32)
    p, t = x32.double().sigmoid(), t32.double().sigmoid()  # float64 still resolves them
    r64 = torch.where(p <= t, 1 - (1 - p / t)**2, 1 - ((p - t) / (1 - t))**2)
    torch.testing.assert_close(r32.double(), r64, atol=1e-5, rtol=1e-4)
    assert r32[0] < 0.5  # above t: clearly away from it (p / t = 1 keeps 16 at R = 1)


def test_module_api_and_errors():
    logits, labels, thr = make_case()
    module = SpatialBCELoss(loss_weight=2.0)
    assert module.loss_name == 'loss_sbce'
    torch.testing.assert_close(module(logits, labels, thr),
                               2 * spatial_bce_loss(logits, labels, thr))
    torch.testing.assert_close(
        module(logits, labels, thr, reduction_override='side_mean'),
        2 * spatial_bce_loss(logits, labels, thr, reduction='side_mean'))
    with pytest.raises(ValueError):
        SpatialBCELoss(reduction='median')
    with pytest.raises(ValueError):
        spatial_bce_loss(logits[0], labels, thr)
    with pytest.raises(ValueError):
        spatial_bce_loss(logits, labels[:, :2], thr)
    with pytest.raises(ValueError):
        spatial_bce_loss(logits, labels, thr, weight=torch.ones(3))
