# Copyright (c) mmseg-sbce contributors.
from .sbce_head import TRAIN_MODES, SBCEHead

__all__ = ['SBCEHead', 'TRAIN_MODES']
