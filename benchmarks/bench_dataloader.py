# Copyright (c) mmseg-sbce contributors.
"""Samples/s of a config's training dataloader alone against its training step's rate.

The loader is the config's own ``train_dataloader`` (pipeline, batch size, sampler and
worker count as shipped), read the way ``tools/train.py`` reads a config
(``load_runner_config`` with ``--cfg-options data_root=...``), and built by mmengine's
``Runner.build_dataloader`` after the config's ``env_cfg.mp_cfg`` (fork, single-threaded
OpenCV, as ``Runner`` sets them). Only the data root (and with it the Q store, which follows
the work dir as in training) changes: it points at a data set generated in the layout the
config's data set type documents (``docs/data.md``):

* ``VOCClsDataset``: ``JPEGImages/``, ``SegmentationClassAug/``,
  ``ImageSets/Segmentation/trainaug.txt`` (labels from the masks), default 375 x 500;
* ``COCOClsDataset``: ``train2014/``, ``SegmentationClass/train2014/``,
  ``ImageSets/train.txt``, ``cls_labels_train.json``, default 480 x 640;
* ``DemoClsDataset``: the demo generator's own output, default 128 x 128.

The images are the demo generator's (``render_demo_sample``: textured background, 1-3
objects of 10 classes, noise; rendered square at the longer side and resized to the
requested size), written by the generators' VOC-layout writer and moved into the layout.
For configs whose pipeline has ``LoadQMap``, the Q store holds one Q map per image, written
as the Q update writes it (``save_label_png`` into ``{q_dir}/phase_1``, then
``{q_dir}/current`` pointed at it); the maps are the generated masks.

Measured, in alternating rounds (every loader, then the step; medians and ranges of the
per-round ratios to that round's step):

* the loader with the shipped ``num_workers`` and with each of ``--workers`` (default 0, 1,
  2): before a timed round the batches the persistent workers prefetched meanwhile are
  drained untimed, then ``--batches`` batches are timed, then the workers are let finish
  the batches they were asked for, so a loader never runs while another is timed. Besides
  samples/s, the CPU time of every process of the loader (main process + workers, from
  ``/proc``) per sample: unlike the rate, it does not depend on how busy the machine is;
* ``model.train_step`` of the config's model (random init; ``sbce-classifier`` mode when
  the pipeline reads Q) on a synthetic batch of ``--step-batch`` images at
  ``--step-crop`` (default: the config's batch and crop); ``--step-iters 0`` skips it;
* (``--profile N``) the pipeline's transforms one by one in this process over N samples
  (one torch thread, as in a worker): CPU ms per sample of each.

A core that only runs one worker delivers ``1 / cost`` samples/s, so a step rate of R it/s
at batch B needs ``R * B * cost`` cores (and as many workers); a table gives that for
``--gpu-rates``, with the pipeline's cost alone and with the 1-worker loader's (collation,
transfer to the main process and the worker loop included).

Usage::

    python benchmarks/bench_dataloader.py --num 200 --rounds 5 --batches 6 --profile 96
    python benchmarks/bench_dataloader.py --config configs/sbce_voc.py --num 48 \\
        --rounds 3 --batches 6 --step-batch 1 --step-crop 368 --profile 96
    python benchmarks/bench_dataloader.py --config configs/sbce_coco.py --num 48 \\
        --rounds 3 --batches 6 --step-batch 1 --step-crop 368 --profile 96

(without ``--config``: the demo's SBCE config). ResNet-38d at the shipped crop (368) and
batch (6) takes minutes per step on a CPU: pass a smaller ``--step-batch`` (or
``--step-crop``, or ``--step-iters 0``) there; on a CPU the step row only says how far a
CPU is from needing any worker at all.
"""
import argparse
import copy
import os
import os.path as osp
import shutil
import statistics
import sys
import tempfile
import time
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = 'configs/demo/sbce_demo.py'
# Data set type -> (layout, default image size (h, w)).
LAYOUTS = {
    'VOCClsDataset': ('voc', (375, 500)),
    'COCOClsDataset': ('coco', (480, 640)),
    'DemoClsDataset': ('demo', (128, 128)),
}
# Foreground classes drawn in the generated VOC / COCO images (the generator's maximum).
GENERATED_CLASSES = 10


