# Copyright (c) mmseg-sbce contributors.
"""CPU cost of one Q update at MS-COCO scale (``generate_pseudo_labels`` with sbce_coco.py).

    python benchmarks/bench_q_update_coco.py [--num 4] [--size 480 640] [--threads N]

Builds the model of ``configs/sbce_coco.py`` at full width (VGG16 output stride 8, fc6/fc7,
SBCEHead with 80 classes; random weights: the cost does not depend on them) and labels
``--num`` generated 640 x 480 images in the converter's layout through the config's own
``infer_dataset`` and ``pseudo_cfg`` (4 scales x flip = 8 passes, eq. 9, dense CRF with 10
iterations). The run is in-process (``workers=0``), so the network time and the
labelling + dCRF time are measured separately. The images carry 1-5 image labels (mean 2.9;
the COCO paper reports 3.5 categories per image on average); the dCRF of our pipeline runs
over the image's K positive classes + background, not over all 81 labels. To show what that
saves, the dCRF alone is also timed on one image for 2..5 and 81 labels.

Prints a markdown table and the extrapolation to 82,081 images. The convolution FLOPs of
one image (all 8 passes) are counted with forward hooks, so the achieved rate can be
compared with other hardware; anything about other hardware is an extrapolation.
"""
import argparse
import json
import os
import os.path as osp
import tempfile
import time

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
COCO_TRAIN_IMAGES = 82081
LABEL_COUNTS = (3, 2, 4, 1, 3, 5, 2, 3)  # cycled; mean 2.875


