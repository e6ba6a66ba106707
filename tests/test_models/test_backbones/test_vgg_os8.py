# Copyright (c) mmseg-sbce contributors.
"""VGG16OS8: output stride, channels, freezing, and ImageNet weight conversion."""
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn

from mmseg.registry import MODELS
from mmseg_sbce.models.backbones.vgg_os8 import (VGG16_CONV_NAMES, VGG16OS8,
                                                 VGGCheckpointError,
                                                 check_vgg16_os8_state_dict,
                                                 convert_vgg16_state_dict,
                                                 detect_vgg16_format, unwrap_state_dict)

BLOCKS = (2, 2, 3, 3, 3)
# Convolution positions in mmpretrain 1.2.0's VGG(depth=16) ``features`` (ConvModule x n,
# then MaxPool per stage), checked against an instance of that class.
MMPRETRAIN_CONV_INDICES = (0, 1, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 16)


def channels(base):
    return (base, 2 * base, 4 * base, 8 * base, 8 * base)


def torchvision_vgg16(base=64, hidden=4096, num_classes=1000):
    """A state dict with torchvision's ``vgg16`` layout (conv, ReLU, ..., MaxPool)."""
    torch.manual_seed(0)
    layers, prev = [], 3
    for n, ch in zip(BLOCKS, channels(base)):
        for _ in range(n):
            layers += [nn.Conv2d(prev, ch, 3, padding=1), nn.ReLU(True)]
            prev = ch
        layers.append(nn.MaxPool2d(2, 2))
    classifier = nn.Sequential(
        nn.Linear(prev * 49, hidden), nn.ReLU(True), nn.Dropout(),
        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
        nn.Linear(hidden, num_classes))
    return nn.ModuleDict(dict(features=nn.Sequential(*layers),
                              classifier=classifier)).state_dict()


def mmpretrain_vgg16(base=8, hidden=16, prefix='backbone.'):
    """A state dict with mmpretrain's ``ImageClassifier(backbone=VGG(depth=16))`` keys."""
    torch.manual_seed(1)
    state, prev = OrderedDict(), 3
    chans = [ch for n, ch in zip(BLOCKS, channels(base)) for _ in range(n)]
    for index, ch in zip(MMPRETRAIN_CONV_INDICES, chans):
        state[f'{prefix}features.{index}.conv.weight'] = torch.randn(ch, prev, 3, 3)
        state[f'{prefix}features.{index}.conv.bias'] = torch.randn(ch)
        prev = ch
    for i, (cin, cout) in zip((0, 3, 6), ((prev * 49, hidden), (hidden, hidden),
                                          (hidden, 10))):
        state[f'{prefix}classifier.{i}.weight'] = torch.randn(cout, cin)
        state[f'{prefix}classifier.{i}.bias'] = torch.randn(cout)
    return state


