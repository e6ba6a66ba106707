# Copyright (c) mmseg-sbce contributors.
"""Processes and model wrappers: the conventions every package shares.

* :func:`unwrap_model`: the model inside a wrapper such as DDP.
* :func:`fork_pool`: a process pool whose workers start in milliseconds and may run torch
  ops safely (see :func:`single_thread_worker`).
* :func:`default_workers`: the cores this process may use, shared among the ranks of a node.
"""
import multiprocessing as mp
import os
from typing import Any

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
    torch and mmseg in every worker). Use it as a context manager or close it yourself.
    """
    methods = mp.get_all_start_methods()
    ctx = mp.get_context('fork' if 'fork' in methods else 'spawn')
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
