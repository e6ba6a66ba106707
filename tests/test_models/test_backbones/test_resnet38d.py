# Copyright (c) mmseg-sbce contributors.
import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mmseg.registry import MODELS
from mmseg_sbce.models.backbones import ResNet38d

TINY = 1 / 16


def conv(cin, cout, k):
    return cin * cout * k * k


def bn(c):
    return 2 * c  # affine weight and bias (running stats are buffers)


def res_block(cin, mid, cout, proj):
    return bn(cin) + conv(cin, mid, 3) + bn(mid) + conv(mid, cout, 3) + (
        conv(cin, cout, 1) if proj else 0)


def bottleneck(cin, cout):
    q, h = cout // 4, cout // 2
    return (bn(cin) + conv(cin, q, 1) + bn(q) + conv(q, h, 3) + bn(h) + conv(h, cout, 1) +
            conv(cin, cout, 1))


def expected_params(w):
    """Parameter count from the layer spec of the PSA-line ResNet-38d."""
    c = [int(round(x * w)) for x in (64, 128, 256, 512, 1024, 2048, 4096)]
    total = conv(3, c[0], 3)
    total += res_block(c[0], c[1], c[1], True) + 2 * res_block(c[1], c[1], c[1], False)
    total += res_block(c[1], c[2], c[2], True) + 2 * res_block(c[2], c[2], c[2], False)
    total += res_block(c[2], c[3], c[3], True) + 5 * res_block(c[3], c[3], c[3], False)
    total += res_block(c[3], c[3], c[4], True) + 2 * res_block(c[4], c[3], c[4], False)
    total += bottleneck(c[4], c[5]) + bottleneck(c[5], c[6]) + bn(c[6])
    return total


@pytest.mark.parametrize('widen_factor', [1.0, TINY])
def test_parameter_count(widen_factor):
    with torch.device('meta'):  # the full model costs no memory here
        model = ResNet38d(widen_factor=widen_factor)
    count = sum(p.numel() for p in model.parameters())
    assert count == expected_params(widen_factor)
    if widen_factor == 1.0:
        assert 104e6 < count < 106e6


def test_full_model_output_shape_and_stride():
    model = MODELS.build(dict(type='ResNet38d')).eval()
    with torch.no_grad():
        (out, ) = model(torch.randn(1, 3, 368, 368))
    assert out.shape == (1, 4096, 46, 46)
    assert (out >= 0).all()  # bn7 + ReLU


def test_tiny_stage_outputs():
    model = ResNet38d(widen_factor=TINY, out_indices=(0, 1, 2, 3, 4, 5)).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [(8, 32, 32), (16, 16, 16), (32, 8, 8),
                                                  (64, 8, 8), (128, 8, 8), (256, 8, 8)]
    assert model.stage_channels == (8, 16, 32, 64, 128, 256)


def test_b5_first_block_dilations():
    model = ResNet38d(widen_factor=TINY)
    assert model.b5.conv_branch2a.dilation == (1, 1)
    assert model.b5.conv_branch2b1.dilation == (2, 2)
    assert model.b5_1.conv_branch2a.dilation == (2, 2)
    assert model.b6.conv_branch2b1.dilation == (4, 4)
    assert model.b7.conv_branch2b1.dilation == (4, 4)
    assert model.b6.dropout_2b1.p == 0.3 and model.b7.dropout_2b2.p == 0.5
    assert not hasattr(model.b2_1, 'conv_branch1') and hasattr(model.b5, 'conv_branch1')


def test_frozen_stages_and_norm_eval_default():
    torch.manual_seed(0)
    model = ResNet38d(widen_factor=TINY)
    model.init_weights()
    model.train()
    frozen = ['conv1a', 'b2', 'b2_1', 'b2_2']
    for name, param in model.named_parameters():
        if name.split('.')[0] in frozen or '.bn' in name or name.startswith('bn7'):
            assert not param.requires_grad, name
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and model.b3.conv_branch2a.weight.requires_grad
    assert all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))
    assert not model.b2.training and model.b3.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optim = torch.optim.SGD(trainable, lr=0.1)
    model(torch.randn(2, 3, 32, 32))[0].mean().backward()
    optim.step()
    after = model.state_dict()
    for key in before:
        if key.split('.')[0] in frozen or 'bn' in key:  # BN stats too: eval mode
            assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before['b3.conv_branch2a.weight'], after['b3.conv_branch2a.weight'])


def test_nothing_frozen_when_configured_for_scratch_training():
    model = ResNet38d(
        widen_factor=TINY,
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=dict(type='BN', requires_grad=True))
    model.train()
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules() if isinstance(m, _BatchNorm))


def test_invalid_arguments():
    with pytest.raises(ValueError):
        ResNet38d(widen_factor=0)
    with pytest.raises(ValueError):
        ResNet38d(out_indices=(6, ))
    with pytest.raises(ValueError):
        ResNet38d(frozen_stages=7)
