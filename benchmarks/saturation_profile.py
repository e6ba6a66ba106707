# Copyright (c) mmseg-sbce contributors.
"""Which background pixels phase 1 cannot pull down: those the baseline left saturated.

Spatial-BCE and the KL term act on ``p = sigmoid(s * x)``; their gradient with respect to
the logit carries the factor ``p (1 - p)``, so a pixel whose starting logit is far in the
saturated range barely moves, whichever way the loss points (and the percentile threshold
of a map with more saturated pixels than its target fraction is itself at 1, where the
Spatial-BCE gradient is 0 by construction). This script reads a pipeline run
(``tools/run_pipeline.py``'s work dir) against the ground truth (it only measures) and
reports, over every positive map of the first ``--limit`` images:

- the share of the ground-truth background and of the class's own object whose baseline
  logit is saturated at the SBCE phases' starting scale (``s * x > 4.6``, i.e.
  ``p > 0.99``; ``s`` is ``model.decode_head.logit_scale_init`` of the run's SBCE config
  unless ``--scale`` is given);
- of those saturated background pixels, the share that phase 1's labels (eq. 9, no dCRF)
  give to the class, and the same share for the rest of the background;
- of all the background phase 1 gives to the class, the share that started saturated.

    python benchmarks/saturation_profile.py RUN_DIR DATA_ROOT [RUN_DIR DATA_ROOT ...]
        [--names NAME ...] [--scale S] [--limit N] [--out FILE.md]
"""
import glob
import os.path as osp
import sys
from typing import Dict, Optional

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.map_reports import (ground_truth, read_png, report_main,  # noqa: E402
                                     saved_map_files)
from mmseg_sbce.apis.label_io import load_maps_npz  # noqa: E402

#: ``p > 0.99``: ``p (1 - p) < 0.01``.
SATURATED_LOGIT = 4.6
COUNTS = ('background', 'background_sat', 'object', 'object_sat', 'sat_labelled',
          'rest_labelled')


def run_scale(run_dir: str) -> float:
    """The starting logit scale of a run's SBCE stage, from the config it saved."""
    from mmengine.config import Config
    configs = sorted(glob.glob(osp.join(run_dir, 'sbce', '*.py')))
    if not configs:
        raise SystemExit(f'error: no SBCE config in {osp.join(run_dir, "sbce")}; give --scale')
    return float(Config.fromfile(configs[0]).model.decode_head.logit_scale_init)


def image_counts(logits: np.ndarray, classes: np.ndarray, gt: np.ndarray,
                 labels: np.ndarray, scale: float) -> Dict[str, int]:
    """The pixel counts of :data:`COUNTS` for one image's positive maps."""
    out = dict.fromkeys(COUNTS, 0)
    background = gt == 0
    for k, c in enumerate(classes):
        saturated = logits[k] * scale > SATURATED_LOGIT
        obj = gt == int(c) + 1
        labelled = labels == int(c) + 1
        out['background'] += int(background.sum())
        out['background_sat'] += int((background & saturated).sum())
        out['object'] += int(obj.sum())
        out['object_sat'] += int((obj & saturated).sum())
        out['sat_labelled'] += int((background & saturated & labelled).sum())
        out['rest_labelled'] += int((background & ~saturated & labelled).sum())
    return out


def measure(run_dir: str, data_root: str, scale: Optional[float] = None,
            limit: Optional[int] = None) -> Dict[str, float]:
    scale = run_scale(run_dir) if scale is None else scale
    maps_dir = osp.join(run_dir, 'pseudo_baseline_nocrf')
    labels_dir = osp.join(run_dir, 'pseudo_sbce_p1_nocrf')
    files = saved_map_files(maps_dir)
    sums = dict.fromkeys(COUNTS, 0)
    for path in files[:limit]:
        img_id = osp.splitext(osp.basename(path))[0]
        gt = ground_truth(data_root, img_id)
        labels = read_png(osp.join(labels_dir, img_id + '.png'), f'labels for {img_id}')
        logits, classes, _ = load_maps_npz(path)
        counts = image_counts(logits, classes, gt, labels, scale)
        for key in COUNTS:
            sums[key] += counts[key]
    rest = sums['background'] - sums['background_sat']
    wrong = sums['sat_labelled'] + sums['rest_labelled']
    return dict(scale=scale, wrong_from_sat=sums['sat_labelled'] / max(wrong, 1),
                background_sat=sums['background_sat'] / max(sums['background'], 1),
                object_sat=sums['object_sat'] / max(sums['object'], 1),
                sat_labelled=sums['sat_labelled'] / max(sums['background_sat'], 1),
                rest_labelled=sums['rest_labelled'] / max(rest, 1))


def table(results: Dict[str, Dict[str, float]]) -> str:
    lines = ['| run | s | background saturated at the start | object saturated | '
             'saturated background labelled as the class after phase 1 | '
             'other background labelled as the class | '
             'background labelled as the class that started saturated |',
             '| --- | --- | --- | --- | --- | --- | --- |']
    for name, r in results.items():
        lines.append(f'| {name} | {r["scale"]:g} | {100 * r["background_sat"]:.1f} % | '
                     f'{100 * r["object_sat"]:.1f} % | {100 * r["sat_labelled"]:.0f} % | '
                     f'{100 * r["rest_labelled"]:.1f} % | '
                     f'{100 * r["wrong_from_sat"]:.0f} % |')
    return '\n'.join(lines)


def main(argv=None):
    def add_arguments(parser):
        parser.add_argument('--scale', type=float, help='starting logit scale (default: '
                            "from the run's SBCE config)")

    return report_main(argv, __doc__, 'RUN_DIR DATA_ROOT',
                       lambda run, root, args: measure(run, root, args.scale, args.limit),
                       table, add_arguments)

if __name__ == '__main__':
    main()
