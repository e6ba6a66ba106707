# Copyright (c) mmseg-sbce contributors.
"""Wide ResNet-38 ("resnet38d") of the PSA / AffinityNet line of WSSS work."""
from typing import List, Optional, Sequence, Tuple

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptMultiConfig
from .utils import FrozenStagesMixin


class PreActBlock(nn.Module):
    """What both ResNet-38d blocks share: the pre-activation BN + ReLU of the input, which
    feeds the residual branch and, when the shape changes, a 1x1 projection shortcut."""

    def _add_projection(self, in_channels: int, out_channels: int, stride: int) -> None:
        """Create the projection ``conv_branch1`` if the shape changes (call it last in
        ``__init__``: parameters are created, and initialised, in the reference's order)."""
        if not self.same_shape:
            self.conv_branch1 = nn.Conv2d(
                in_channels, out_channels, 1, stride=stride, bias=False)

    def _preact(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """The activated input and the shortcut."""
        act = F.relu(self.bn_branch2a(x))
        return act, x if self.same_shape else self.conv_branch1(act)


class ResBlock(PreActBlock):
    """Pre-activation residual block with two 3x3 convolutions (stages b2-b5).

    ``x -> BN -> ReLU -> (shortcut) + conv3x3(stride) -> BN -> ReLU -> conv3x3``. The
    shortcut is the identity, or a 1x1 projection of the *activated* input when the shape
    changes (channels or stride), as in the Wu et al. "wider or deeper" ResNets.

    Module names (``bn_branch2a``, ``conv_branch2a``, ``bn_branch2b1``, ``conv_branch2b1``,
    ``conv_branch1``) follow the PSA / SEAM / EDAM PyTorch code so their checkpoints load
    with identity key mapping.

    Args:
        in_channels (int): input channels.
        mid_channels (int): channels after the first 3x3 convolution.
        out_channels (int): output channels.
        stride (int): stride of the first 3x3 convolution and of the projection.
        dilation (int): dilation of the second 3x3 convolution.
        first_dilation (int, optional): dilation of the first 3x3 convolution; defaults to
            ``dilation`` (b5's first block uses 1 to enter the dilated stage smoothly).
        norm_cfg (dict): norm layer config.
    """

    def __init__(self,
                 in_channels: int,
                 mid_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 dilation: int = 1,
                 first_dilation: Optional[int] = None,
                 norm_cfg: ConfigType = dict(type='BN')) -> None:
        super().__init__()
        first_dilation = dilation if first_dilation is None else first_dilation
        self.same_shape = in_channels == out_channels and stride == 1
        self.bn_branch2a = build_norm_layer(norm_cfg, in_channels)[1]
        self.conv_branch2a = nn.Conv2d(
            in_channels,
            mid_channels,
            3,
            stride=stride,
            padding=first_dilation,
            dilation=first_dilation,
            bias=False)
        self.bn_branch2b1 = build_norm_layer(norm_cfg, mid_channels)[1]
        self.conv_branch2b1 = nn.Conv2d(
            mid_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False)
        self._add_projection(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        """Forward function."""
        act, shortcut = self._preact(x)
        out = self.conv_branch2a(act)
        out = F.relu(self.bn_branch2b1(out))
        out = self.conv_branch2b1(out)
        return shortcut + out


class BottleneckBlock(PreActBlock):
    """Pre-activation bottleneck block 1x1-3x3-1x1 with dropout (stages b6, b7).

    Widths are ``(out / 4, out / 2, out)``: (512, 1024, 2048) for b6 and
    (1024, 2048, 4096) for b7. Dropout2d follows each inner activation.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        stride (int): stride of the first 1x1 convolution and of the projection.
        dilation (int): dilation of the 3x3 convolution.
        dropout (float): channel dropout probability after each inner activation.
        norm_cfg (dict): norm layer config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 dilation: int = 1,
                 dropout: float = 0.,
                 norm_cfg: ConfigType = dict(type='BN')) -> None:
        super().__init__()
        quarter, half = max(1, out_channels // 4), max(1, out_channels // 2)
        self.same_shape = in_channels == out_channels and stride == 1
        self.bn_branch2a = build_norm_layer(norm_cfg, in_channels)[1]
        self.conv_branch2a = nn.Conv2d(in_channels, quarter, 1, stride=stride, bias=False)
        self.bn_branch2b1 = build_norm_layer(norm_cfg, quarter)[1]
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = nn.Conv2d(
            quarter, half, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn_branch2b2 = build_norm_layer(norm_cfg, half)[1]
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(half, out_channels, 1, bias=False)
        self._add_projection(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        """Forward function."""
        act, shortcut = self._preact(x)
        out = self.conv_branch2a(act)
        out = self.dropout_2b1(F.relu(self.bn_branch2b1(out)))
        out = self.conv_branch2b1(out)
        out = self.dropout_2b2(F.relu(self.bn_branch2b2(out)))
        out = self.conv_branch2b2(out)
        return shortcut + out


@MODELS.register_module()
class ResNet38d(FrozenStagesMixin, BaseModule):
    """Wide ResNet-38 with output stride 8, as used by PSA, SEAM, EDAM and Spatial-BCE.

    Layout (full width, channels in brackets)::

        conv1a 3x3 (64)                                 stem, stride 1
        b2, b2_1, b2_2     ResBlock (128)               stage 0, stride 2
        b3, b3_1, b3_2     ResBlock (256)               stage 1, stride 4
        b4, b4_1..b4_5     ResBlock (512)               stage 2, stride 8
        b5, b5_1, b5_2     ResBlock (512 -> 1024), dil 2 (b5's first conv: dil 1)
                                                        stage 3, stride 8
        b6                 Bottleneck (512, 1024, 2048), dil 4, dropout 0.3
                                                        stage 4, stride 8
        b7                 Bottleneck (1024, 2048, 4096), dil 4, dropout 0.5
        bn7 + ReLU                                      stage 5, stride 8

    About 104M parameters at full width. Module names equal those of the PSA / SEAM / EDAM
    PyTorch code, so their backbone weights load with identity mapping (see
    ``tools/model_converters/resnet38d_to_mmseg.py``, which also converts the ImageNet
    MXNet file ``ilsvrc-cls_rna-a1_cls1000_ep-0001.params``).

    Stage outputs: the blocks are pre-activation, so the output of stages 0-4 is the
    residual stream *before* normalisation (the next stage's first BN normalises it);
    stage 5 ends with ``bn7`` + ReLU, the 4096-channel feature used by the classifier.

    Frozen parts, following the reference training recipe and mmseg's ResNet conventions:
    ``frozen_stages = 0`` freezes ``conv1a``; ``frozen_stages = k >= 1`` also freezes
    stages ``0 .. k-1`` (so the default 1 freezes ``conv1a`` and ``b2*``: stop-grad and eval
    mode). ``norm_eval=True`` keeps every BN in eval mode (running statistics of the
    pre-trained model) and ``norm_cfg=dict(type='BN', requires_grad=False)`` freezes their
    affine parameters: the reference recipe, right for a pre-trained backbone at small
    batch. Training from scratch (the tiny demo) needs ``norm_eval=False`` and
    ``norm_cfg=dict(type='BN', requires_grad=True)``.

    ``widen_factor`` multiplies every width (rounded, at least 1): ``1/16`` gives a tiny
    variant (conv1a 4, b2 8, ..., b7 256 channels, about 0.4M parameters) for CPU demos
    and tests; weight converters only apply to width 1.

    Args:
        in_channels (int): input image channels. Defaults to 3.
        widen_factor (float): multiplier of all widths. Defaults to 1.0.
        out_indices (Sequence[int]): stages (0-5) whose outputs are returned.
            Defaults to ``(5, )``, the 4096-channel feature.
        frozen_stages (int): see above; -1 freezes nothing. Defaults to 1.
        dropouts (Tuple[float, float]): dropout of b6 and b7. Defaults to (0.3, 0.5).
        norm_cfg (dict): norm config. Defaults to frozen BN.
        norm_eval (bool): keep BN layers in eval mode while training. Defaults to True.
        init_cfg (dict or list[dict], optional): e.g.
            ``dict(type='Pretrained', checkpoint='resnet38d_ilsvrc.pth')``.
    """

    # (name, number of blocks) per stage; stage k's blocks are 'b{k+2}', 'b{k+2}_1', ...
    arch = (('b2', 3), ('b3', 3), ('b4', 6), ('b5', 3), ('b6', 1), ('b7', 1))
    # full-width output channels of the stages
    base_stage_channels = (128, 256, 512, 1024, 2048, 4096)

    def __init__(self,
                 in_channels: int = 3,
                 widen_factor: float = 1.0,
                 out_indices: Sequence[int] = (5, ),
                 frozen_stages: int = 1,
                 dropouts: Tuple[float, float] = (0.3, 0.5),
                 norm_cfg: ConfigType = dict(type='BN', requires_grad=False),
                 norm_eval: bool = True,
                 init_cfg: OptMultiConfig = None) -> None:
        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', layer='Conv2d'),
                dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
            ]
        super().__init__(init_cfg)
        if widen_factor <= 0:
            raise ValueError(f'widen_factor must be positive, got {widen_factor}')
        out_indices = tuple(out_indices)
        if not out_indices or any(i not in range(len(self.arch)) for i in out_indices):
            raise ValueError(f'out_indices must be a non-empty subset of 0..5, got '
                             f'{out_indices}')
        if not -1 <= frozen_stages <= len(self.arch):
            raise ValueError(f'frozen_stages must be in -1..6, got {frozen_stages}')
        self.widen_factor = widen_factor
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        def ch(c: int) -> int:
            return max(1, int(round(c * widen_factor)))

        self.stage_channels = tuple(ch(c) for c in self.base_stage_channels)
        self.conv1a = nn.Conv2d(in_channels, ch(64), 3, padding=1, bias=False)
        # (in, mid, out, stride, dilation, first_dilation) of each ResBlock stage
        res_specs = [
            (ch(64), ch(128), ch(128), 2, 1, None),
            (ch(128), ch(256), ch(256), 2, 1, None),
            (ch(256), ch(512), ch(512), 2, 1, None),
            (ch(512), ch(512), ch(1024), 1, 2, 1),
        ]
        self.stage_names: List[List[str]] = []
        for (prefix, num_blocks), spec in zip(self.arch[:4], res_specs):
            in_c, mid_c, out_c, stride, dilation, first_dilation = spec
            names = [prefix] + [f'{prefix}_{i}' for i in range(1, num_blocks)]
            for i, name in enumerate(names):
                block = ResBlock(
                    in_c if i == 0 else out_c,
                    mid_c,
                    out_c,
                    stride=stride if i == 0 else 1,
                    dilation=dilation,
                    first_dilation=first_dilation if i == 0 else None,
                    norm_cfg=norm_cfg)
                self.add_module(name, block)
            self.stage_names.append(names)
        self.b6 = BottleneckBlock(
            ch(1024), ch(2048), dilation=4, dropout=dropouts[0], norm_cfg=norm_cfg)
        self.b7 = BottleneckBlock(
            ch(2048), ch(4096), dilation=4, dropout=dropouts[1], norm_cfg=norm_cfg)
        self.bn7 = build_norm_layer(norm_cfg, ch(4096))[1]
        self.stage_names += [['b6'], ['b7', 'bn7']]
        self._freeze_stages()

    def _freeze_stages(self) -> None:
        """Stop gradients of, and set eval mode on, ``conv1a`` and the frozen stages."""
        if self.frozen_stages >= 0:
            self.conv1a.eval()
            for param in self.conv1a.parameters():
                param.requires_grad = False
        for stage in range(self.frozen_stages):
            for name in self.stage_names[stage]:
                module = getattr(self, name)
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Forward function.

        Args:
            x (Tensor): images ``[B, in_channels, H, W]``.

        Returns:
            tuple[Tensor]: the outputs of the stages in ``out_indices``.
        """
        x = self.conv1a(x)
        outs = []
        for stage, names in enumerate(self.stage_names):
            if stage == len(self.stage_names) - 1:
                x = F.relu(self.bn7(self.b7(x)))
            else:
                for name in names:
                    x = getattr(self, name)(x)
            if stage in self.out_indices:
                outs.append(x)
        return tuple(outs)
