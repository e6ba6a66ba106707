# Copyright (c) mmseg-sbce contributors.
"""Samples/s of the demo's training dataloader alone against the training step's rate.

The loader is the one ``configs/demo/sbce_demo.py`` ships (``LoadCheckedImageFromFile``,
``LoadQMap``, random resize, crop and flip, ``PackWSSSInputs``; its batch size and worker
count), built by mmengine's ``Runner.build_dataloader`` on a generated demo training set
whose ground-truth masks stand in for the Q store. The step is ``model.train_step`` of the
same config's classifier (sbce-classifier mode, random init) on one such batch. Rounds
alternate (loader, step, loader, ...); the ratio loader / step samples/s is taken per
round. A ratio above 1 means the loader keeps up; on a machine whose cores are all busy
training, the workers compete with the step for them, which this measures separately.

Usage::

    python benchmarks/bench_dataloader.py --num 200 --rounds 5 --batches 6
"""
import argparse
import os
import statistics
import tempfile
import time

import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner

from bench_train_step import CONFIGS, build_model


def build_loader(data_root: str, q_dir: str, num_workers: int = None):
    import mmseg_sbce  # noqa: F401  (registers the plugin)
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    cfg = Config.fromfile(CONFIGS['tinycnn'])
    loader = cfg.train_dataloader
    loader.dataset.data_root = data_root
    for t in loader.dataset.pipeline:
        if t['type'] == 'LoadQMap':
            t['q_dir'] = q_dir
    if num_workers is not None:
        loader.num_workers = num_workers
        loader.persistent_workers = num_workers > 0
    return Runner.build_dataloader(loader, seed=0), loader.batch_size, loader.num_workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num', type=int, default=200, help='training images')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--batches', type=int, default=6, help='batches per round')
    parser.add_argument('--threads', type=int, default=0, help='torch threads of the step')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from mmseg_sbce.datasets.demo_data import generate_demo_dataset
    tmp = tempfile.mkdtemp(prefix='bench_loader_')
    data_root = os.path.join(tmp, 'data')
    generate_demo_dataset(data_root, num_train=args.num, num_val=1)
    q_dir = os.path.join(tmp, 'q')
    os.makedirs(q_dir)
    os.symlink(os.path.join(data_root, 'SegmentationClass'), os.path.join(q_dir, 'current'))

    loaders = {}
    for workers in (None, 0):  # the shipped count, then in-process for reference
        loader, batch, n = build_loader(data_root, q_dir, workers)
        loaders[n] = iter(loader)
        next(loaders[n])  # start the workers
    model = build_model('tinycnn', 112, torch.device('cpu'))
    model.set_train_mode('sbce-classifier')
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9))
    data = next(loaders[0])
    model.train_step(data, wrapper)  # warm-up
    rates = {f'loader, {n} workers': [] for n in loaders}
    rates['train_step'] = []
    for _ in range(args.rounds):
        for n, it in loaders.items():
            start = time.perf_counter()
            for _ in range(args.batches):
                next(it)
            rates[f'loader, {n} workers'].append(batch * args.batches /
                                                 (time.perf_counter() - start))
        start = time.perf_counter()
        for _ in range(args.batches):
            model.train_step(data, wrapper)
        rates['train_step'].append(batch * args.batches / (time.perf_counter() - start))
    print(f'demo loader: batch {batch}, {args.num} images, {args.rounds} alternating rounds '
          f'of {args.batches} batches, step with {torch.get_num_threads()} torch thread(s)')
    print('| what | median samples/s | ratio to the step (median) | range |')
    print('| --- | --- | --- | --- |')
    for name, rs in rates.items():
        ratio = [r / s for r, s in zip(rs, rates['train_step'])]
        print(f'| {name} | {statistics.median(rs):.1f} | {statistics.median(ratio):.2f} | '
              f'{min(ratio):.2f}-{max(ratio):.2f} |')


if __name__ == '__main__':
    main()