# ----------------------------------------------------------------------------- data
def _render_resized(seed: int, split: str, index: int, size: Tuple[int, int]):
    """A demo sample rendered square at the longer side, resized to ``size`` (h, w)."""
    import cv2

    from mmseg_sbce.datasets.cls_labels import labels_from_mask
    from mmseg_sbce.datasets.demo_data import render_demo_sample
    h, w = size
    img, label, part, _ = render_demo_sample(seed, split, index, max(h, w),
                                             num_classes=GENERATED_CLASSES)
    if (h, w) != img.shape[:2]:
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
        part = cv2.resize(part, (w, h), interpolation=cv2.INTER_NEAREST)
    return img, label, part, labels_from_mask(label, GENERATED_CLASSES)


def make_layout(layout: str, root: str, num: int, size: Tuple[int, int],
                seed: int = 0) -> Tuple[List[str], str]:
    """Generate ``num`` training images of ``size`` in ``layout`` under ``root``.

    Returns:
        tuple: The image ids and the folder of their masks.
    """
    from mmseg_sbce.datasets.demo_data import generate_demo_dataset
    from mmseg_sbce.datasets.generated_common import write_voc_dataset
    from mmseg_sbce.utils.io import read_split
    if layout == 'demo':
        if size[0] != size[1]:
            raise ValueError(f'the demo data set has square images, got --size {size}')
        generate_demo_dataset(root, num_train=num, num_val=1, img_size=size[0], seed=seed)
        return (read_split(osp.join(root, 'ImageSets/Segmentation/train.txt')),
                osp.join(root, 'SegmentationClass'))
    write_voc_dataset(root, {'train': num},
                      lambda split, i: _render_resized(seed, split, i, size), jpeg_quality=90)
    shutil.rmtree(osp.join(root, 'SegmentationPart'))
    split_file = osp.join(root, 'ImageSets', 'Segmentation', 'train.txt')
    ids = read_split(split_file)
    if layout == 'voc':  # mmseg's voc_aug.py converter output (docs/data.md)
        os.rename(split_file, osp.join(osp.dirname(split_file), 'trainaug.txt'))
        os.rename(osp.join(root, 'SegmentationClass'), osp.join(root, 'SegmentationClassAug'))
        os.remove(osp.join(root, 'cls_labels.json'))  # the recipe reads labels from masks
        return ids, osp.join(root, 'SegmentationClassAug')
    # COCO: what tools/dataset_converters/coco2014.py writes (docs/data.md)
    os.rename(osp.join(root, 'JPEGImages'), osp.join(root, 'train2014'))
    masks = osp.join(root, 'SegmentationClass')
    os.rename(masks, masks + '_train')
    os.makedirs(masks)
    os.rename(masks + '_train', osp.join(masks, 'train2014'))
    os.rename(split_file, osp.join(root, 'ImageSets', 'train.txt'))
    os.rmdir(osp.dirname(split_file))
    os.rename(osp.join(root, 'cls_labels.json'), osp.join(root, 'cls_labels_train.json'))
    return ids, osp.join(masks, 'train2014')


def write_q_store(q_dir: str, ids: Sequence[str], mask_dir: str) -> str:
    """Phase 1 of a Q store, written as the Q update writes it; returns its folder."""
    from mmseg_sbce.apis import save_label_png
    from mmseg_sbce.engine.hooks.q_update_hook import (check_q_store, phase_dir,
                                                       point_current)
    from mmseg_sbce.utils.io import read_label_png
    store = phase_dir(q_dir, 1)
    os.makedirs(store, exist_ok=True)
    for img_id in ids:
        save_label_png(read_label_png(osp.join(mask_dir, img_id + '.png')),
                       osp.join(store, img_id + '.png'))
    point_current(q_dir, store)
    check_q_store(store, ids)
    return store


# --------------------------------------------------------------------------- config
def read_config(config: str, data_root: str, work_dir: str):
    """The config as ``tools/train.py`` reads it, with ``data_root`` and ``work_dir``."""
    import mmseg_sbce  # noqa: F401  (registers the plugin)
    from mmengine.registry import init_default_scope

    from mmseg_sbce.utils.runner_config import load_runner_config
    init_default_scope('mmseg')
    return load_runner_config(config, cfg_options=dict(data_root=data_root),
                              work_dir=work_dir)


