# Copyright (c) mmseg-sbce contributors.
"""VGG16 with output stride 8, as in DeepLab-LargeFOV and the WSSS works that use it.

Why not mmpretrain's ``VGG`` (or ``mmcv.cnn.VGG``): both hard-code every pool as a 2x2,
stride-2 max pool (output stride 32), have no fc6/fc7-as-convolution option, and
mmpretrain's module cannot be imported without torchvision (its relative imports pull in
``mmpretrain.models``). Making them stride 8 would mean swapping modules after
construction, so this is a small module of our own.

Layout (DeepLab-LargeFOV)::

    stage1: 2 x conv3x3(64)  -> pool1 3x3 s2 p1
    stage2: 2 x conv3x3(128) -> pool2 3x3 s2 p1
    stage3: 3 x conv3x3(256) -> pool3 3x3 s2 p1       (stride 8 from here on)
    stage4: 3 x conv3x3(512) -> pool4 3x3 s1 p1
    stage5: 3 x conv3x3(512, dilation 2) -> pool5 3x3 s1 p1
    fc6: conv3x3(1024, dilation 12) -> ReLU -> dropout    (optional, ``with_fc``)
    fc7: conv1x1(1024) -> ReLU -> dropout

The 3x3/stride-2/pad-1 pools give ``ceil(n / 2)``, so a 321 x 321 input yields 41 x 41.
Parameter names are ``stage{i}.{j}.conv.*`` and ``fc{6,7}.conv.*``; ImageNet weights in
torchvision or mmpretrain format are converted by :func:`convert_vgg16_state_dict`
(``tools/model_converters/vgg16_to_mmseg.py``).
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule

from mmseg.registry import MODELS
from .utils import FrozenStagesMixin

VGG16_STAGE_BLOCKS: Tuple[int, ...] = (2, 2, 3, 3, 3)
"""Convolutions per stage of VGG16."""

VGG16_CONV_NAMES: Tuple[str, ...] = tuple(
    f'stage{s + 1}.{b}' for s, n in enumerate(VGG16_STAGE_BLOCKS) for b in range(n))
"""Our module name of each of the 13 convolutions, in network order."""

# Position of each of the 13 convolutions inside the flat ``features`` Sequential.
# torchvision: Conv2d, ReLU per conv, MaxPool per stage.
_TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
# mmpretrain: one ConvModule per conv, MaxPool per stage.
_MMPRETRAIN_CONV_INDICES = (0, 1, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 16)
_FC_LAYERS = (0, 3)  # fc6 / fc7 in ``classifier`` (Linear, ReLU, Dropout, Linear, ...)
_CLASSIFIER_LAYERS = (0, 3, 6)


def _stage_channels(base_channels: int) -> Tuple[int, ...]:
    return tuple(base_channels * m for m in (1, 2, 4, 8, 8))


@MODELS.register_module()
class VGG16OS8(FrozenStagesMixin, BaseModule):
    """VGG16 backbone with output stride 8 (DeepLab-LargeFOV style).

    Args:
        in_channels (int): Input channels. Defaults to 3.
        base_channels (int): Width of stage 1; stages use 1, 2, 4, 8, 8 times it.
            Defaults to 64 (VGG16); smaller values are for tests.
        with_fc (bool): Append fc6 (3x3 dilated conv) and fc7 (1x1 conv) as in
            DeepLab-LargeFOV. Defaults to True.
        fc_channels (int): Channels of fc6 and fc7. Defaults to 1024.
        fc6_dilation (int): Dilation of fc6 (12: LargeFOV). Defaults to 12.
        fc_dropout (float): Dropout after fc6 and fc7 (0 disables). Defaults to 0.5.
        stage5_dilation (int): Dilation of the stage-5 convolutions. Defaults to 2.
        out_indices (Sequence[int], optional): Outputs to return: 0-4 are stages 1-5
            (after their pool), 5 is fc7. Defaults to ``(5,)`` with fc, else ``(4,)``.
        frozen_stages (int): Stages 1..frozen_stages are frozen (eval mode, no grad);
            -1 freezes nothing. Defaults to -1.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict, optional): Norm after every conv (VGG16 has none). Defaults to
            None.
        act_cfg (dict): Activation config. Defaults to ``dict(type='ReLU')``.
        norm_eval (bool): Keep norm layers in eval mode while training. Defaults to False.
        init_cfg (dict | list[dict], optional): Use
            ``dict(type='Pretrained', checkpoint=...)`` with a file made by
            ``tools/model_converters/vgg16_to_mmseg.py``.
    """

    def __init__(self,
                 in_channels: int = 3,
                 base_channels: int = 64,
                 with_fc: bool = True,
                 fc_channels: int = 1024,
                 fc6_dilation: int = 12,
                 fc_dropout: float = 0.5,
                 stage5_dilation: int = 2,
                 out_indices: Optional[Sequence[int]] = None,
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: dict = dict(type='ReLU'),
                 norm_eval: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', layer='Conv2d'),
                dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
            ]
        super().__init__(init_cfg=init_cfg)
        num_stages = len(VGG16_STAGE_BLOCKS)
        if out_indices is None:
            out_indices = (num_stages, ) if with_fc else (num_stages - 1, )
        out_indices = tuple(sorted(set(out_indices)))  # returned in network order
        max_index = num_stages if with_fc else num_stages - 1
        if not out_indices or any(i < 0 or i > max_index for i in out_indices):
            raise ValueError(f'out_indices {out_indices} must lie in [0, {max_index}]'
                             f'{"" if with_fc else " without fc layers"}')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], got '
                             f'{frozen_stages}')
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_fc = with_fc

        channels = _stage_channels(base_channels)
        # pools 1-3 halve the size (output stride 8); pools 4-5 keep it.
        strides = (2, 2, 2, 1, 1)
        dilations = (1, 1, 1, 1, stage5_dilation)
        self.stage_names = []
        prev = in_channels
        for i, (num_convs, ch) in enumerate(zip(VGG16_STAGE_BLOCKS, channels)):
            layers = []
            for _ in range(num_convs):
                layers.append(
                    ConvModule(prev, ch, 3, padding=dilations[i], dilation=dilations[i],
                               bias='auto', conv_cfg=conv_cfg, norm_cfg=norm_cfg,
                               act_cfg=act_cfg))
                prev = ch
            layers.append(nn.MaxPool2d(3, stride=strides[i], padding=1))
            name = f'stage{i + 1}'
            self.add_module(name, nn.Sequential(*layers))
            self.stage_names.append(name)
        self.feat_channels = list(channels)

        if with_fc:
            self.fc6 = ConvModule(prev, fc_channels, 3, padding=fc6_dilation,
                                  dilation=fc6_dilation, bias='auto', conv_cfg=conv_cfg,
                                  norm_cfg=norm_cfg, act_cfg=act_cfg)
            self.fc7 = ConvModule(fc_channels, fc_channels, 1, bias='auto', conv_cfg=conv_cfg,
                                  norm_cfg=norm_cfg, act_cfg=act_cfg)
            # element-wise dropout, as Caffe's Dropout layer in LargeFOV
            self.fc_dropout = nn.Dropout(fc_dropout) if fc_dropout > 0 else nn.Identity()
            self.feat_channels.append(fc_channels)

    @property
    def out_channels(self) -> List[int]:
        """Channels of each returned feature map, in ``out_indices`` order."""
        return [self.feat_channels[i] for i in self.out_indices]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the feature maps selected by ``out_indices`` (stride 8 from stage 3)."""
        outs = []
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        if self.with_fc and len(self.stage_names) in self.out_indices:
            x = self.fc_dropout(self.fc6(x))
            x = self.fc_dropout(self.fc7(x))
            outs.append(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        for name in self.stage_names[:max(self.frozen_stages, 0)]:
            stage = getattr(self, name)
            stage.eval()
            for param in stage.parameters():
                param.requires_grad = False


# ------------------------------------------------------------------ weight conversion
class VGGCheckpointError(ValueError):
    """A weight file that is not a plain (no batch norm) VGG16 in a known format."""


def unwrap_state_dict(checkpoint: dict) -> Dict[str, torch.Tensor]:
    """The tensor dict of a checkpoint: ``state_dict`` / ``model`` entries unwrapped and
    a DataParallel ``module.`` prefix removed."""
    state = checkpoint
    for key in ('state_dict', 'model'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise VGGCheckpointError(f'expected a dict of tensors, got {type(state).__name__}')
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return dict(state)


def detect_vgg16_format(state_dict: Dict[str, torch.Tensor]) -> str:
    """Return ``'torchvision'``, ``'mmpretrain'`` or ``'mmseg_sbce'`` (already converted).

    Raises:
        VGGCheckpointError: None of the three layouts matches.
    """
    keys = set(state_dict)
    if 'features.0.weight' in keys:
        return 'torchvision'
    if 'backbone.features.0.conv.weight' in keys or 'features.0.conv.weight' in keys:
        return 'mmpretrain'
    if 'stage1.0.conv.weight' in keys:
        return 'mmseg_sbce'
    sample = sorted(keys)[:8]
    raise VGGCheckpointError(
        'not a VGG16 checkpoint in torchvision (features.0.weight), mmpretrain '
        '(backbone.features.0.conv.weight) or mmseg-sbce (stage1.0.conv.weight) format; '
        f'first keys: {sample}')


def _decimate_fc(fc6_w: torch.Tensor, fc6_b: torch.Tensor, fc7_w: torch.Tensor,
                 fc7_b: torch.Tensor, fc_channels: int) -> Dict[str, torch.Tensor]:
    out_features, in_features = fc6_w.shape
    if out_features % fc_channels or fc7_w.shape != (out_features, out_features):
        raise VGGCheckpointError(
            f'cannot decimate fc6 {tuple(fc6_w.shape)} / fc7 {tuple(fc7_w.shape)} to '
            f'{fc_channels} channels')
    step = out_features // fc_channels
    in_ch = in_features // 49
    if in_ch * 49 != in_features:
        raise VGGCheckpointError(f'fc6 input size {in_features} is not C x 7 x 7')
    # DeepLab's recipe: keep every `step`-th filter and every 3rd tap of the 7x7 grid.
    w6 = fc6_w.reshape(out_features, in_ch, 7, 7)[::step, :, ::3, ::3]
    w7 = fc7_w[::step, ::step].reshape(fc_channels, fc_channels, 1, 1)
    return {
        'fc6.conv.weight': w6.contiguous(), 'fc6.conv.bias': fc6_b[::step].contiguous(),
        'fc7.conv.weight': w7.contiguous(), 'fc7.conv.bias': fc7_b[::step].contiguous()
    }


def convert_vgg16_state_dict(state_dict: Dict[str, torch.Tensor], fc: str = 'drop',
                             fc_channels: int = 1024) -> 'OrderedDict[str, torch.Tensor]':
    """Rename ImageNet VGG16 weights (no batch norm) to :class:`VGG16OS8` names.

    Args:
        state_dict (dict): Tensors in torchvision (``features.0.weight``,
            ``classifier.0.weight``) or mmpretrain (``backbone.features.0.conv.weight``,
            ``backbone.classifier.0.weight``) layout, as from :func:`unwrap_state_dict`.
        fc (str): ``'drop'``: keep only the 13 convolutions (fc6/fc7 start from the
            model's own init). ``'decimate'``: also build fc6 (3x3) / fc7 (1x1) with
            ``fc_channels`` filters from the ImageNet fully connected layers by
            subsampling, as DeepLab-LargeFOV did.
        fc_channels (int): fc6/fc7 width for ``'decimate'``. Defaults to 1024.

    Returns:
        OrderedDict: Keys ``stage{i}.{j}.conv.{weight,bias}`` (+ ``fc6``/``fc7``).

    Raises:
        VGGCheckpointError: Unknown format, or missing / unexpected keys (all listed;
            e.g. a batch-norm VGG16 has unexpected ``running_mean`` keys).
    """
    if fc not in ('drop', 'decimate'):
        raise ValueError(f"fc must be 'drop' or 'decimate', got {fc!r}")
    fmt = detect_vgg16_format(state_dict)
    if fmt == 'mmseg_sbce':
        raise VGGCheckpointError('the checkpoint is already in mmseg-sbce format')
    if fmt == 'torchvision':
        prefix, conv_indices, conv_fmt = '', _TORCHVISION_CONV_INDICES, 'features.{}.{}'
    else:
        prefix = 'backbone.' if 'backbone.features.0.conv.weight' in state_dict else ''
        conv_indices, conv_fmt = _MMPRETRAIN_CONV_INDICES, 'features.{}.conv.{}'
    rename = {}
    for name, index in zip(VGG16_CONV_NAMES, conv_indices):
        for param in ('weight', 'bias'):
            rename[prefix + conv_fmt.format(index, param)] = f'{name}.conv.{param}'
    classifier = {
        prefix + f'classifier.{i}.{param}'
        for i in _CLASSIFIER_LAYERS for param in ('weight', 'bias')
    }
    missing = sorted(set(rename) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(rename) - classifier)
    if fc == 'decimate':
        fc_keys = {
            prefix + f'classifier.{i}.{p}' for i in _FC_LAYERS for p in ('weight', 'bias')
        }
        missing += sorted(fc_keys - set(state_dict))
    if missing or unexpected:
        raise VGGCheckpointError(
            f'{fmt} VGG16 (without batch norm) expected; missing keys: {missing or "none"}; '
            f'unexpected keys: {unexpected or "none"}')

    converted = OrderedDict((new, state_dict[old]) for old, new in rename.items())
    for name in VGG16_CONV_NAMES:
        if converted[f'{name}.conv.weight'].dim() != 4:
            raise VGGCheckpointError(f'{name}: weight is not a 4-D convolution kernel')
    if fc == 'decimate':
        converted.update(
            _decimate_fc(*(state_dict[prefix + f'classifier.{i}.{p}']
                           for i in _FC_LAYERS for p in ('weight', 'bias')), fc_channels))
    return converted


def check_vgg16_os8_state_dict(state_dict: Dict[str, torch.Tensor]) -> VGG16OS8:
    """Load converted weights strictly into a matching :class:`VGG16OS8` (width and fc
    layers inferred from the tensors); raises on missing/unexpected keys or shapes."""
    base = state_dict['stage1.0.conv.weight'].shape[0]
    with_fc = 'fc6.conv.weight' in state_dict
    kwargs = dict(base_channels=base, with_fc=with_fc)
    if with_fc:
        kwargs['fc_channels'] = state_dict['fc6.conv.weight'].shape[0]
    model = VGG16OS8(in_channels=state_dict['stage1.0.conv.weight'].shape[1], **kwargs)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        raise VGGCheckpointError(f'converted weights do not fit VGG16OS8: {err}') from err
    return model
