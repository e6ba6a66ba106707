# Copyright (c) mmseg-sbce contributors.
"""One GPU's training step and export throughput at VOC size (issue 15, item 5).

Measures, on the first CUDA device, with the VOC config's classifier
(``configs/sbce/sbce_resnet38d_4xb6-32k_voc12aug-368x368.py``, random init: the cost does
not depend on the weights):

1. one training step (``model.train_step``: preprocessing, forward, loss, backward, SGD
   update) at batch 6, crop 368, for the BCE baseline and both SBCE sub-phases, in float32
   (``OptimWrapper``) and in AMP (mmengine's ``AmpOptimWrapper``, float16 with a dynamic
   loss scale); modes interleaved round by round, medians;
2. export throughput on random 375 x 500 images with 1-3 positive classes and the VOC
   config's ``pseudo_cfg`` (4 scales x flip, eq. 9, dCRF 10 iterations): the network passes
   (``infer_maps``, float32 and ``pseudo_cfg.amp='fp16'``) and labelling + dCRF on one CPU
   core (the export runs that part in a pool of CPU workers, one per core), separately.

It prints one table headed by the GPU's name. Without CUDA it exits with status 2 and a
message, unless ``--cpu-smoke`` asks for a seconds-long run of the same code on CPU
(TinyCNN, tiny sizes, bfloat16 autocast) that checks the script, not the hardware.

Usage::

    python benchmarks/gpu_step_and_export.py            # a few minutes on one GPU
    python benchmarks/gpu_step_and_export.py --cpu-smoke
"""
import argparse
import sys
import time

import numpy as np
import torch

from bench_train_step import MODES, build_model, make_batch, ratios, sync, time_steps

NO_CUDA = ('gpu_step_and_export: no CUDA device (torch.cuda.is_available() is False): '
           'this script measures a GPU; run it on a machine with one, or pass --cpu-smoke '
           'for a tiny CPU run that only checks the script')


def step_table(model_name: str, batch: int, crop: int, rounds: int,
               device: torch.device) -> list:
    """Rows (precision, mode, median ms, ratio to bce, range) of the training step."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    from mmseg_sbce.engine.optimizers.amp import AutocastOptimWrapper
    model = build_model(model_name, crop, device)
    data = make_batch(model.num_classes, batch, crop)
    rows = []
    for precision in ('fp32', 'amp'):
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        if precision == 'fp32':
            wrapper = OptimWrapper(optimizer)
        elif device.type == 'cuda':
            wrapper = AmpOptimWrapper(optimizer=optimizer, dtype='float16')
        else:
            wrapper = AutocastOptimWrapper(optimizer=optimizer)
        times = time_steps(model, wrapper, data, MODES, rounds, device)
        for mode, (med, r, lo, hi) in ratios(times).items():
            rows.append((precision, mode, 1000 * med, r, lo, hi))
    return rows


def export_rows(model_name: str, num: int, size: tuple, device: torch.device) -> list:
    """Rows (what, images/s) of the export's network passes and of labelling + dCRF."""
    from mmengine.config import Config

    from mmseg_sbce.apis import resolve_pseudo_cfg
    from mmseg_sbce.apis.inference import EvalMode, infer_maps
    from mmseg_sbce.apis.label_maps import pseudo_label_from_maps
    from bench_train_step import CONFIGS, ROOT
    cfg = Config.fromfile(f'{ROOT}/{CONFIGS[model_name]}')
    pcfg = resolve_pseudo_cfg(dict(cfg.get('pseudo_cfg', None) or {}))
    model = build_model(model_name, 368, device)
    gen = torch.Generator().manual_seed(0)
    images, positives = [], []
    for _ in range(num):
        images.append(torch.randint(0, 256, (3, ) + size, generator=gen, dtype=torch.uint8))
        k = int(torch.randint(1, 4, (1, ), generator=gen))
        positives.append(np.sort(torch.randperm(model.num_classes, generator=gen)[:k].numpy()))
    rows, maps = [], []
    amp = 'fp16' if device.type == 'cuda' else 'bf16'
    with EvalMode(model):
        for precision in (None, amp):
            infer_maps(model, images[0], positives[0], pcfg['scales'], pcfg['flip'], None,
                       pcfg['fusion'], pcfg['min_side'], pcfg['max_pixels'], precision)
            sync(device)
            start = time.perf_counter()
            for img, pos in zip(images, positives):
                out = infer_maps(model, img, pos, pcfg['scales'], pcfg['flip'], None,
                                 pcfg['fusion'], pcfg['min_side'], pcfg['max_pixels'],
                                 precision)
                if precision is None:
                    maps.append(out)
            sync(device)
            rows.append((f'network passes, {precision or "fp32"}',
                         num / (time.perf_counter() - start)))
    start = time.perf_counter()
    for img, pos, (logits, thr) in zip(images, positives, maps):
        rgb = np.ascontiguousarray(img.permute(1, 2, 0).numpy()[..., ::-1])
        thr_pos = None if thr is None else thr[torch.as_tensor(pos)].numpy()
        pseudo_label_from_maps(rgb, logits.numpy(), thr_pos, pos, pcfg)
    rows.append(('labelling + dCRF, 1 CPU core', num / (time.perf_counter() - start)))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=6)
    parser.add_argument('--crop', type=int, default=368)
    parser.add_argument('--rounds', type=int, default=5, help='timed rounds per precision')
    parser.add_argument('--images', type=int, default=20, help='export images')
    parser.add_argument('--cpu-smoke', action='store_true',
                        help='tiny CPU run of the same code (checks the script only)')
    args = parser.parse_args(argv)
    if args.cpu_smoke:
        device, model_name, name = torch.device('cpu'), 'tinycnn', 'CPU smoke run'
        batch, crop, rounds, images, size = 2, 32, 1, 2, (24, 32)
    elif not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    else:
        device, model_name = torch.device('cuda', 0), 'resnet38d'
        name = torch.cuda.get_device_name(0)
        batch, crop, rounds, images, size = (args.batch, args.crop, args.rounds, args.images,
                                             (375, 500))
        torch.backends.cudnn.benchmark = True
    steps = step_table(model_name, batch, crop, rounds, device)
    export = export_rows(model_name, images, size, device)
    print(f'\n{name}; torch {torch.__version__}; {model_name}, batch {batch}, crop {crop}, '
          f'{rounds} rounds; export: {images} random {size[0]} x {size[1]} images')
    print('| step | mode | median ms | ratio to bce | range |')
    print('| --- | --- | --- | --- | --- |')
    for precision, mode, ms, r, lo, hi in steps:
        print(f'| {precision} | {mode} | {ms:.1f} | {r:.3f} | {lo:.3f}-{hi:.3f} |')
    print('| export | images/s |')
    print('| --- | --- |')
    for what, rate in export:
        print(f'| {what} | {rate:.2f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
