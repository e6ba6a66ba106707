# Copyright (c) mmseg-sbce contributors.
"""IRNLabeller: the two steps it plugs into the export."""
import pickle

import numpy as np
import torch
from mmengine.registry import init_default_scope

import mmseg_sbce  # noqa: F401
from mmseg_sbce.models.irn import refine_labels
from mmseg_sbce.models.irn.labeller import IRNLabeller


def _net(size_divisor=None):
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    preproc = dict(type='SegDataPreProcessor', mean=[0.0] * 3, std=[255.0] * 3,
                   bgr_to_rgb=True)
    if size_divisor:
        preproc['test_cfg'] = dict(size_divisor=size_divisor)
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='IRNBoundaryNet', data_preprocessor=preproc,
        backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8,
                      strides=(1, 2, 2, 1), out_indices=(0, 1, 2, 3)),
        in_channels=(8, 16, 32, 64), edge_channels=8, freeze_backbone=False)).eval()


def test_prepare_gives_the_image_grid_and_worker_refines():
    img = torch.randint(0, 256, (3, 37, 45), dtype=torch.uint8)
    labeller = IRNLabeller(num_classes=4, refine_cfg=dict(exp_times=3))
    boundary = labeller.prepare(_net(), img, {})
    assert boundary.shape == (10, 12) and boundary.dtype == np.float32
    assert 0.0 <= boundary.min() and boundary.max() <= 1.0
    # A padding preprocessor (bottom/right) keeps the image's own grid and values.
    padded = labeller.prepare(_net(size_divisor=32), img, {})
    assert padded.shape == (10, 12)
    logits = np.random.default_rng(0).normal(size=(2, 37, 45)).astype(np.float32)
    pos = np.array([1, 3])
    worker = pickle.loads(pickle.dumps(labeller.worker()))  # sent to forked workers
    out = worker(None, logits, None, pos, boundary)
    expected = refine_labels(torch.from_numpy(logits), pos, torch.from_numpy(boundary),
                             dict(exp_times=3))
    np.testing.assert_array_equal(out, expected)
    assert set(np.unique(out)) <= {0, 2, 4}
    assert labeller.identity() == dict(refine_cfg=dict(radius=10, beta=10.0, exp_times=3,
                                                       bg_threshold=0.25))
