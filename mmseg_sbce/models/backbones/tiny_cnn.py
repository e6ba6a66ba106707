# Copyright (c) mmseg-sbce contributors.
"""A small plain CNN for the generated demo data set (trained from scratch on a CPU)."""
from typing import Sequence, Tuple

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptMultiConfig


@MODELS.register_module()
class TinyCNN(BaseModule):
    """A stack of 3x3 conv-BN-ReLU layers with a 2x2 max-pool after the first two.

    With the defaults the output stride is 4 and the receptive field about 40 px: small enough
    that a GAP-BCE classifier must decide from local evidence, which on the demo data set
    (class-specific heads, shared bodies) reproduces the partial activation of CAMs.

    Args:
        in_channels (int): input channels.
        channels (Sequence[int]): output channels of each conv layer.
        strides (Sequence[int]): stride of each conv layer.
        dilations (Sequence[int]): dilation of each conv layer.
        pool_after (int): index of the layer followed by a 2x2 max-pool (-1: none).
        norm_cfg (dict): normalisation layer config.
        init_cfg (dict, optional): initialisation config.
    """

    def __init__(self,
                 in_channels: int = 3,
                 channels: Sequence[int] = (32, 32, 64, 96, 96),
                 strides: Sequence[int] = (2, 1, 1, 1, 1),
                 dilations: Sequence[int] = (1, 1, 1, 1, 1),
                 pool_after: int = 1,
                 norm_cfg: ConfigType = dict(type='BN', requires_grad=True),
                 init_cfg: OptMultiConfig = dict(
                     type='Kaiming', layer='Conv2d', nonlinearity='relu')) -> None:
        super().__init__(init_cfg)
        if not len(channels) == len(strides) == len(dilations):
            raise ValueError('channels, strides and dilations need the same length, got '
                             f'{len(channels)}, {len(strides)}, {len(dilations)}')
        layers = []
        cin = in_channels
        for i, (cout, s, d) in enumerate(zip(channels, strides, dilations)):
            layers.append(
                ConvModule(cin, cout, 3, stride=s, padding=d, dilation=d,
                           norm_cfg=norm_cfg))
            if i == pool_after:
                layers.append(nn.MaxPool2d(2))
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.out_channels = cin

    def forward(self, x: Tensor) -> Tuple[Tensor]:
        return (self.layers(x), )
