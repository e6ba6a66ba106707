# Copyright (c) mmseg-sbce contributors.
import torch
from mmengine.registry import MODEL_WRAPPERS

from mmseg_sbce.utils.parallel import default_workers, fork_pool, unwrap_model


def _threads(_):
    return torch.get_num_threads()


def test_fork_pool_workers_are_single_threaded():
    with fork_pool(2) as pool:
        assert pool.map(_threads, range(4)) == [1, 1, 1, 1]


def test_default_workers_shares_the_cores_among_local_ranks(monkeypatch):
    monkeypatch.delenv('LOCAL_WORLD_SIZE', raising=False)
    alone = default_workers()
    assert alone >= 1
    monkeypatch.setenv('LOCAL_WORLD_SIZE', str(alone * 4))
    assert default_workers() == 1


class _Holder(torch.nn.Module):

    def __init__(self, module):
        super().__init__()
        self.module = module


@MODEL_WRAPPERS.register_module(force=True)
class _TestWrapper(_Holder):
    """A model wrapper as mmengine knows them (DDP and friends are registered the same)."""


def test_unwrap_model():
    net = torch.nn.Linear(2, 2)
    assert unwrap_model(net) is net
    assert unwrap_model(_TestWrapper(net)) is net
    holder = _Holder(net)  # has a .module, but is not a registered wrapper
    assert unwrap_model(holder) is holder
