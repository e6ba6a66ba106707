# Copyright (c) mmseg-sbce contributors.
import pytest
import torch

import mmseg_sbce  # noqa: F401
from mmseg.registry import MODELS


def test_tiny_cnn_stride_channels_and_head():
    net = MODELS.build(dict(type='TinyCNN', channels=(8, 8, 16), strides=(2, 1, 1),
                            dilations=(1, 1, 2)))
    net.init_weights()
    (out, ) = net(torch.randn(2, 3, 64, 48))
    assert out.shape == (2, 16, 16, 12)  # stride 2 conv + 2x2 pool: output stride 4
    assert net.out_channels == 16
    head = MODELS.build(dict(type='SBCEHead', in_channels=16, num_classes=3))
    cls, thr = head((out, ))
    assert cls.shape == (2, 3, 16, 12) and thr.shape == (2, 3)


def test_tiny_cnn_rejects_mismatched_lists():
    with pytest.raises(ValueError, match='same length'):
        MODELS.build(dict(type='TinyCNN', channels=(8, 8), strides=(1, ), dilations=(1, 1)))