# ---------------------------------------------------------------------- the network
@pytest.mark.parametrize('size, out', [(321, 41), (320, 40), (64, 8)])
def test_output_stride_8(size, out):
    model = VGG16OS8(base_channels=4, fc_channels=8, out_indices=(0, 1, 2, 3, 4, 5))
    model.eval()
    with torch.no_grad():
        feats = model(torch.rand(1, 3, size, size))
    sizes = [f.shape[-1] for f in feats]
    assert sizes[2:] == [out] * 4  # stride 8 from pool3 on, through fc7
    assert sizes[:2] == [-(-size // 2), -(-size // 4)]
    assert [f.shape[1] for f in feats] == [4, 8, 16, 32, 32, 8] == model.out_channels


def test_full_width_channels_and_registry():
    model = MODELS.build(dict(type='VGG16OS8'))
    assert isinstance(model, VGG16OS8) and model.out_channels == [1024]
    assert model.fc6.conv.dilation == (12, 12) and model.stage5[0].conv.dilation == (2, 2)
    model.eval()
    with torch.no_grad():
        (feat, ) = model(torch.rand(1, 3, 41, 41))
    assert feat.shape == (1, 1024, 6, 6)
    no_fc = VGG16OS8(with_fc=False)
    assert no_fc.out_channels == [512] and not hasattr(no_fc, 'fc6')


def test_bad_arguments():
    with pytest.raises(ValueError, match='out_indices'):
        VGG16OS8(base_channels=2, with_fc=False, out_indices=(5, ))
    with pytest.raises(ValueError, match='frozen_stages'):
        VGG16OS8(base_channels=2, frozen_stages=6)


def test_frozen_stages_and_norm_eval():
    model = VGG16OS8(base_channels=2, fc_channels=4, frozen_stages=2,
                     norm_cfg=dict(type='BN'), norm_eval=True)
    model.train()
    for name in ('stage1', 'stage2'):
        stage = getattr(model, name)
        assert not stage.training
        assert all(not p.requires_grad for p in stage.parameters())
    assert all(p.requires_grad for p in model.stage3.parameters())
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 15 and all(not m.training for m in bns)
    assert model.stage3.training
    loss = model(torch.rand(2, 3, 24, 24))[0].sum()
    loss.backward()
    assert model.stage1[0].conv.weight.grad is None
    assert model.stage3[0].conv.weight.grad is not None


# --------------------------------------------------------------- weight conversion
def test_convert_torchvision_maps_every_conv():
    src = torchvision_vgg16(base=4, hidden=16, num_classes=10)
    assert detect_vgg16_format(src) == 'torchvision'
    out = convert_vgg16_state_dict(src)
    tv_indices = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
    assert list(out) == [
        f'{n}.conv.{p}' for n in VGG16_CONV_NAMES for p in ('weight', 'bias')]
    for name, index in zip(VGG16_CONV_NAMES, tv_indices):
        assert torch.equal(out[f'{name}.conv.weight'], src[f'features.{index}.weight'])
        assert torch.equal(out[f'{name}.conv.bias'], src[f'features.{index}.bias'])
    model = check_vgg16_os8_state_dict(out)
    assert model.out_channels == [32] and not model.with_fc


def test_convert_full_size_torchvision_loads_into_default_width():
    src = torchvision_vgg16(base=64, hidden=8, num_classes=8)  # full-size convs only
    out = convert_vgg16_state_dict(src)
    model = VGG16OS8(with_fc=False)
    model.load_state_dict(out, strict=True)
    assert sum(v.numel() for v in out.values()) == 14714688  # VGG16's conv parameters


@pytest.mark.parametrize('prefix', ['backbone.', ''])
def test_convert_mmpretrain(prefix):
    src = mmpretrain_vgg16(prefix=prefix)
    assert detect_vgg16_format(src) == 'mmpretrain'
    wrapped = dict(meta=dict(epoch=1), state_dict={'module.' + k: v for k, v in src.items()})
    out = convert_vgg16_state_dict(unwrap_state_dict(wrapped))
    for name, index in zip(VGG16_CONV_NAMES, MMPRETRAIN_CONV_INDICES):
        assert torch.equal(out[f'{name}.conv.weight'],
                           src[f'{prefix}features.{index}.conv.weight'])
    check_vgg16_os8_state_dict(out)


def test_decimate_fc_layers():
    src = torchvision_vgg16(base=2, hidden=16, num_classes=10)
    c5 = 16  # stage-5 channels at base 2
    # encode (filter, channel, row, col) in the fc6 weights to check which taps are kept
    grid = torch.arange(16 * c5 * 49, dtype=torch.float32).reshape(16, c5, 7, 7)
    src['classifier.0.weight'] = grid.reshape(16, c5 * 49).clone()
    out = convert_vgg16_state_dict(src, fc='decimate', fc_channels=4)
    assert out['fc6.conv.weight'].shape == (4, c5, 3, 3)
    kept = grid[[0, 4, 8, 12]][:, :, [0, 3, 6]][..., [0, 3, 6]]
    assert torch.equal(out['fc6.conv.weight'], kept)
    assert torch.equal(out['fc6.conv.bias'], src['classifier.0.bias'][::4])
    assert torch.equal(out['fc7.conv.weight'][:, :, 0, 0],
                       src['classifier.3.weight'][::4, ::4])
    model = check_vgg16_os8_state_dict(out)
    assert model.with_fc and model.out_channels == [4]
    with pytest.raises(VGGCheckpointError, match='cannot decimate'):
        convert_vgg16_state_dict(src, fc='decimate', fc_channels=5)


def test_convert_refuses_mismatches():
    src = torchvision_vgg16(base=2, hidden=4, num_classes=3)
    bn = dict(src, **{'features.1.running_mean': torch.zeros(2)})
    with pytest.raises(VGGCheckpointError,
                       match=r"unexpected keys: \['features.1.running_mean'\]"):
        convert_vgg16_state_dict(bn)
    partial = {k: v for k, v in src.items() if k != 'features.28.bias'}
    with pytest.raises(VGGCheckpointError, match=r"missing keys: \['features.28.bias'\]"):
        convert_vgg16_state_dict(partial)
    no_fc = {k: v for k, v in src.items() if not k.startswith('classifier')}
    convert_vgg16_state_dict(no_fc)  # convolutions only is fine without fc layers ...
    with pytest.raises(VGGCheckpointError, match='classifier.0.weight'):
        convert_vgg16_state_dict(no_fc, fc='decimate')  # ... but not for decimation
    with pytest.raises(VGGCheckpointError, match='not a VGG16 checkpoint'):
        convert_vgg16_state_dict({'conv1.weight': torch.zeros(1)})
    with pytest.raises(VGGCheckpointError, match='already in mmseg-sbce format'):
        convert_vgg16_state_dict(convert_vgg16_state_dict(src))


def test_tool_and_pretrained_init(tmp_path, capsys, load_tool):
    tool = load_tool('model_converters/vgg16_to_mmseg')
    src = mmpretrain_vgg16(base=2, hidden=8)
    torch.save(dict(state_dict=src, meta=dict(mmpretrain_version='1.2.0')),
               tmp_path / 'in.pth')
    dst = str(tmp_path / 'out' / 'vgg.pth')
    assert tool.main([str(tmp_path / 'in.pth'), dst, '--fc', 'decimate',
                      '--fc-channels', '4']) == 0
    assert 'from mmpretrain format' in capsys.readouterr().out

    model = VGG16OS8(base_channels=2, fc_channels=4,
                     init_cfg=dict(type='Pretrained', checkpoint=dst))
    model.init_weights()
    assert torch.equal(model.stage5[2].conv.weight, src['backbone.features.16.conv.weight'])
    assert torch.equal(model.fc7.conv.bias, src['backbone.classifier.3.bias'][::2])

    torch.save({'conv1.weight': torch.zeros(1)}, tmp_path / 'resnet.pth')
    assert tool.main([str(tmp_path / 'resnet.pth'), str(tmp_path / 'x.pth')]) == 1
    assert 'not a VGG16 checkpoint' in capsys.readouterr().err
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    assert tool.main([str(tmp_path / 'junk.pth'), str(tmp_path / 'x.pth')]) == 1
    assert 'not a loadable torch checkpoint' in capsys.readouterr().err
