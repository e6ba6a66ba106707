# Copyright (c) mmseg-sbce contributors.
import pytest
import torch
import torch.nn as nn
from mmengine.config import ConfigDict

from mmseg.registry import OPTIM_WRAPPERS
from mmseg_sbce.engine.optimizers import AutocastOptimWrapper, amp_optim_wrapper

PLAIN = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1), clip_grad=None)


def test_cpu_gets_bfloat16_autocast_without_loss_scale():
    cfg = ConfigDict(PLAIN)
    out = amp_optim_wrapper(cfg, device='cpu')
    assert out == dict(PLAIN, type='AutocastOptimWrapper', dtype='bfloat16')
    assert cfg.type == 'OptimWrapper'  # the input is not modified
    assert amp_optim_wrapper(PLAIN, 'bfloat16', device='cpu')['dtype'] == 'bfloat16'
    with pytest.raises(ValueError, match='float16 autocast is not available on CPU'):
        amp_optim_wrapper(PLAIN, 'float16', device='cpu')


def test_gpu_gets_amp_optim_wrapper():
    assert amp_optim_wrapper(PLAIN, device='cuda') == dict(
        PLAIN, type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
    assert amp_optim_wrapper(PLAIN, 'bfloat16', device='cuda')['dtype'] == 'bfloat16'


def test_bad_input():
    with pytest.raises(ValueError, match="'float8'"):
        amp_optim_wrapper(PLAIN, 'float8', device='cpu')
    with pytest.raises(ValueError, match='OptimWrapperDict'):
        amp_optim_wrapper(dict(type='OptimWrapperDict'), device='cpu')
    done = dict(PLAIN, type='AmpOptimWrapper', dtype='bfloat16')
    assert amp_optim_wrapper(done, device='cpu') == done


def test_autocast_optim_wrapper_runs_forward_in_bfloat16():
    model = nn.Linear(4, 2)
    wrapper = OPTIM_WRAPPERS.build(
        dict(type='AutocastOptimWrapper',
             optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    assert isinstance(wrapper, AutocastOptimWrapper)
    with wrapper.optim_context(model):
        out = model(torch.ones(3, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().sum())
    assert model(torch.ones(3, 4)).dtype == torch.float32  # only inside the context
    with pytest.raises(ValueError, match='bfloat16 only'):
        AutocastOptimWrapper(dtype='float16', optimizer=torch.optim.SGD(
            model.parameters(), lr=0.1))