def pipeline_types(cfg) -> List[str]:
    return [t['type'] for t in cfg.train_dataloader.dataset.pipeline]


def build_loader(cfg, num_workers: int):
    """The config's train dataloader with ``num_workers`` (persistent when > 0)."""
    from mmengine.runner import Runner
    loader = cfg.train_dataloader.copy()
    loader.num_workers = num_workers
    loader.persistent_workers = num_workers > 0
    return Runner.build_dataloader(loader, seed=0)


def build_model(cfg, crop: int):
    """The config's model at ``crop``, random init (no pretrained weights)."""
    from mmengine.logging import MMLogger
    from mmseg.registry import MODELS
    # init_weights logs every parameter's initialiser to the current logger: keep it quiet
    MMLogger.get_instance('bench_dataloader', log_level='WARNING')
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.data_preprocessor['size'] = (crop, crop)
    model_cfg.backbone.pop('init_cfg', None)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model.train()


def _crop_size(cfg) -> int:
    for t in cfg.train_dataloader.dataset.pipeline:
        if t['type'] == 'RandomCrop':
            crop = t['crop_size']
            return int(crop if isinstance(crop, int) else max(crop))
    raise ValueError('the train pipeline has no RandomCrop: pass --step-crop')


# --------------------------------------------------------------------------- timing
def _cpu_seconds(pid: int) -> Optional[float]:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``), None elsewhere."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


class LoaderTimer:
    """One loader, kept alive across rounds; times a round of ``batches`` batches."""

    def __init__(self, loader, num_workers: int):
        self.iter = iter(loader)
        self.num_workers = num_workers
        self.batch_size = loader.batch_size
        self.prefetch = (loader.prefetch_factor or 0) * num_workers
        self.pids = [w.pid for w in getattr(self.iter, '_workers', [])]
        next(self.iter)  # start the workers
        self.settle()

    def workers_cpu(self) -> Optional[float]:
        times = [_cpu_seconds(pid) for pid in self.pids]
        return None if None in times else sum(times)

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until the workers have prepared what they were asked for and idle."""
        if not self.pids:
            return
        if self.workers_cpu() is None:
            time.sleep(2.0)
            return
        end = time.perf_counter() + timeout
        last = self.workers_cpu()
        while time.perf_counter() < end:
            time.sleep(0.3)
            now = self.workers_cpu()
            if now == last:
                return
            last = now

    def round(self, batches: int) -> Tuple[float, Optional[float]]:
        """(samples/s, CPU s per sample of all the loader's processes) of one round."""
        for _ in range(self.prefetch):  # what the workers prepared while others ran
            next(self.iter)
        cpu0, workers0 = time.process_time(), self.workers_cpu()
        start = time.perf_counter()
        for _ in range(batches):
            next(self.iter)
        wall = time.perf_counter() - start
        cpu, workers1 = time.process_time() - cpu0, self.workers_cpu()
        samples = self.batch_size * batches
        cpu_per_sample = None if workers0 is None else (cpu + workers1 - workers0) / samples
        self.settle()
        return samples / wall, cpu_per_sample


class StepTimer:
    """``model.train_step`` of the config's model on one synthetic batch."""

    def __init__(self, cfg, batch: int, crop: int, reads_q: bool):
        from mmengine.optim import OptimWrapper

        from bench_train_step import make_batch
        self.model = build_model(cfg, crop)
        mode = cfg.model.decode_head.get('train_mode', 'default')
        if reads_q and hasattr(self.model, 'set_train_mode'):
            mode = 'sbce-classifier'  # the phases that read Q
            self.model.set_train_mode(mode)
        self.wrapper = OptimWrapper(
            torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9))
        self.data = make_batch(self.model.decode_head.num_classes, batch, crop)
        self.batch = batch
        self.name = (f'train_step ({mode}, batch {batch}, crop {crop}, '
                     f'{torch.get_num_threads()} torch thread(s))')
        self.model.train_step(self.data, self.wrapper)  # warm-up

    def round(self, iters: int) -> float:
        """Samples/s of ``iters`` steps."""
        start = time.perf_counter()
        for _ in range(iters):
            self.model.train_step(self.data, self.wrapper)
        return self.batch * iters / (time.perf_counter() - start)


