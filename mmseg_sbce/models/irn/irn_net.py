# Copyright (c) mmseg-sbce contributors.
"""The IRN boundary network: a (usually frozen) backbone and a light class-boundary branch."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import PixelData
from torch import Tensor

from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig
from .random_walk import stride4_size

IGNORE_INDEX = 255


@MODELS.register_module()
class IRNBoundaryNet(BaseModel):
    """IRN's class-boundary network (the displacement branch for instances is omitted: we
    produce semantic labels, which need only the boundary map).

    Every selected backbone stage is projected to ``edge_channels`` by a 1x1 conv + GroupNorm
    + ReLU, upsampled to the first selected stage (stride 4), concatenated and turned into one
    boundary logit map by a 1x1 conv; ``B = sigmoid(logit)``. With ``freeze_backbone`` the
    backbone runs in eval mode (BN statistics frozen), without gradients, and its features
    are detached: only the boundary branch learns, as in IRN.

    Training (``mode='loss'``) reads the seed labels from ``data_samples[i].gt_sem_seg``
    (0 background, 1..C classes, 255 unknown; see ``LoadIRNSeeds``), downsamples them
    (nearest) to the boundary map and applies the inter-pixel affinity loss.

    Args:
        backbone (dict): backbone config; must return features whose first selected stage
            has stride 4.
        loss_affinity (dict): the affinity loss config (``InterPixelAffinityLoss``).
        in_index (Sequence[int]): backbone outputs used by the branch.
        in_channels (Sequence[int]): their channels.
        edge_channels (int): channels of each projection.
        freeze_backbone (bool): freeze the backbone (ImageNet weights). False trains it
            with the branch, for the from-scratch stand-in of the CPU demo.
        flip (bool): :meth:`boundary_map` averages the map with that of the flipped image.
        data_preprocessor (dict, optional): e.g. ``SegDataPreProcessor``.
        init_cfg (dict, optional): initialisation config.
    """

    def __init__(self,
                 backbone: ConfigType,
                 loss_affinity: ConfigType = dict(type='InterPixelAffinityLoss'),
                 in_index: Sequence[int] = (0, 1, 2, 3),
                 in_channels: Sequence[int] = (256, 512, 1024, 2048),
                 edge_channels: int = 32,
                 freeze_backbone: bool = True,
                 flip: bool = True,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if len(in_index) != len(in_channels) or not in_index:
            raise ValueError(f'in_index {tuple(in_index)} and in_channels '
                             f'{tuple(in_channels)} must be non-empty and of equal length')
        self.backbone = MODELS.build(backbone)
        self.loss_affinity = MODELS.build(loss_affinity)
        self.in_index = tuple(in_index)
        self.freeze_backbone = freeze_backbone
        self.flip = flip
        groups = 4 if edge_channels % 4 == 0 else 1
        self.projections = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c, edge_channels, 1, bias=False),
                nn.GroupNorm(groups, edge_channels), nn.ReLU(inplace=True))
            for c in in_channels)
        self.edge_out = nn.Conv2d(edge_channels * len(in_channels), 1, 1)
        if freeze_backbone:
            for param in self.backbone.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'IRNBoundaryNet':
        """Set the mode; a frozen backbone always stays in eval mode."""
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def _features(self, inputs: Tensor) -> List[Tensor]:
        if self.freeze_backbone:
            with torch.no_grad():
                feats = self.backbone(inputs)
            return [feats[i].detach() for i in self.in_index]
        feats = self.backbone(inputs)
        return [feats[i] for i in self.in_index]

    def _forward(self, inputs: Tensor, data_samples: Optional[list] = None) -> Tensor:
        """Boundary logits ``[N, 1, h, w]`` at the first selected stage's resolution."""
        feats = self._features(inputs)
        size = feats[0].shape[-2:]
        projected = [
            F.interpolate(proj(f), size=size, mode='bilinear', align_corners=False)
            if f.shape[-2:] != size else proj(f) for proj, f in zip(self.projections, feats)
        ]
        return self.edge_out(torch.cat(projected, dim=1))

    def forward(self,
                inputs: Tensor,
                data_samples: Optional[list] = None,
                mode: str = 'tensor') -> Union[Dict[str, Tensor], list, Tensor]:
        """mmengine's entry point: ``'loss'``, ``'predict'`` or ``'tensor'``."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'invalid mode "{mode}": "loss", "predict" or "tensor"')

    def loss(self, inputs: Tensor, data_samples: list) -> Dict[str, Tensor]:
        """Affinity loss of the batch against the seeds in ``gt_sem_seg``."""
        if not data_samples or not hasattr(data_samples[0], 'gt_sem_seg'):
            raise KeyError('IRNBoundaryNet.loss needs the seed labels as gt_sem_seg '
                           '(LoadIRNSeeds + PackSegInputs in the pipeline)')
        boundary = self._forward(inputs).sigmoid()[:, 0]
        seeds = torch.stack([s.gt_sem_seg.data for s in data_samples]).float()
        seeds = F.interpolate(seeds, size=boundary.shape[-2:], mode='nearest')[:, 0].long()
        loss, stats = self.loss_affinity(boundary, seeds)
        losses = {self.loss_affinity.loss_name: loss}
        # Diagnostics: their names must not contain "loss" (mmengine would sum them).
        losses.update({k: v.detach() for k, v in stats.items()})
        return losses

    def boundary_map(self, inputs: Tensor) -> Tensor:
        """Boundary probabilities ``[N, ceil(H/4), ceil(W/4)]`` of preprocessed images,
        averaged with those of the flipped images when ``flip``."""
        boundary = self._forward(inputs).sigmoid()
        if self.flip:
            flipped = self._forward(inputs.flip(-1)).sigmoid().flip(-1)
            boundary = (boundary + flipped) / 2
        grid = stride4_size(*inputs.shape[-2:])
        if tuple(boundary.shape[-2:]) != grid:
            boundary = F.interpolate(boundary, size=grid, mode='bilinear',
                                     align_corners=False)
        return boundary[:, 0]

    def predict(self, inputs: Tensor, data_samples: Optional[list] = None) -> list:
        """The boundary map of every image as ``data_samples[i].pred_boundary``
        (``PixelData``, ``[1, ceil(H/4), ceil(W/4)]`` of the packed input)."""
        boundary = self.boundary_map(inputs)
        if data_samples is None:
            from mmseg.structures import SegDataSample
            data_samples = [SegDataSample() for _ in range(len(boundary))]
        for sample, b in zip(data_samples, boundary):
            sample.pred_boundary = PixelData(data=b[None])
        return data_samples
