# Copyright (c) mmseg-sbce contributors.
"""Mixed-precision training: which optimizer wrapper ``tools/train.py --amp`` selects."""
import copy
from contextlib import contextmanager
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.device import get_device
from mmengine.optim import OptimWrapper
from mmengine.runner.amp import autocast

from mmseg.registry import OPTIM_WRAPPERS

AMP_DTYPES = ('float16', 'bfloat16')


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Runs the forward pass under bfloat16 autocast, without loss scaling, on any device.

    mmengine's ``AmpOptimWrapper`` refuses to be built without CUDA (or another accelerator),
    so it cannot train on CPU, where autocast supports bfloat16 only. bfloat16 has float32's
    exponent range, so its gradients neither overflow nor underflow and need no loss scaler;
    this wrapper is ``OptimWrapper`` plus the autocast context. float16 does need a scaler:
    use ``AmpOptimWrapper`` for it.

    Args:
        dtype (str | torch.dtype): autocast dtype; only ``'bfloat16'``.
        **kwargs: the arguments of :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', **kwargs) -> None:
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(f'AutocastOptimWrapper supports dtype bfloat16 only (float16 '
                             f'needs loss scaling: use AmpOptimWrapper), got {dtype!r}')
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model: nn.Module):
        """The parent's context (gradient accumulation) plus bfloat16 autocast."""
        with super().optim_context(model), autocast(dtype=self.cast_dtype):
            yield


def amp_optim_wrapper(optim_wrapper: dict,
                      dtype: Optional[str] = None,
                      device: Optional[str] = None) -> dict:
    """Turn an ``OptimWrapper`` config into a mixed-precision one, as ``--amp`` does.

    - On CUDA (and other accelerators mmengine's ``AmpOptimWrapper`` supports):
      ``AmpOptimWrapper`` with ``dtype`` (default float16) and a dynamic loss scale.
    - On CPU: :class:`AutocastOptimWrapper` (bfloat16, the only CPU autocast dtype).

    Args:
        optim_wrapper (dict): the config's ``optim_wrapper``; its ``type`` must be
            ``'OptimWrapper'`` (or already one of the two mixed-precision wrappers, then it
            is returned unchanged).
        dtype (str, optional): ``'float16'`` or ``'bfloat16'``; None picks float16 on an
            accelerator and bfloat16 on CPU.
        device (str, optional): the training device type; defaults to
            ``mmengine.device.get_device()``.

    Returns:
        dict: a new config; ``optim_wrapper`` itself is not modified.
    """
    if dtype is not None and dtype not in AMP_DTYPES:
        raise ValueError(f'AMP dtype must be one of {AMP_DTYPES}, got {dtype!r}')
    wrapper_type = optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type in ('AmpOptimWrapper', 'AutocastOptimWrapper'):
        return copy.deepcopy(optim_wrapper)
    if wrapper_type != 'OptimWrapper':
        raise ValueError(f'--amp needs optim_wrapper type OptimWrapper, got {wrapper_type!r}')
    out = copy.deepcopy(optim_wrapper)
    if (device or get_device()) == 'cpu':
        if dtype == 'float16':
            raise ValueError('float16 autocast is not available on CPU: use bfloat16')
        out.update(type='AutocastOptimWrapper', dtype='bfloat16')
    else:
        out.update(type='AmpOptimWrapper', dtype=dtype or 'float16', loss_scale='dynamic')
    return out
