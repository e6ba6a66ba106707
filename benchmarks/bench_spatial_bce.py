# Copyright (c) mmseg-sbce contributors.
"""Cost of Spatial-BCE (with the percentile threshold) relative to plain per-pixel BCE.

Both sides run forward + backward on the same logits ``[B, C, 46, 46]`` (float32):

- BCE: ``F.binary_cross_entropy_with_logits`` against the image labels broadcast to
  every pixel (the cheapest loss touching every element);
- Spatial-BCE, classifier sub-phase as the head runs it: percentile threshold of the
  positive maps at their target fraction (selection on logits, then sigmoid), then
  ``spatial_bce_loss`` with the ``'mean'`` reduction.

Labels follow VOC/COCO statistics (1-3 positive classes per image). Timings are medians
over interleaved repetitions, so a busy machine slows both sides alike. Usage::

    python benchmarks/bench_spatial_bce.py [--repeats 50] [--threads N]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from mmseg_sbce.models.losses import percentile_threshold, spatial_bce_loss


def make_inputs(batch: int, classes: int, size: int, device: torch.device, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, size, size, generator=gen) * 3
    labels = torch.zeros(batch, classes)
    for b in range(batch):
        num_pos = int(torch.randint(1, 4, (1, ), generator=gen))
        labels[b, torch.randperm(classes, generator=gen)[:num_pos]] = 1
    fraction = torch.rand(batch, classes, generator=gen) * 0.45 + 0.05
    return (logits.to(device).requires_grad_(), labels.to(device), fraction.to(device))


def run_bce(logits, labels, fraction):
    loss = F.binary_cross_entropy_with_logits(logits, labels[:, :, None, None].expand_as(logits))
    loss.backward()


def run_sbce(logits, labels, fraction):
    thr_logits = percentile_threshold(logits, fraction, mask=labels > 0.5, fill_value=0.)
    loss = spatial_bce_loss(logits, labels, thr_logits)
    loss.backward()


def timed(fn, args, device):
    args[0].grad = None
    if device.type == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn(*args)
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench(shape, device, repeats):
    args = make_inputs(*shape, device=device)
    for _ in range(5):  # warm-up (allocator, thread pool, CUDA context)
        timed(run_bce, args, device)
        timed(run_sbce, args, device)
    bce, sbce = [], []
    for _ in range(repeats):
        bce.append(timed(run_bce, args, device))
        sbce.append(timed(run_sbce, args, device))
    return statistics.median(bce) * 1e3, statistics.median(sbce) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=50)
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device('cpu')]
    if torch.cuda.is_available():
        devices.append(torch.device('cuda'))
    print(f'torch {torch.__version__}, CPU threads {torch.get_num_threads()}')
    print(f'{"device":<8}{"shape":<18}{"BCE ms":>10}{"S-BCE ms":>11}{"ratio":>8}')
    for device in devices:
        for shape in ((8, 20, 46), (8, 80, 46)):
            bce_ms, sbce_ms = bench(shape, device, args.repeats)
            label = f'{shape[0]}x{shape[1]}x{shape[2]}x{shape[2]}'
            print(f'{device.type:<8}{label:<18}{bce_ms:>10.3f}{sbce_ms:>11.3f}'
                  f'{sbce_ms / bce_ms:>8.2f}')


if __name__ == '__main__':
    main()
