# Copyright (c) mmseg-sbce contributors.
"""Cost of one Spatial-BCE training step (each sub-phase) against the BCE baseline's step.

Every mode runs the same model (``SBCEClassifier``: backbone + ``SBCEHead``, random init),
batch and crop through ``model.train_step`` with an SGD ``OptimWrapper`` (data
preprocessing, forward, loss, backward, update), switched with ``set_train_mode``:

- ``bce``: the GAP-BCE baseline (``configs/sbce/bce_*``);
- ``sbce-classifier`` / ``sbce-threshold``: the two sub-phases of Algorithm 1.

Timings are interleaved (bce, classifier, threshold, bce, ...) so that a shared machine
slows all modes alike; the ratio of a mode is taken per round against that round's bce
step, and its median and range over the rounds are reported. ``--head-only`` also times the
head + loss alone (forward + backward on fixed features), which is where the modes differ;
``--profile`` prints torch.profiler's top operators of one step per mode.

Usage::

    python benchmarks/bench_train_step.py --model tinycnn --batch 16 --crop 112
    python benchmarks/bench_train_step.py --model resnet38d --batch 2 --crop 80 --threads 1
"""
import argparse
import os.path as osp
import statistics
import time
from typing import Dict, List, Tuple

import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODES = ('bce', 'sbce-classifier', 'sbce-threshold')
CONFIGS = dict(tinycnn='configs/demo/sbce_demo.py',
               resnet38d='configs/sbce/sbce_resnet38d_4xb6-32k_voc12aug-368x368.py')


def build_model(name: str, crop: int, device: torch.device) -> torch.nn.Module:
    """The config's classifier at ``crop``, random init (no pretrained weights)."""
    import mmseg_sbce  # noqa: F401  (registers the plugin)
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS[name]))
    model_cfg = cfg.model
    model_cfg.data_preprocessor['size'] = (crop, crop)
    model_cfg.backbone.pop('init_cfg', None)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model.to(device).train()


def make_batch(num_classes: int, batch: int, crop: int, seed: int = 0) -> dict:
    """uint8 images, 1-3 positive labels each, and a Q map with a rectangle per class (the
    rest background, a border of 255) as ``LoadQMap`` + ``PackWSSSInputs`` produce."""
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, crop, crop), generator=gen, dtype=torch.uint8))
        num_pos = int(torch.randint(1, 4, (1, ), generator=gen))
        classes = torch.randperm(num_classes, generator=gen)[:num_pos]
        seg = torch.zeros(crop, crop, dtype=torch.long)
        for k, c in enumerate(classes.tolist()):
            lo = (k * crop) // 4
            seg[lo:lo + crop // 3, lo:lo + crop // 2] = c + 1
        seg[:2] = 255
        labels = torch.zeros(num_classes)
        labels[classes] = 1
        sample = SegDataSample(gt_sem_seg=PixelData(data=seg[None]))
        sample.gt_labels = labels
        sample.set_metainfo(dict(img_shape=(crop, crop), ori_shape=(crop, crop),
                                 pad_shape=(crop, crop)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize()


def time_steps(model, wrapper: OptimWrapper, data: dict, modes, rounds: int,
               device: torch.device, head_only: bool = False) -> Dict[str, List[float]]:
    """Seconds per step of every mode, interleaved round by round (one warm-up round)."""
    times: Dict[str, List[float]] = {m: [] for m in modes}
    if head_only:
        with torch.no_grad():
            feats = model.extract_feat(model.data_preprocessor(data, True)['inputs'])
        feats = [f.detach().requires_grad_() for f in feats]
    for r in range(rounds + 1):
        for mode in modes:
            model.set_train_mode(mode)
            sync(device)
            start = time.perf_counter()
            if head_only:
                losses = model.decode_head.loss(feats, data['data_samples'], model.train_cfg)
                sum(v for k, v in losses.items() if 'loss' in k).backward()
            else:
                model.train_step(data, wrapper)
            sync(device)
            if r:  # round 0 warms up caches and allocators
                times[mode].append(time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
    return times


def ratios(times: Dict[str, List[float]], base: str = 'bce') -> Dict[str, Tuple]:
    """Per mode: (median s, median ratio to ``base`` within a round, min ratio, max ratio)."""
    out = {}
    for mode, ts in times.items():
        rs = [t / b for t, b in zip(ts, times[base])]
        out[mode] = (statistics.median(ts), statistics.median(rs), min(rs), max(rs))
    return out


def profile(model, wrapper, data, modes, rows: int) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    for mode in modes:
        model.set_train_mode(mode)
        model.train_step(data, wrapper)  # warm-up
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            model.train_step(data, wrapper)
        print(f'--- {mode}: top operators by self CPU time')
        print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', choices=sorted(CONFIGS), default='tinycnn')
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--crop', type=int, default=112)
    parser.add_argument('--rounds', type=int, default=15)
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--head-only', action='store_true',
                        help='also time head + loss alone on fixed features')
    parser.add_argument('--profile', type=int, default=0, metavar='ROWS',
                        help='print the top ROWS operators of one step per mode')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device('cpu')
    model = build_model(args.model, args.crop, device)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9))
    data = make_batch(model.num_classes, args.batch, args.crop)
    print(f'{args.model}, batch {args.batch}, crop {args.crop}, torch {torch.__version__}, '
          f'{torch.get_num_threads()} thread(s), {args.rounds} interleaved rounds')
    tables = [('train_step', time_steps(model, wrapper, data, MODES, args.rounds, device))]
    if args.head_only:
        tables.append(('head + loss', time_steps(model, wrapper, data, MODES, args.rounds,
                                                  device, head_only=True)))
    for name, times in tables:
        print(f'| {name} | median ms | ratio to bce (median) | range |')
        print('| --- | --- | --- | --- |')
        for mode, (med, r, lo, hi) in ratios(times).items():
            print(f'| {mode} | {1000 * med:.1f} | {r:.3f} | {lo:.3f}-{hi:.3f} |')
    if args.profile:
        profile(model, wrapper, data, MODES, args.profile)


if __name__ == '__main__':
    main()
