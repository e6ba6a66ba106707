# Copyright (c) mmseg-sbce contributors.
import threading

import pytest
import torch
from mmengine.registry import MODEL_WRAPPERS

from mmseg_sbce.utils.parallel import default_workers, fork_pool, unwrap_model, worker_pool

# Held by a thread of the test process while a pool is created (see below).
_HELD = threading.Lock()


def _threads(_):
    return torch.get_num_threads()


def _lock_is_free(_):
    """In a worker: can it take the lock that a thread of the parent held at fork time?"""
    if _HELD.acquire(timeout=2):
        _HELD.release()
        return True
    return False


@pytest.mark.parametrize('make_pool', [fork_pool, worker_pool])
def test_pool_workers_are_single_threaded(make_pool):
    with make_pool(2) as pool:
        assert pool.map(_threads, range(4)) == [1, 1, 1, 1]


def _pool_while_a_thread_holds_the_lock(make_pool):
    """Create a pool while another thread holds ``_HELD``, as a training rank's threads hold
    their locks (the interpreter's among them) at any moment; then ask the workers."""
    taken, done = threading.Event(), threading.Event()

    def holder():
        with _HELD:
            taken.set()
            done.wait(60)

    thread = threading.Thread(target=holder, daemon=True)
    thread.start()
    assert taken.wait(10)
    try:
        with make_pool(2) as pool:
            done.set()  # released in this process: only a copy of it could still be held
            return pool.map(_lock_is_free, range(2))
    finally:
        done.set()
        thread.join(10)


def test_worker_pool_safe_to_create_from_a_process_with_live_threads():
    assert _pool_while_a_thread_holds_the_lock(worker_pool) == [True, True]


def test_fork_pool_copies_the_locks_other_threads_hold():
    """Why the library's pools are not forked from the caller: a forked worker inherits the
    lock in its held state, with no thread left to release it (a real hang when the lock
    is the interpreter's). If this ever passes, fork became safe and the test is stale."""
    assert _pool_while_a_thread_holds_the_lock(fork_pool) == [False, False]


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
