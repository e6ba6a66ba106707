# Copyright (c) mmseg-sbce contributors.
import math

import pytest
import torch

from mmseg_sbce.models.losses import ProportionKLLoss, binary_kl, proportion_kl_loss


def kl(p: float, q: float) -> float:
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def const_logits(probs):
    """[B, C, 2, 2] logits whose maps have constant probability probs[b][c]."""
    p = torch.tensor(probs, dtype=torch.float64)
    return torch.logit(p)[:, :, None, None].expand(-1, -1, 2, 2).clone()


def test_value_by_hand():
    logits = const_logits([[0.5, 0.2, 0.9], [0.3, 0.6, 0.1]])
    labels = torch.tensor([[1., 1., 0.], [0., 1., 0.]])
    target = torch.tensor([[0.25, 0.4, 0.5], [0.5, 0.6, 0.5]])
    loss = proportion_kl_loss(logits, labels, target)
    expected = (kl(0.5, 0.25) + kl(0.2, 0.4) + kl(0.6, 0.6)) / 3
    assert kl(0.5, 0.25) == pytest.approx(0.1438410, abs=1e-6)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_predicted_fraction_is_spatial_mean():
    # half the pixels at p=0.9, half at p=0.1: P = 0.5, so KL against 0.5 is 0.
    logits = torch.logit(torch.tensor([0.9, 0.9, 0.1, 0.1], dtype=torch.float64))
    loss = proportion_kl_loss(
        logits.view(1, 1, 2, 2), torch.ones(1, 1), torch.full((1, 1), 0.5))
    assert loss.item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize('valid', [torch.tensor([True, False]),
                                   torch.tensor([[True, True], [False, False]])])
def test_valid_mask_excludes_samples(valid):
    logits = const_logits([[0.5, 0.2], [0.3, 0.6]])
    labels = torch.ones(2, 2)
    target = torch.tensor([[0.25, 0.4], [0.9, 0.9]])
    loss = proportion_kl_loss(logits, labels, target, valid=valid)
    assert loss.item() == pytest.approx((kl(0.5, 0.25) + kl(0.2, 0.4)) / 2, rel=1e-6)


def test_finite_at_target_and_prediction_extremes():
    logits = torch.tensor([[-1e4, 0., 1e4, 3.]], dtype=torch.float32)[:, :, None, None]
    logits = logits.expand(1, 4, 3, 3).clone().requires_grad_()
    labels = torch.ones(1, 4)
    for target in (torch.zeros(1, 4), torch.ones(1, 4), torch.tensor([[0., 1., 0., 1.]])):
        logits.grad = None
        loss = proportion_kl_loss(logits, labels, target)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # P = 0 against Q = 0 and P = 1 against Q = 1 cost nothing.
    exact = binary_kl(torch.tensor([0., 1.]), torch.tensor([0., 1.]))
    assert torch.equal(exact, torch.zeros(2))


def test_no_positive_pair_gives_zero_with_graph():
    logits = torch.zeros(2, 3, 2, 2, requires_grad=True)
    loss = proportion_kl_loss(logits, torch.zeros(2, 3), torch.rand(2, 3))
    loss.backward()
    assert loss.item() == 0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_gradient_pulls_fraction_towards_target():
    logits = torch.zeros(1, 1, 2, 2, requires_grad=True)  # P = 0.5
    proportion_kl_loss(logits, torch.ones(1, 1), torch.full((1, 1), 0.2)).backward()
    assert (logits.grad > 0).all()  # descent lowers P towards 0.2


def test_module_api_and_errors():
    module = ProportionKLLoss(loss_weight=0.5)
    assert module.loss_name == 'loss_kl'
    logits = const_logits([[0.5]])
    out = module(logits, torch.ones(1, 1), torch.full((1, 1), 0.25))
    assert out.item() == pytest.approx(0.5 * kl(0.5, 0.25), rel=1e-6)
    with pytest.raises(ValueError):
        proportion_kl_loss(logits[0], torch.ones(1, 1), torch.ones(1, 1))
    with pytest.raises(ValueError):
        proportion_kl_loss(logits, torch.ones(1, 1), torch.ones(1, 2))
    with pytest.raises(ValueError):
        proportion_kl_loss(logits, torch.ones(1, 1), torch.ones(1, 1), valid=torch.ones(3))


def test_valid_pixels_predicted_fraction_is_mean_over_the_image():
    logits = const_logits([[0.2, 0.6]])  # [1, 2, 2, 2]
    logits[0, :, 1, :] = 10.  # the bottom row is padding
    valid = torch.tensor([[[True, True], [False, False]]])
    labels = torch.tensor([[1., 1.]])
    target = torch.tensor([[0.25, 0.5]])
    loss = proportion_kl_loss(logits, labels, target, valid_pixels=valid)
    assert loss.item() == pytest.approx((kl(0.2, 0.25) + kl(0.6, 0.5)) / 2, rel=1e-6)
