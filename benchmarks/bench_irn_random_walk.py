# Copyright (c) mmseg-sbce contributors.
"""Time and peak memory of IRN's random walk (:func:`refine_labels`) per image.

Each image size runs in a fresh child process, so its peak resident memory
(``ru_maxrss``) is the walk's own plus the interpreter's baseline, which is measured in
the child right before the walk and reported separately. Inputs are synthetic: random
smooth logits for ``--classes`` classes and a random boundary map (the cost does not depend
on the values).

    python benchmarks/bench_irn_random_walk.py [--sizes 512x512 640x480] [--classes 3]
        [--repeats 2] [--threads 1]
"""
import argparse
import json
import multiprocessing as mp
import platform
import resource
import time


def _child(size, classes, repeats, threads, queue):
    import torch
    import torch.nn.functional as F

    from mmseg_sbce.models.irn import REFINE_CFG_DEFAULTS, refine_labels, stride4_size

    torch.set_num_threads(threads)
    width, height = size
    gen = torch.Generator().manual_seed(0)
    logits = F.interpolate(torch.randn(1, classes, height // 16, width // 16, generator=gen),
                           size=(height, width), mode='bilinear')[0] * 5
    boundary = torch.rand(stride4_size(height, width), generator=gen)
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        refine_labels(logits, list(range(classes)), boundary)
        times.append(time.perf_counter() - start)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n = boundary.numel()
    queue.put(dict(size=f'{width}x{height}', grid=list(boundary.shape), classes=classes,
                   seconds_per_image=min(times), seconds_all=times,
                   peak_rss_mib=peak_kb / 1024, baseline_rss_mib=base_kb / 1024,
                   walk_rss_mib=(peak_kb - base_kb) / 1024,
                   dense_matrix_mib=n * n * 4 / 2**20, cfg=REFINE_CFG_DEFAULTS,
                   threads=threads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', nargs='+', default=['512x512', '640x480'],
                        help='WIDTHxHEIGHT of the images')
    parser.add_argument('--classes', type=int, default=3, help='positive classes per image')
    parser.add_argument('--repeats', type=int, default=2, help='runs per size (min kept)')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    args = parser.parse_args()
    ctx = mp.get_context('spawn')
    results = []
    for text in args.sizes:
        try:
            size = tuple(int(v) for v in text.lower().split('x'))
        except ValueError:
            raise SystemExit(f'--sizes: expected WIDTHxHEIGHT, got {text!r}') from None
        queue = ctx.Queue()
        proc = ctx.Process(target=_child,
                           args=(size, args.classes, args.repeats, args.threads, queue))
        proc.start()
        result = queue.get()
        proc.join()
        results.append(result)
        print(json.dumps(result), flush=True)
    print(f'machine: {platform.processor() or platform.machine()}, '
          f'{mp.cpu_count()} CPUs visible, python {platform.python_version()}')
    for r in results:
        print(f"{r['size']}: {r['seconds_per_image']:.2f} s/image, peak RSS "
              f"{r['peak_rss_mib']:.0f} MiB (walk {r['walk_rss_mib']:.0f} MiB above the "
              f"{r['baseline_rss_mib']:.0f} MiB baseline); a dense T would be "
              f"{r['dense_matrix_mib']:.0f} MiB")


if __name__ == '__main__':
    main()
