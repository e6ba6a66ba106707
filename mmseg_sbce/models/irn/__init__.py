# Copyright (c) mmseg-sbce contributors.
"""IRN refinement (Ahn, Cho, Kwak, CVPR 2019) as plugin components: seed labels from our
saved maps, the boundary network and its inter-pixel affinity loss, and the sparse random
walk that refines the maps into pseudo-labels. See docs/irn.md."""
from .affinity import (InterPixelAffinityLoss, affinity_targets, inter_pixel_affinity_loss,
                       pair_affinity, pair_offsets, path_points)
from .irn_net import IRNBoundaryNet
from .loading import LoadIRNSeeds
from .random_walk import (REFINE_CFG_DEFAULTS, random_walk, refine_labels,
                          resolve_refine_cfg, sparse_transition, stride4_size)
from .seeds import SEED_CFG_DEFAULTS, irn_seed_labels, resolve_seed_cfg

__all__ = [
    'InterPixelAffinityLoss', 'affinity_targets', 'inter_pixel_affinity_loss',
    'pair_affinity', 'pair_offsets', 'path_points', 'IRNBoundaryNet', 'LoadIRNSeeds',
    'REFINE_CFG_DEFAULTS', 'random_walk', 'refine_labels', 'resolve_refine_cfg',
    'sparse_transition', 'stride4_size', 'SEED_CFG_DEFAULTS', 'irn_seed_labels',
    'resolve_seed_cfg'
]