def make_coco_root(root: str, num: int, size, seed: int = 0) -> None:
    """``num`` JPEGs of ``size`` (h, w) in the converter's layout (train split only)."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    h, w = size
    os.makedirs(osp.join(root, 'train2014'), exist_ok=True)
    os.makedirs(osp.join(root, 'ImageSets'), exist_ok=True)
    labels = {}
    for i in range(num):
        img_id = f'COCO_train2014_{i:012d}'
        # 16-px texture blocks: a busy image, like a photo's edges for the bilateral kernel
        img = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        img = np.repeat(np.repeat(img, 16, 0), 16, 1)[:h, :w]
        Image.fromarray(np.ascontiguousarray(img)).save(
            osp.join(root, 'train2014', f'{img_id}.jpg'), quality=90)
        k = LABEL_COUNTS[i % len(LABEL_COUNTS)]
        labels[img_id] = sorted(rng.choice(np.arange(1, 81), size=k, replace=False).tolist())
    with open(osp.join(root, 'ImageSets', 'train.txt'), 'w') as f:
        f.write('\n'.join(labels) + '\n')
    with open(osp.join(root, 'cls_labels_train.json'), 'w') as f:
        json.dump(labels, f)


def build_model(cfg):
    from mmseg.registry import MODELS
    model_cfg = cfg.model.copy()
    model_cfg.backbone.init_cfg = None  # random weights: same cost, no file needed
    # PyTorch's default initialisation (no init_weights(): it logs every parameter)
    return MODELS.build(model_cfg).eval()


def conv_gflops(model, size, scales, flip) -> float:
    """Multiply-adds x 2 of every Conv2d over all passes of one image, in GFLOPs."""
    import torch
    import torch.nn as nn
    total = [0]

    def hook(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        total[0] += 2 * out.numel() * k

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            for s in scales:
                hw = (max(1, round(size[0] * s)), max(1, round(size[1] * s)))
                # The counter only needs shapes: a meta-device pass would do, but conv hooks
                # on a real 1-image pass at the smallest scale are cheap; scale the count.
                small = (max(8, hw[0] // 8), max(8, hw[1] // 8))
                before = total[0]
                model.extract_maps(torch.zeros(1, 3, *small))
                ratio = (hw[0] * hw[1]) / (small[0] * small[1])
                total[0] = before + (total[0] - before) * ratio * (2 if flip else 1)
    finally:
        for h in handles:
            h.remove()
    return total[0] / 1e9


def time_crf(size, label_counts, repeats: int):
    from mmseg_sbce.apis import dense_crf
    rng = np.random.default_rng(1)
    h, w = size
    img = np.ascontiguousarray(np.repeat(np.repeat(
        rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8), 16, 0), 16,
        1)[:h, :w])
    out = {}
    for n in label_counts:
        labels = np.repeat(np.repeat(rng.integers(0, n, (h // 40 + 1, w // 40 + 1)), 40, 0),
                           40, 1)[:h, :w].astype(np.uint8)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            dense_crf(img, labels, n)
            times.append(time.perf_counter() - t0)
        out[n] = float(np.median(times))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--num', type=int, default=4, help='images to label')
    parser.add_argument('--size', type=int, nargs=2, default=(480, 640), metavar=('H', 'W'))
    parser.add_argument('--threads', type=int, default=None,
                        help='torch threads for the network (default: all cores)')
    parser.add_argument('--crf-repeats', type=int, default=3)
    parser.add_argument('--config', default=osp.join(ROOT, 'configs', 'sbce_coco.py'))
    args = parser.parse_args()

    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmseg_sbce  # noqa: F401  (registers the plugin)
    from mmseg.registry import DATASETS
    from mmseg_sbce.apis import generate_pseudo_labels, resolve_pseudo_cfg

    cores = len(os.sched_getaffinity(0))
    threads = args.threads or cores
    torch.set_num_threads(threads)
    init_default_scope('mmseg')
    cfg = Config.fromfile(args.config)
    pcfg = resolve_pseudo_cfg(cfg.pseudo_cfg)
    model = build_model(cfg)
    size = tuple(args.size)

    data = tempfile.mkdtemp(prefix='bench_coco_')
    make_coco_root(data, args.num, size)
    ds_cfg = cfg.infer_dataset.copy()
    ds_cfg.data_root = data
    dataset = DATASETS.build(ds_cfg)
    out = tempfile.mkdtemp(prefix='bench_coco_q_')

    gflops = conv_gflops(model, size, pcfg['scales'], pcfg['flip'])
    # warm-up: one image at the smallest scale (allocator, OpenMP pool)
    with torch.no_grad():
        model.extract_maps(torch.zeros(2, 3, size[0] // 2, size[1] // 2))

    cpu0 = time.process_time()
    summary = generate_pseudo_labels(model, dataset, out, cfg.pseudo_cfg, rank=0,
                                     world_size=1, workers=0, skip_existing=False,
                                     progress=False, net_threads=threads)
    cpu = time.process_time() - cpu0
    n = summary['written']
    net = summary['net_s'] / n
    crf = summary['crf_s'] / n
    # CPU seconds of the network: all of this process's CPU time but the (single-threaded,
    # in-process) labelling + dCRF, counted at its wall time (an upper bound of its CPU).
    net_cpu = max(cpu / n - crf, 0.0)
    crf_only = time_crf(size, (2, 3, 4, 5, 81), args.crf_repeats)

    print(f'{n} images of {size[0]}x{size[1]}, scales {pcfg["scales"]} x flip '
          f'({len(pcfg["scales"]) * (2 if pcfg["flip"] else 1)} passes), dCRF '
          f'{pcfg["crf"]["iterations"]} iterations; {cores} cores, torch {torch.__version__}, '
          f'{threads} torch thread(s)')
    print(f'conv FLOPs per image (all passes): {gflops:.0f} GFLOP -> achieved '
          f'{gflops / net:.0f} GFLOP/s')
    print('| part | s / image | share |')
    print('| --- | --- | --- |')
    total = net + crf
    print(f'| network (8 passes, {threads} thread(s)) | {net:.2f} | {net / total:.0%} |')
    print(f'| (network CPU time, core-s / image) | {net_cpu:.2f} | |')
    print(f'| eq. 9 + dCRF (K+1 labels, 1 process) + PNG | {crf:.2f} | {crf / total:.0%} |')
    print(f'| total | {total:.2f} | |')
    print('| dCRF labels | ' + ' | '.join(str(k) for k in crf_only) + ' |')
    print('| --- |' + ' --- |' * len(crf_only))
    print('| s / image | ' + ' | '.join(f'{v:.2f}' for v in crf_only.values()) + ' |')
    hours = COCO_TRAIN_IMAGES / 3600
    print(f'82,081 images at the measured wall time ({threads} threads, dCRF after the '
          f'network): {total * hours:.0f} h per Q update')
    print(f'core-hours (network CPU time + dCRF): network {net_cpu * hours:.0f} + dCRF '
          f'{crf * hours:.0f} = {(net_cpu + crf) * hours:.0f} core-h per Q update')
    for c in (16, 32, 64):
        print(f'{c} cores, perfect scaling (extrapolated): '
              f'{(net_cpu + crf) * hours / c:.0f} h per Q update')


if __name__ == '__main__':
    main()