def profile_transforms(cfg, samples: int, seed: int = 0) -> Dict[str, float]:
    """CPU seconds per sample of each transform of the train pipeline, in this process."""
    from mmseg.registry import DATASETS
    np.random.seed(seed)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a dataloader worker (idle OpenMP threads spin)
    try:
        return _profile(dataset, samples)
    finally:
        torch.set_num_threads(threads)


def _profile(dataset, samples: int) -> Dict[str, float]:
    costs: Dict[str, float] = OrderedDict()
    for i in range(-1, samples):  # sample -1 warms up (lazy imports, first allocations)
        results = dataset.get_data_info(i % len(dataset))
        for k, t in enumerate(dataset.pipeline.transforms):
            name = f'{k + 1}. {type(t).__name__}'
            start = time.process_time()
            results = t(results)
            if i >= 0:
                costs[name] = costs.get(name, 0.0) + time.process_time() - start
            if results is None:
                raise RuntimeError(f'{name} dropped sample {i % len(dataset)}')
    return OrderedDict((k, v / samples) for k, v in costs.items())


# ----------------------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEMO_CONFIG,
                        help=f'an SBCE or baseline config (default {DEMO_CONFIG})')
    parser.add_argument('--num', type=int, default=48, help='generated training images')
    parser.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'),
                        help='image size (default: 375 500 VOC, 480 640 COCO, 128 128 demo)')
    parser.add_argument('--workers', type=int, nargs='*', default=[0, 1, 2],
                        help='worker counts measured besides the shipped one')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--batches', type=int, default=6, help='timed batches per round')
    parser.add_argument('--step-batch', type=int, help='default: the config\'s batch size')
    parser.add_argument('--step-crop', type=int, help='default: the config\'s crop')
    parser.add_argument('--step-iters', type=int, default=1,
                        help='timed steps per round (0: no step)')
    parser.add_argument('--threads', type=int, default=0, help='torch threads of the step')
    parser.add_argument('--profile', type=int, default=0, metavar='N',
                        help='time each transform in-process over N samples')
    parser.add_argument('--gpu-rates', type=float, nargs='*', default=[1, 2, 5, 10, 20],
                        help='step rates (it/s) of the workers-needed table')
    parser.add_argument('--work-dir', help='a new folder that keeps the generated data '
                        '(default: a temporary folder, removed at the end)')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = args.config if osp.isabs(args.config) or osp.isfile(args.config) \
        else osp.join(ROOT, args.config)
    work = args.work_dir or tempfile.mkdtemp(prefix='bench_loader_')
    try:
        run(args, config, work)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


