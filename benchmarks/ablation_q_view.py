# Copyright (c) mmseg-sbce contributors.
"""Ablation: target fractions from the augmented view (ours) or from the whole image (the
released code's), on the demo.

Our ``LoadQMap`` moves each image's Q map through the same random rescale / crop / flip as
the image, so the target fraction of class c is measured on the view the network sees. The
released code computes Q once per whole image and uses it for every crop. This script:

1. ``stats``: how far the two differ in the demo's training pipeline: mean |view fraction -
   whole-image fraction| over (image, positive class) pairs, and how often a positive class
   is entirely outside the crop (its view fraction is 0 while the whole image's is not).
2. ``run``: the whole demo pipeline (``tools/run_demo.py --skip-deeplab``) with the SBCE
   config changed in one place: ``WholeImageQMap`` (defined here) replaces the augmented Q
   map by the whole image's, resized to the view, right before packing, so every target
   fraction is the whole image's. Compare its ``summary.md`` with the stock demo's.

Example (after ``bash tools/demo.sh``, which leaves the initial Q in work_dirs/demo/q_init)::

    python benchmarks/ablation_q_view.py stats --q-dir work_dirs/demo/q_init
    python benchmarks/ablation_q_view.py run --work-dir work_dirs/demo_whole_q
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import tempfile

import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image

from mmseg.registry import TRANSFORMS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SBCE_CFG = osp.join(REPO, 'configs', 'demo', 'sbce_demo.py')


@TRANSFORMS.register_module()
class WholeImageQMap(BaseTransform):
    """Replace the (augmented) Q map by the whole image's Q map resized to the view.

    Nearest-neighbour resizing keeps each class's share of the map, so the fractions the
    head computes from it are the whole image's: the released code's Q. Needs
    ``q_map_path`` (set by ``LoadQMap``); before the first Q it changes nothing.
    """

    def transform(self, results: dict) -> dict:
        path = results.get('q_map_path')
        if path is None:
            return results
        h, w = results['gt_seg_map'].shape[:2]
        with Image.open(path) as img:
            whole = img.resize((w, h), Image.NEAREST)
        results['gt_seg_map'] = np.array(whole)
        return results


def fractions(seg: np.ndarray, num_classes: int) -> np.ndarray:
    """The head's definition: count(map == c + 1) / count(map != 255), c = 0..C-1."""
    seg = seg[seg != 255].astype(np.int64)
    if seg.size == 0:
        return np.zeros(num_classes)
    return np.bincount(seg, minlength=num_classes + 2)[1:num_classes + 1] / seg.size


def stats(args) -> None:
    import mmseg_sbce  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    cfg = Config.fromfile(SBCE_CFG)
    with tempfile.TemporaryDirectory() as q_root:
        os.symlink(osp.abspath(args.q_dir), osp.join(q_root, 'current'))
        # the demo's training pipeline up to (not including) the packing: raw results
        pipeline = [dict(step) for step in cfg.train_dataloader.dataset.pipeline]
        assert pipeline[-1]['type'] == 'PackWSSSInputs', pipeline[-1]
        pipeline = pipeline[:-1]
        for step in pipeline:
            if step['type'] == 'LoadQMap':
                step['q_dir'] = q_root
        dataset = DATASETS.build(
            dict(cfg.train_dataloader.dataset, data_root=args.data_root, pipeline=pipeline))
        num_classes = cfg.num_classes
        rng = np.random.default_rng(0)
        np.random.seed(0)  # the random transforms draw from numpy's global state
        gaps, signed, whole_fracs, outside = [], [], [], 0
        for _ in range(args.epochs):
            for i in rng.permutation(len(dataset)):
                results = dataset[int(i)]
                view = fractions(results['gt_seg_map'], num_classes)
                with Image.open(results['q_map_path']) as img:
                    whole = fractions(np.array(img), num_classes)
                for c in results['gt_labels']:
                    signed.append(view[c] - whole[c])
                    gaps.append(abs(view[c] - whole[c]))
                    whole_fracs.append(whole[c])
                    outside += int(view[c] == 0 and whole[c] > 0)
    gaps = np.asarray(gaps)
    pairs = len(gaps)
    print(f'{pairs} (image, positive class) pairs over {args.epochs} epochs of '
          f'{len(dataset)} images; mean whole-image fraction {np.mean(whole_fracs):.4f}')
    print(f'|view - whole| fraction: mean {gaps.mean():.4f}, median {np.median(gaps):.4f}, '
          f'90th percentile {np.percentile(gaps, 90):.4f}; mean relative '
          f'{np.mean(gaps / np.maximum(whole_fracs, 1e-6)):.2f}; mean signed view - whole '
          f'{np.mean(signed):+.4f} (view larger in {100 * np.mean(np.array(signed) > 0):.0f} %, '
          f'smaller in {100 * np.mean(np.array(signed) < 0):.0f} %)')
    print(f'class entirely outside the view: {outside} of {pairs} '
          f'({100 * outside / max(pairs, 1):.1f} %)')


def run(args) -> None:
    from mmengine.config import Config
    cfg = Config.fromfile(SBCE_CFG)
    pipeline = list(cfg.train_dataloader.dataset.pipeline)
    assert pipeline[-1]['type'] == 'PackWSSSInputs', pipeline[-1]
    pipeline.insert(len(pipeline) - 1, dict(type='WholeImageQMap'))
    cfg.train_dataloader.dataset.pipeline = pipeline
    cfg.randomness = dict(seed=args.seed)  # the SBCE run's seed (the demo's is 0)
    cfg.custom_imports = dict(imports=['mmseg_sbce', 'ablation_q_view'],
                              allow_failed_imports=False)
    os.makedirs(args.work_dir, exist_ok=True)
    variant = osp.join(osp.abspath(args.work_dir), 'sbce_demo_whole_q.py')
    cfg.dump(variant)
    env = dict(os.environ, PYTHONPATH=osp.join(REPO, 'benchmarks') + os.pathsep +
               os.environ.get('PYTHONPATH', ''))
    cmd = [sys.executable, osp.join(REPO, 'tools', 'run_demo.py'), '--work-dir',
           args.work_dir, '--data-root', args.data_root, '--sbce-config', variant,
           '--skip-deeplab']
    print('$ ' + ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=REPO)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    p_stats = sub.add_parser('stats', help='view vs whole-image fractions in the pipeline')
    p_stats.add_argument('--q-dir', required=True, help='a complete Q store (PNG per image)')
    p_stats.add_argument('--data-root', default='data/sbce_demo')
    p_stats.add_argument('--epochs', type=int, default=2)
    p_run = sub.add_parser('run', help='the demo with whole-image fractions')
    p_run.add_argument('--work-dir', default='work_dirs/demo_whole_q')
    p_run.add_argument('--data-root', default='data/sbce_demo')
    p_run.add_argument('--seed', type=int, default=0, help='randomness.seed of the SBCE run')
    args = parser.parse_args()
    if args.command == 'stats':
        stats(args)
    else:
        run(args)


if __name__ == '__main__':
    main()
