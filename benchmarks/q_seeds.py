# Copyright (c) mmseg-sbce contributors.
"""What Spatial-BCE pushes up when a phase starts: the top-Q pixels of each map.

In the classifier sub-phase (Algorithm 1) the threshold of a positive class is the
percentile of its map at the target fraction from Q, so the pixels pushed towards 1 are the
map's top ``fraction * h * w`` pixels, wherever they lie; Q's own pixels only set how many.
When a phase starts, those are the top pixels of the maps the previous stage left (the
baseline's for phase 1, phase ``k - 1``'s for phase ``k``). This script reads those maps and
that phase's Q against the ground truth (it only measures; nothing here feeds training) and
reports, pooled over every positive map whose class has at least ``--min-pixels``
ground-truth pixels:

- ``Q / GT``: the median over maps of Q's fraction of the class over the ground truth's;
- ``Q empty``: the share of maps to which Q gives no pixel (nothing is pushed up);
- ``top-Q on the object``: the share of the top-Q pixels that are the class's ground truth
  (what Spatial-BCE reinforces correctly), and ``on background`` / ``on other classes``;
- ``Q's pixels on the object``: the same share for Q's own pixels of the class (the dCRF
  labels Q was counted from), for comparison.

    python benchmarks/q_seeds.py MAPS_DIR Q_DIR DATA_ROOT [MAPS_DIR Q_DIR DATA_ROOT ...]
        [--names NAME ...] [--limit N] [--min-pixels P] [--out FILE.md]

``MAPS_DIR`` is an export of ``tools/gen_pseudo.py --save-probs`` (``WORK_DIR/
pseudo_baseline_nocrf`` or ``pseudo_sbce_pK_nocrf`` of ``tools/run_pipeline.py``),
``Q_DIR`` a Q store (``WORK_DIR/q_init`` for phase 1, ``WORK_DIR/sbce/q/phase_K`` for
phase ``K``), ``DATA_ROOT`` holds ``SegmentationClass/``.
"""
import os.path as osp
import sys
from typing import Dict, List, Optional

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.map_reports import (ground_truth, read_png, report_main,  # noqa: E402
                                     saved_map_files)
from mmseg_sbce.apis.label_io import load_maps_npz  # noqa: E402

IGNORE = 255
COUNTS = ('top', 'top_object', 'top_background', 'q_pixels', 'q_object')


def image_counts(logits: np.ndarray, classes: np.ndarray, q: np.ndarray, gt: np.ndarray,
                 min_pixels: int) -> List[Dict[str, float]]:
    """One record per positive map of an image whose class covers at least ``min_pixels``
    ground-truth pixels: the fractions of Q and of the ground truth, and the pixel counts
    of :data:`COUNTS`."""
    valid = q != IGNORE
    n_valid = int(valid.sum())
    out = []
    for k, c in enumerate(classes):
        inside = gt == int(c) + 1
        if inside.sum() < min_pixels or n_valid == 0:
            continue
        q_class = q == int(c) + 1
        fraction = float(q_class.sum()) / n_valid
        # The percentile of the classifier sub-phase: the map's top fraction * h * w
        # pixels (over Q's valid pixels, as the head counts them).
        n_top = int(fraction * n_valid)
        values = logits[k][valid]
        top = np.argsort(-values, kind='stable')[:n_top]
        labels = gt[valid][top]
        out.append(dict(q_fraction=fraction, gt_fraction=float(inside.mean()),
                        top=n_top, top_object=int((labels == int(c) + 1).sum()),
                        top_background=int((labels == 0).sum()),
                        q_pixels=int(q_class.sum()),
                        q_object=int((q_class & inside).sum())))
    return out


def measure(maps_dir: str, q_dir: str, data_root: str, limit: Optional[int] = None,
            min_pixels: int = 10) -> Dict[str, float]:
    """:func:`image_counts` over a run's saved maps, pooled."""
    files = saved_map_files(maps_dir)
    rows = []
    for path in files[:limit]:
        img_id = osp.splitext(osp.basename(path))[0]
        gt = ground_truth(data_root, img_id)
        q = read_png(osp.join(q_dir, img_id + '.png'), f'Q map for {img_id}')
        logits, classes, _ = load_maps_npz(path)
        if q.shape != gt.shape or logits.shape[1:] != gt.shape:
            raise SystemExit(f'error: {img_id}: maps {logits.shape[1:]}, Q {q.shape} and '
                             f'ground truth {gt.shape} differ in size')
        rows += image_counts(logits, classes, q, gt, min_pixels)
    if not rows:
        raise SystemExit(f'error: no map of {maps_dir} covers {min_pixels} object pixels')
    sums = {key: sum(r[key] for r in rows) for key in COUNTS}
    ratio = [r['q_fraction'] / r['gt_fraction'] for r in rows]
    top = max(sums['top'], 1)
    return dict(maps=len(rows), q_over_gt=float(np.median(ratio)),
                q_empty=float(np.mean([r['q_fraction'] == 0 for r in rows])),
                top_object=sums['top_object'] / top,
                top_background=sums['top_background'] / top,
                top_other=(sums['top'] - sums['top_object'] - sums['top_background']) / top,
                q_object=sums['q_object'] / max(sums['q_pixels'], 1))


def table(results: Dict[str, Dict[str, float]]) -> str:
    lines = ['| maps and Q | count | Q / GT (median) | Q empty | top-Q on the object | '
             'on background | on other classes | Q\'s pixels on the object |',
             '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for name, r in results.items():
        lines.append(f'| {name} | {r["maps"]} | {r["q_over_gt"]:.2f} | '
                     f'{100 * r["q_empty"]:.0f} % | {100 * r["top_object"]:.1f} % | '
                     f'{100 * r["top_background"]:.1f} % | {100 * r["top_other"]:.1f} % | '
                     f'{100 * r["q_object"]:.1f} % |')
    return '\n'.join(lines)


def main(argv=None):
    return report_main(
        argv, __doc__, 'MAPS_DIR Q_DIR DATA_ROOT',
        lambda maps, q, root, args: measure(maps, q, root, args.limit, args.min_pixels),
        table, min_pixels=True)

if __name__ == '__main__':
    main()