def run(args, config: str, work: str) -> None:
    from mmengine.utils.dl_utils import set_multi_processing
    data_root = osp.join(work, 'data')
    if osp.isdir(data_root) and os.listdir(data_root):
        raise FileExistsError(f'{data_root} is not empty: give --work-dir a new folder')
    cfg = read_config(config, data_root, osp.join(work, 'work_dir'))
    ds_type = cfg.train_dataloader.dataset.type
    if ds_type not in LAYOUTS:
        raise ValueError(f'{config}: no generated layout for train data set type '
                         f'{ds_type!r} (supported: {", ".join(LAYOUTS)})')
    layout, default_size = LAYOUTS[ds_type]
    size = tuple(args.size) if args.size else default_size
    ids, mask_dir = make_layout(layout, data_root, args.num, size)
    reads_q = 'LoadQMap' in pipeline_types(cfg)
    if reads_q:
        write_q_store(cfg.q_dir, ids, mask_dir)
    threads = torch.get_num_threads()
    set_multi_processing(**cfg.get('env_cfg', {}).get('mp_cfg', {}))
    torch.set_num_threads(threads)  # the step keeps its threads

    shipped = cfg.train_dataloader.num_workers
    counts = [shipped] + [n for n in dict.fromkeys(args.workers) if n != shipped]
    loaders = OrderedDict((n, LoaderTimer(build_loader(cfg, n), n)) for n in counts)
    batch = cfg.train_dataloader.batch_size

    step = None
    if args.step_iters > 0:
        step = StepTimer(cfg, args.step_batch or batch, args.step_crop or _crop_size(cfg),
                         reads_q)

    names = {n: f'loader, {n} worker{"s" * (n != 1)}' + (' (shipped)' if n == shipped else
                                                          ' (in-process)' if n == 0 else '')
             for n in counts}
    rates: Dict[str, List[float]] = OrderedDict((names[n], []) for n in counts)
    cpu: Dict[str, List[float]] = {names[n]: [] for n in counts}
    if step is not None:
        rates[step.name] = []
    loads = [os.getloadavg()[0]] if hasattr(os, 'getloadavg') else []
    for _ in range(args.rounds):
        for n, timer in loaders.items():
            rate, per_sample = timer.round(args.batches)
            rates[names[n]].append(rate)
            if per_sample is not None:
                cpu[names[n]].append(per_sample)
        if step is not None:
            rates[step.name].append(step.round(args.step_iters))
        if loads:
            loads.append(os.getloadavg()[0])
    del loaders  # stop the workers before profiling

    print(f'{osp.relpath(config, ROOT) if config.startswith(ROOT) else config}: '
          f'{ds_type}, batch {batch}, num_workers {shipped} (shipped); {args.num} generated '
          f'{size[0]} x {size[1]} images; {args.rounds} alternating rounds of '
          f'{args.batches} batches' +
          (f' and {args.step_iters} step(s)' if step else ' (step not measured)') +
          (f'; 1-min load {min(loads):.1f}-{max(loads):.1f}' if loads else ''))
    print('| what | median samples/s | ratio to the step (median) | range | '
          'CPU ms / sample (all processes) |')
    print('| --- | --- | --- | --- | --- |')
    for name, rs in rates.items():
        if step is not None:
            ratio = [r / s for r, s in zip(rs, rates[step.name])]
            ratio_cells = (f'{_fmt(statistics.median(ratio))} | '
                           f'{_fmt(min(ratio))}-{_fmt(max(ratio))}')
        else:
            ratio_cells = '- | -'
        cost = (f'{1000 * statistics.fmean(cpu[name]):.1f}' if cpu.get(name) else
                'n/a' if name in cpu else '')
        print(f'| {name} | {_fmt(statistics.median(rs))} | {ratio_cells} | {cost} |')

    costs_per_sample = OrderedDict()  # what one sample costs a core, by measurement
    if args.profile:
        costs = profile_transforms(cfg, args.profile)
        total = sum(costs.values())
        print(f'\nTransforms in-process, {args.profile} samples, CPU ms per sample (mean):')
        print('| transform | CPU ms / sample | share |')
        print('| --- | --- | --- |')
        for name, c in costs.items():
            print(f'| {name} | {1000 * c:.2f} | {100 * c / total:.0f} % |')
        print(f'| whole pipeline | {1000 * total:.2f} | 100 % |')
        costs_per_sample['pipeline alone'] = total
    if cpu.get(names.get(1)):
        costs_per_sample['1-worker loader'] = statistics.fmean(cpu[names[1]])
    if costs_per_sample:
        print(f'\nCores the loader needs at batch {batch}: step rate x {batch} x CPU time per '
              'sample; one worker per core (' + '; '.join(
                  f'{name}: {1000 * c:.2f} ms, {1 / c:.0f} samples/s per core'
                  for name, c in costs_per_sample.items()) + '):')
        print('| step rate (it/s) | samples/s | ' +
              ' | '.join(f'cores, {name}' for name in costs_per_sample) + ' |')
        print('| --- | --- | ' + ' | '.join('---' for _ in costs_per_sample) + ' |')
        for r in args.gpu_rates:
            print(f'| {r:g} | {r * batch:g} | ' + ' | '.join(
                f'{r * batch * c:.2f}' for c in costs_per_sample.values()) + ' |')


def _fmt(x: float) -> str:
    """Three significant digits, without an exponent from 100 up."""
    return f'{x:.0f}' if x >= 100 else f'{x:.3g}'


if __name__ == '__main__':
    sys.exit(main())
