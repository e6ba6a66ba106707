# Copyright (c) mmseg-sbce contributors.
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData

from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg_sbce.models.irn import IRNBoundaryNet  # noqa: F401 (registers it)

TINY_RESNET = dict(type='ResNet', depth=18, stem_channels=8, base_channels=8,
                   strides=(1, 2, 2, 1), out_indices=(0, 1, 2, 3), norm_eval=False)


def build(freeze: bool) -> IRNBoundaryNet:
    torch.manual_seed(0)
    return MODELS.build(
        dict(type='IRNBoundaryNet', backbone=TINY_RESNET, in_channels=(8, 16, 32, 64),
             edge_channels=8, freeze_backbone=freeze,
             loss_affinity=dict(type='InterPixelAffinityLoss', radius=3)))


def samples(seeds: np.ndarray) -> list:
    out = []
    for s in seeds:
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(s)[None].long())
        out.append(sample)
    return out


def test_frozen_backbone_only_branch_learns():
    model = build(freeze=True)
    model.train()
    assert not model.backbone.training
    seeds = np.full((2, 32, 32), 255, np.int64)
    seeds[:, :, :12] = 0
    seeds[:, :, 16:] = 1  # one unknown stride-4 column between them
    losses = model(torch.rand(2, 3, 32, 32), samples(seeds), mode='loss')
    assert set(losses) >= {'loss_aff', 'pairs_bg', 'pairs_fg', 'pairs_neg'}
    assert sum('loss' in k for k in losses) == 1
    assert losses['pairs_bg'] > 0 and losses['pairs_fg'] > 0 and losses['pairs_neg'] > 0
    losses['loss_aff'].backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.edge_out.weight.grad is not None


def test_unfrozen_backbone_learns_too():
    model = build(freeze=False)
    seeds = np.zeros((1, 32, 32), np.int64)
    seeds[:, 16:] = 3
    model(torch.rand(1, 3, 32, 32), samples(seeds), mode='loss')['loss_aff'].backward()
    assert any(p.grad is not None for p in model.backbone.parameters())


def test_boundary_map_and_predict():
    model = build(freeze=True).eval()
    with torch.no_grad():
        boundary = model.boundary_map(torch.rand(2, 3, 37, 30))
        assert boundary.shape == (2, 10, 8)
        assert ((boundary >= 0) & (boundary <= 1)).all()
        out = model(torch.rand(1, 3, 32, 32), None, mode='predict')
        assert out[0].pred_boundary.data.shape == (1, 8, 8)
    with pytest.raises(KeyError, match='gt_sem_seg'):
        model(torch.rand(1, 3, 32, 32), [SegDataSample()], mode='loss')
    with pytest.raises(ValueError, match='in_index'):
        IRNBoundaryNet(backbone=TINY_RESNET, in_index=(0, 1), in_channels=(8, ))
