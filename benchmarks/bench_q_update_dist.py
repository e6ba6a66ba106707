# Copyright (c) mmseg-sbce contributors.
"""Wall time of one Q update (``export_pseudo_labels``) with 1 and with 2 gloo processes.

The demo's classifier (``configs/demo/sbce_demo.py``, random init: the cost does not depend
on the weights) labels a generated demo training set with the demo's ``pseudo_cfg``
(4 scales x flip, eq. 9, dCRF) as the Q update does. Every process labels its shard
(``index % world_size``) in-process (``workers=0``, one torch thread), so the summary's
``net_s`` (image to fused maps: the network passes) and ``crf_s`` (eq. 9, dCRF and the
PNG writes) are timed apart; the rest of the process-seconds is image decoding, the
pipeline, the manifest and the final synchronisation. Runs alternate (1, 2, 1, 2, ...),
each in fresh processes; the speed-up is taken per pair. The "ceiling" (the same
forward-pass work in 1 process and split over 2, once per round) says what the machine let
any second process gain at that moment.

Usage::

    python benchmarks/bench_q_update_dist.py --num 100 --rounds 3
"""
import argparse
import os
import socket
import statistics
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, data_root: str, out_dir: str,
            queue) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    from bench_train_step import build_model
    from mmengine.config import Config
    from mmseg.registry import DATASETS

    from mmseg_sbce.apis import export_pseudo_labels
    from mmseg_sbce.apis.pseudo_cfg import DEFAULT_PIPELINE
    model = build_model('tinycnn', 112, torch.device('cpu'))
    cfg = Config.fromfile('configs/demo/sbce_demo.py')
    dataset = DATASETS.build(dict(type='DemoClsDataset', data_root=data_root,
                                  pipeline=DEFAULT_PIPELINE, keep_unlabelled=True))
    dist.barrier()
    summary = export_pseudo_labels(model, dataset, out_dir, dict(cfg.pseudo_cfg), workers=0,
                                   progress=False, clean=True)
    if rank == 0:
        queue.put({k: summary[k] for k in ('elapsed_s', 'net_s', 'crf_s', 'written')})
    dist.destroy_process_group()


def _busy(rank: int, iters: int, queue) -> None:
    """The ceiling's workload: forward passes of the demo model on a fixed batch."""
    torch.set_num_threads(1)
    from bench_train_step import build_model
    model = build_model('tinycnn', 112, torch.device('cpu')).eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        model.extract_maps(x)
        start = time.perf_counter()
        for _ in range(iters):
            model.extract_maps(x)
    queue.put(time.perf_counter() - start)


def ceiling(iters: int) -> float:
    """What this machine lets 2 processes gain at this moment: the same total work in 1
    process and split over 2 concurrent processes (timed inside the processes)."""
    ctx = mp.get_context('spawn')
    times = {}
    for n in (1, 2):
        queue = ctx.SimpleQueue()
        mp.start_processes(_busy, args=(2 * iters // n, queue), nprocs=n, start_method='spawn')
        times[n] = max(queue.get() for _ in range(n))
    return times[1] / times[2]


def run(world_size: int, data_root: str, out_dir: str) -> dict:
    ctx = mp.get_context('spawn')
    queue = ctx.SimpleQueue()
    mp.start_processes(_worker, args=(world_size, _free_port(), data_root, out_dir, queue),
                       nprocs=world_size, start_method='spawn')
    return queue.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num', type=int, default=100, help='training images')
    parser.add_argument('--img-size', type=int, default=128)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--ceiling-iters', type=int, default=40,
                        help='forward passes of the ceiling measurement (per round)')
    args = parser.parse_args()
    from mmseg_sbce.datasets.demo_data import generate_demo_dataset
    tmp = tempfile.mkdtemp(prefix='bench_q_dist_')
    data_root = os.path.join(tmp, 'data')
    generate_demo_dataset(data_root, num_train=args.num, num_val=1, img_size=args.img_size)
    results, ceilings = {1: [], 2: []}, []
    for _ in range(args.rounds):
        ceilings.append(ceiling(args.ceiling_iters))
        for n in (1, 2):
            results[n].append(run(n, data_root, os.path.join(tmp, f'out{n}')))
            r = results[n][-1]
            print(f'{n} process(es): {r["written"]} images in {r["elapsed_s"]:.2f} s '
                  f'(net {r["net_s"]:.2f} s, labelling+dCRF+PNG {r["crf_s"]:.2f} s summed)')
    speedups = [a['elapsed_s'] / b['elapsed_s'] for a, b in zip(results[1], results[2])]
    print(f'\n{args.num} images of {args.img_size} px, {args.rounds} alternating rounds')
    print('| processes | median wall s | network share | labelling+dCRF+PNG share | rest |')
    print('| --- | --- | --- | --- | --- |')
    for n, rs in results.items():
        proc_s = [r['elapsed_s'] * n for r in rs]
        net = statistics.median(r['net_s'] / p for r, p in zip(rs, proc_s))
        crf = statistics.median(r['crf_s'] / p for r, p in zip(rs, proc_s))
        print(f'| {n} | {statistics.median(r["elapsed_s"] for r in rs):.2f} | {net:.0%} | '
              f'{crf:.0%} | {1 - net - crf:.0%} |')
    print(f'speed-up 1 -> 2 processes: median {statistics.median(speedups):.2f}x '
          f'(range {min(speedups):.2f}-{max(speedups):.2f}); ceiling of the machine at '
          f'the time: median {statistics.median(ceilings):.2f}x '
          f'(range {min(ceilings):.2f}-{max(ceilings):.2f})')


if __name__ == '__main__':
    main()
