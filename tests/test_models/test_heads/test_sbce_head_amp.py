# Copyright (c) mmseg-sbce contributors.
"""The demo's classifier (TinyCNN + SBCEHead) under CPU bfloat16 autocast, in every mode:
losses and gradients close to float32 on the same batch."""
import pytest
import torch
from mmengine.structures import PixelData

from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg_sbce.models.heads import TRAIN_MODES

C = 6


def build():
    torch.manual_seed(0)
    backbone = MODELS.build(dict(type='TinyCNN', channels=(32, 32, 64, 96, 96)))
    head = MODELS.build(dict(type='SBCEHead', in_channels=96, num_classes=C,
                             logit_scale_init=0.4))
    backbone.init_weights()
    head.init_weights()
    # Train-mode BatchNorm would make the two passes' statistics part of the comparison.
    return backbone.eval(), head


def make_batch():
    """Four 64x64 images; each has two classes with rectangular objects in its Q map."""
    g = torch.Generator().manual_seed(1)
    images = torch.randn(4, 3, 64, 64, generator=g)
    samples = []
    for i in range(4):
        seg = torch.zeros(64, 64, dtype=torch.long)
        seg[8 * i:8 * i + 24, 10:40] = i + 1
        seg[40:60, 4 * i:4 * i + 20] = (i + 2) % C + 1
        seg[:2] = 255
        labels = torch.zeros(C)
        labels[[i, (i + 2) % C]] = 1
        sample = SegDataSample(gt_sem_seg=PixelData(data=seg[None]))
        sample.gt_labels = labels
        samples.append(sample)
    return images, samples


def losses_and_grads(backbone, head, mode, amp):
    head.set_train_mode(mode)
    backbone.zero_grad()
    head.zero_grad()
    images, samples = make_batch()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
        losses = head.loss(backbone(images), samples)
        total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    grads = {n: p.grad.clone() for n, p in head.named_parameters() if p.grad is not None}
    grads['backbone'] = torch.cat([p.grad.flatten() for p in backbone.parameters()])
    return {k: v.detach().float() for k, v in losses.items()}, grads


@pytest.mark.parametrize('mode', TRAIN_MODES)
def test_bf16_autocast_matches_float32(mode):
    backbone, head = build()
    ref_losses, ref_grads = losses_and_grads(backbone, head, mode, amp=False)
    losses, grads = losses_and_grads(backbone, head, mode, amp=True)
    # Autocast really ran the network in bfloat16.
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert head(backbone(make_batch()[0]))[0].dtype == torch.bfloat16
    for key, ref in ref_losses.items():
        assert torch.isfinite(losses[key]), key
        # bfloat16 keeps 8 bits of mantissa: about 1e-3 relative through the network.
        torch.testing.assert_close(losses[key], ref, rtol=1e-2, atol=1e-3, msg=key)
    for name, ref in ref_grads.items():
        grad = grads[name].float()
        assert torch.isfinite(grad).all(), name
        if ref.abs().sum() == 0:
            assert grad.abs().sum() == 0, name
        else:
            rel = ((grad - ref).norm() / ref.norm()).item()
            assert rel < 3e-2, (name, rel)
    if mode != 'bce':
        # The logit scale trains in both SBCE sub-phases (KL term), the branch in one.
        assert grads['T'].abs().sum() > 0
    if mode == 'sbce-threshold':
        assert grads['conv_thr.weight'].abs().sum() > 0
