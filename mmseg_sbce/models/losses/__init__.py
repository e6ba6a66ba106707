# Copyright (c) mmseg-sbce contributors.
from .base_loss import BaseLoss
from .otsu import otsu_threshold
from .percentile import count_split, percentile_index, percentile_threshold
from .proportion_kl_loss import ProportionKLLoss, binary_kl, proportion_kl_loss
from .spatial_bce_loss import (SpatialBCELoss, positive_uncertainty,
                               positive_uncertainty_from_logits, spatial_bce_loss)
from .target_fraction import target_fractions

__all__ = [
    'BaseLoss', 'SpatialBCELoss', 'spatial_bce_loss', 'positive_uncertainty',
    'positive_uncertainty_from_logits', 'ProportionKLLoss',
    'proportion_kl_loss', 'binary_kl', 'percentile_threshold', 'percentile_index',
    'count_split',
    'otsu_threshold',
    'target_fractions'
]
