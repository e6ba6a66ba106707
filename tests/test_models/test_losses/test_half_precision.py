# Copyright (c) mmseg-sbce contributors.
"""Spatial-BCE, the KL term and the percentile on float16 / bfloat16 inputs (AMP).

The inputs have the VOC training shape at output stride 8 (368 / 8 = 46) and the range of
scaled logits (logit scale 10), with saturated maps: float16 sums of these terms overflow.
"""
import pytest
import torch

from mmseg_sbce.models.losses import (percentile_threshold, proportion_kl_loss,
                                      spatial_bce_loss)
from mmseg_sbce.models.losses.base_loss import upcast_half

HALF = [torch.float16, torch.bfloat16]
# Loss scale for float16 gradients, as GradScaler's initial one: unscaled, the per-pixel
# gradients of a mean over B x C x H x W terms sit in float16's subnormal range.
GRAD_SCALE = {torch.float16: 2.**16, torch.bfloat16: 1.}


def realistic_case():
    torch.manual_seed(0)
    B, C, H, W = 4, 20, 46, 46
    logits = (torch.randn(B, C, H, W) * 3 - 2) * 10
    logits[0, :3, :10] = 250.  # saturated object
    logits[1, 5:8, 20:] = -250.  # saturated background
    labels = torch.zeros(B, C)
    labels[0, :3] = 1
    labels[1, 5:8] = 1
    labels[2, 10] = 1
    labels[3, [1, 19]] = 1
    fraction = torch.rand(B, C) * 0.6
    return logits, labels, fraction, percentile_threshold(logits, fraction)


def test_float32_and_float64_are_not_touched():
    for dtype in (torch.float32, torch.float64):
        t = torch.ones(2, dtype=dtype)
        assert upcast_half(t) is t
    assert upcast_half(torch.ones(2, dtype=torch.float16)).dtype == torch.float32


@pytest.mark.parametrize('reduction', ['mean', 'side_mean'])
@pytest.mark.parametrize('dtype', HALF)
def test_spatial_bce_half_logits(dtype, reduction):
    logits, labels, _, thr = realistic_case()
    ref = spatial_bce_loss(logits, labels, thr, reduction=reduction)
    half = logits.to(dtype).requires_grad_()
    half_thr = thr.to(dtype).requires_grad_()
    loss = spatial_bce_loss(half, labels, half_thr, reduction=reduction)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    # The loss only differs from float32 by the rounding of its inputs: on the rounded
    # values in float32 it is the same number...
    rounded = half.detach().float().requires_grad_()
    rounded_thr = half_thr.detach().float().requires_grad_()
    same = spatial_bce_loss(rounded, labels, rounded_thr, reduction=reduction)
    assert loss.item() == same.item()
    # ...and close to the loss of the unrounded logits.
    assert loss.item() == pytest.approx(ref.item(), rel=1e-3)
    # Gradients: those of the rounded float32 inputs, cast to the input's dtype.
    scale = GRAD_SCALE[dtype]
    (loss * scale).backward()
    same.backward()
    grad, grad_ref = (half_thr.grad, rounded_thr.grad) if reduction == 'side_mean' else \
        (half.grad, rounded.grad)
    assert grad.dtype == dtype and torch.isfinite(grad).all()
    rtol = 1e-2 if dtype == torch.bfloat16 else 1e-3
    torch.testing.assert_close(grad.float() / scale, grad_ref, rtol=rtol,
                               atol=rtol * grad_ref.abs().max().item())


@pytest.mark.parametrize('dtype', HALF)
def test_proportion_kl_half_logits(dtype):
    logits, labels, fraction, _ = realistic_case()
    ref = proportion_kl_loss(logits, labels, fraction)
    half = logits.to(dtype).requires_grad_()
    loss = proportion_kl_loss(half, labels, fraction)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-4)
    rounded = half.detach().float().requires_grad_()
    proportion_kl_loss(rounded, labels, fraction).backward()
    (loss * GRAD_SCALE[dtype]).backward()
    rtol = 1e-2 if dtype == torch.bfloat16 else 1e-3
    torch.testing.assert_close(half.grad.float() / GRAD_SCALE[dtype], rounded.grad,
                               rtol=rtol, atol=rtol * rounded.grad.abs().max().item())


@pytest.mark.parametrize('dtype', HALF)
def test_percentile_half_logits(dtype):
    logits, _, fraction, _ = realistic_case()
    half = logits.to(dtype)
    thr = percentile_threshold(half, fraction)
    assert thr.dtype == dtype
    # A selection: the same value as on the rounded logits in float32.
    torch.testing.assert_close(thr.float(), percentile_threshold(half.float(), fraction),
                               rtol=0, atol=0)


@pytest.mark.parametrize('reduction', ['mean', 'side_mean'])
def test_losses_under_cpu_autocast(reduction):
    logits, labels, fraction, thr = realistic_case()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        half = logits.to(torch.bfloat16)
        sbce = spatial_bce_loss(half, labels, thr, reduction=reduction)
        kl = proportion_kl_loss(half, labels, fraction)
    assert sbce.dtype == kl.dtype == torch.float32
    assert sbce.item() == pytest.approx(
        spatial_bce_loss(logits, labels, thr, reduction=reduction).item(), rel=1e-3)
    assert kl.item() == pytest.approx(proportion_kl_loss(logits, labels, fraction).item(),
                                      rel=1e-4)
