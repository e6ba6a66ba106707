# Copyright (c) mmseg-sbce contributors.
"""How a run's class maps activate on the objects and on the background, relative to each
map's peak: can any threshold on these maps separate them?

A background threshold on max-normalised CAMs (the initial Q's labels) keeps the pixels
whose logit exceeds a share of the map's peak. That works when the objects' bodies sit well
above the background relative to the peak, and no threshold can work when the body's
typical logit is below the background's upper tail. For every map of a positive class that
covers at least ``--min-pixels`` ground-truth pixels, this script takes

- ``peak``: the map's maximum logit;
- ``object median / peak``: the median logit over the class's ground-truth pixels, over the
  peak (the CAM value of a typical object pixel);
- ``background p95 / peak``: the 95th percentile over the ground-truth background, over
  the peak (the CAM value the brightest background reaches);
- ``object fraction``: the class's share of the image;

and reports the median (and quartiles) over the maps, with the share of maps whose object
median is below their background p95 (inseparable by any threshold on that map). Ground
truth only measures; nothing here feeds training.

    python benchmarks/activation_profile.py MAPS_DIR DATA_ROOT [MAPS_DIR DATA_ROOT ...]
        [--limit N] [--min-pixels P] [--out FILE.md]

``MAPS_DIR`` is an export of ``tools/gen_pseudo.py --save-probs`` (e.g.
``WORK_DIR/pseudo_baseline_nocrf`` of ``tools/run_pipeline.py``); ``DATA_ROOT`` holds
``SegmentationClass/``.
"""
import os.path as osp
import sys
from typing import Dict, Optional

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.map_reports import ground_truth, report_main, saved_map_files  # noqa: E402
from mmseg_sbce.apis.label_io import load_maps_npz  # noqa: E402


def map_stats(logits: np.ndarray, classes: np.ndarray, gt: np.ndarray,
              min_pixels: int) -> list:
    """``(peak, object median / peak, background p95 / peak, object fraction)`` for every
    map of one image whose class covers at least ``min_pixels`` ground-truth pixels and
    whose peak is positive (a map without a positive logit has no CAM)."""
    background = gt == 0
    out = []
    for k, c in enumerate(classes):
        inside = gt == int(c) + 1
        peak = float(logits[k].max())
        if inside.sum() < min_pixels or not background.any() or peak <= 0:
            continue
        out.append((peak, float(np.median(logits[k][inside])) / peak,
                    float(np.percentile(logits[k][background], 95)) / peak,
                    float(inside.mean())))
    return out


def profile(maps_dir: str, data_root: str, limit: Optional[int] = None,
            min_pixels: int = 10) -> Dict[str, float]:
    """The medians and quartiles of :func:`map_stats` over a run's saved maps."""
    files = saved_map_files(maps_dir)
    rows = []
    for path in files[:limit]:
        img_id = osp.splitext(osp.basename(path))[0]
        gt = ground_truth(data_root, img_id)
        logits, classes, _ = load_maps_npz(path)
        rows += map_stats(logits, classes, gt, min_pixels)
    if not rows:
        raise SystemExit(f'error: no map of {maps_dir} covers {min_pixels} object pixels')
    stats = np.array(rows)
    q = np.percentile(stats, [25, 50, 75], axis=0)
    return dict(maps=len(rows), peak=q[1, 0], object=q[1, 1], object_q1=q[0, 1],
                object_q3=q[2, 1], background=q[1, 2], fraction=q[1, 3],
                inseparable=float(np.mean(stats[:, 1] < stats[:, 2])))


def table(results: Dict[str, Dict[str, float]]) -> str:
    lines = ['| maps | count | peak (logit) | object median / peak [quartiles] | '
             'background p95 / peak | object median below background p95 | '
             'object fraction |', '| --- | --- | --- | --- | --- | --- | --- |']
    for name, r in results.items():
        lines.append(f'| {name} | {r["maps"]} | {r["peak"]:.1f} | {r["object"]:.2f} '
                     f'[{r["object_q1"]:.2f}, {r["object_q3"]:.2f}] | '
                     f'{r["background"]:.2f} | {100 * r["inseparable"]:.0f} % | '
                     f'{r["fraction"]:.3f} |')
    return '\n'.join(lines)


def main(argv=None):
    return report_main(
        argv, __doc__, 'MAPS_DIR DATA_ROOT',
        lambda maps, root, args: profile(maps, root, args.limit, args.min_pixels),
        table, min_pixels=True)

if __name__ == '__main__':
    main()
