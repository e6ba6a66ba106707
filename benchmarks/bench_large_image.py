# Copyright (c) mmseg-sbce contributors.
"""Peak memory and time of the multi-scale inference on one large image, with and without
the ``pseudo_cfg.max_pixels`` cap.

Runs :func:`mmseg_sbce.apis.multi_scale_maps` (the export's inference, default scales
1.0/0.5/1.5/2.0 + flip) on one random ``H x W`` image with a randomly initialised model
of a config (the cost does not depend on the weights or the pixel values). Each setting
runs in a fresh process; peak memory is the process's peak resident set (``ru_maxrss``)
and the share of the inference is the peak minus the resident set right before it.

Example::

    python benchmarks/bench_large_image.py --size 2000x3000 --threads 1
"""
import argparse
import json
import os.path as osp
import resource
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CFG = osp.join(ROOT, 'configs', 'demo', 'sbce_demo.py')


def _rss_mib() -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def run_one(config: str, height: int, width: int, max_pixels: int, threads: int) -> dict:
    """Time and peak memory of one image's inference in this process."""
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmseg_sbce  # noqa: F401
    from mmseg.registry import MODELS
    from mmseg_sbce.apis import multi_scale_maps
    from mmseg_sbce.apis.inference import pass_sizes

    torch.set_num_threads(threads)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    model.init_weights()
    img = torch.from_numpy(
        np.random.default_rng(0).integers(0, 256, (3, height, width), dtype=np.uint8))
    scales = (1.0, 0.5, 1.5, 2.0)
    base = _rss_mib()
    start = time.perf_counter()
    maps, _ = multi_scale_maps(model, img, None, scales=scales, flip=True,
                               max_pixels=max_pixels or None)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert tuple(maps.shape[-2:]) == (height, width)
    return dict(max_pixels=max_pixels, largest_pass=list(pass_sizes(
        height, width, scales, max_pixels=max_pixels or None)[-1]), seconds=elapsed,
        peak_mib=peak, inference_mib=peak - base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CFG)
    parser.add_argument('--size', default='2000x3000', help='HxW')
    parser.add_argument('--max-pixels', type=int, nargs='+', default=[0, 1280 * 1280],
                        help='caps to compare (0: no cap)')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--one', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split('x'))
    if args.one:
        print(json.dumps(run_one(args.config, height, width, args.max_pixels[0],
                                 args.threads)))
        return
    print('| image | max_pixels | largest pass | time | peak RSS (inference above baseline) |')
    print('| --- | --- | --- | --- | --- |')
    for cap in args.max_pixels:
        out = subprocess.run(
            [sys.executable, __file__, '--one', '--config', args.config, '--size', args.size,
             '--max-pixels', str(cap), '--threads', str(args.threads)],
            check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        print(f'| {height} x {width} | {cap or "off"} | {r["largest_pass"][0]} x '
              f'{r["largest_pass"][1]} | {r["seconds"]:.1f} s | {r["peak_mib"]:.0f} MiB '
              f'({r["inference_mib"]:.0f} MiB) |')


if __name__ == '__main__':
    main()
