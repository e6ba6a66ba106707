# Copyright (c) mmseg-sbce contributors.
from .amp import AMP_DTYPES, AutocastOptimWrapper, amp_optim_wrapper

__all__ = ['AMP_DTYPES', 'AutocastOptimWrapper', 'amp_optim_wrapper']
