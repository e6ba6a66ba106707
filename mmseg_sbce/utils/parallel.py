# Copyright (c) mmseg-sbce contributors.
"""Processes and model wrappers: the conventions every package shares.

* :func:`unwrap_model`: the model inside a wrapper such as DDP.
* :func:`fork_pool`: a process pool whose workers start in milliseconds and may run torch
  ops safely (see :func:`single_thread_worker`), for single-purpose scripts.
* :func:`worker_pool`: the same, safe to create from a process with live threads (a
  training rank): the library's own pools.
* :func:`default_workers`: the cores this process may use, shared among the ranks of a node.
"""
import multiprocessing as mp
import os
from typing import Any, Sequence

import torch


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """``model.module`` for an mmengine model wrapper (DDP, ...), else ``model`` itself."""
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def single_thread_worker() -> None:
    """Pool initializer for forked workers that run torch ops: one intra-op thread.

    GNU OpenMP is not fork-safe: a forked child whose parent already ran a parallel torch
    op hangs in its first parallel region (the pool never returns). With one thread torch
    never opens one; the workers are the parallelism anyway (torch's own DataLoader workers
    do the same).
    """
    torch.set_num_threads(1)


def fork_pool(workers: int) -> Any:
    """A ``multiprocessing`` pool of ``workers`` single-threaded processes.

    Forked where the platform allows it: workers start in milliseconds (spawn would re-import
    torch and mmseg in every worker), and the pooled function may live in a module loaded
    by path. Only for a process that starts no threads of its own before the pool (a
    benchmark script); the library's pools use :func:`worker_pool`. Use it as a context
    manager or close it yourself.
    """
    methods = mp.get_all_start_methods()
    ctx = mp.get_context('fork' if 'fork' in methods else 'spawn')
    return ctx.Pool(workers, initializer=single_thread_worker)


#: What the fork server imports once, so that its workers start with the labelling code loaded.
WORKER_PRELOAD = ('mmseg_sbce.apis.export', 'mmseg_sbce.evaluation.pseudo_eval')


def worker_pool(workers: int, preload: Sequence[str] = WORKER_PRELOAD) -> Any:
    """A pool of ``workers`` single-threaded processes that is safe to create from a process
    with live threads.

    ``fork`` copies only the calling thread: a lock that another thread holds at that moment
    (the interpreter's thread-state lock, a library's) stays locked in the child forever, and
    the child hangs when it needs it. A training rank always has such threads (the process
    group's, the data loaders'), and a Q update's labelling pool was seen to hang that way in
    CPython's after-fork clean-up. So the workers are forked from a fork server: a
    single-threaded process started once per process, which imports ``preload`` once, so
    workers still start in milliseconds. The pooled function must be importable (defined at
    module level in an importable module or in the ``__main__`` script) and its arguments
    picklable; where the platform has no fork server, spawn is used. Only the first call's
    ``preload`` matters: the server is started once.
    """
    methods = mp.get_all_start_methods()
    if 'forkserver' in methods:
        ctx = mp.get_context('forkserver')
        ctx.set_forkserver_preload(list(preload))
    else:
        ctx = mp.get_context('spawn')
    return ctx.Pool(workers, initializer=single_thread_worker)


def default_workers() -> int:
    """The cores available to this process divided by the ranks on this node
    (``LOCAL_WORLD_SIZE`` under torchrun), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    local = int(os.environ.get('LOCAL_WORLD_SIZE', '1'))
    return max(1, cpus // max(1, local))
