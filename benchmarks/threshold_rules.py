# Copyright (c) mmseg-sbce contributors.
"""Where does a ground-truth-free threshold rule put each map's threshold, and how good are
the labels? Scored on the saved maps of a finished run.

Every map exported with ``tools/gen_pseudo.py --save-probs`` (``{maps}/probs/*.npz``: the
fused unscaled logits of the positive classes and the learned ``t'``) is labelled by eq. 9
with per-map thresholds from each rule, with and without the pipeline's dCRF, and scored
against the training ground truth (evaluation only: no rule looks at it, except the
``best constant`` row, which is the reference the paper's "best threshold" column reports):

- ``learned``: the ``t'`` the run's threshold branch produced (the pipeline's labels);
- ``otsu logits``: Otsu's split of the map's logits, bins over the map's own range (the
  target of ``SBCEHead(threshold_loss='otsu')``);
- ``otsu probabilities``: Otsu's split of ``sigmoid(x)`` over ``[0, 1]``;
- ``otsu logits, one per image``: Otsu's split of the image's foreground map
  ``max_c x_c``, the same threshold for all its classes (eq. 9 then decides between
  classes by ``p`` alone, as a constant threshold does);
- ``Q fraction`` (with ``--q-dir``): each map labels as many of its pixels as a Q map
  (e.g. the run's next Q, ``WORK_DIR/sbce/q/phase_N``) gives its class, its highest ones:
  the percentile the classifier sub-phase uses as ``t``, taken on the fused maps eq. 9
  reads. Ties matter there: eq. 9's probability fusion caps ``p`` below 1, so a confident
  object is a plateau of equal values, and the threshold goes just below a plateau when
  that labels a count nearer Q's than stopping above it (a class Q gives no pixel is
  labelled nowhere);
- ``best constant``: one threshold for every map, swept 0.01-0.99 with the ground truth
  (without dCRF; the +dCRF cell uses that threshold).

It separates the quality of the maps from the quality of the threshold: a rule far below
the best constant on maps where the best constant is good is a threshold problem.

With ``--cam`` the maps are read as the baseline's labels read them, max-normalised CAMs
``relu(x) / max relu(x)`` (the space of the initial Q's background threshold), and the rules
are: the config's constant (``--cam-threshold``, the demo's 0.3), Otsu per map on the CAM,
Otsu per image on ``max_c CAM_c``, and the best constant.

    python benchmarks/threshold_rules.py MAPS_DIR DATA_ROOT [--cam [--cam-threshold T]]
        [--q-dir Q_DIR] [--no-crf] [--workers N] [--out FILE.md]

``MAPS_DIR`` is e.g. ``WORK_DIR/pseudo_sbce_p1_nocrf`` of ``tools/run_pipeline.py``;
``DATA_ROOT`` holds ``JPEGImages/`` and ``SegmentationClass/`` (and ``meta.json`` or
``--num-classes``).
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys

import numpy as np
import torch
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from mmseg_sbce.apis.crf import dense_crf  # noqa: E402
from mmseg_sbce.apis.label_io import load_maps_npz  # noqa: E402
from mmseg_sbce.apis.label_maps import label_eq9, scatter_compact  # noqa: E402
from mmseg_sbce.evaluation.pseudo_eval import (confusion_matrix,  # noqa: E402
                                               metrics_from_confusion)
from mmseg_sbce.models.labelling import cam_from_logits  # noqa: E402
from mmseg_sbce.models.losses.otsu import otsu_threshold  # noqa: E402
from mmseg_sbce.models.losses.percentile import count_split  # noqa: E402
from mmseg_sbce.utils.io import read_label_png  # noqa: E402
from mmseg_sbce.utils.parallel import fork_pool  # noqa: E402

RULES = ('learned', 'otsu logits', 'otsu probabilities', 'otsu logits, one per image')
Q_RULE = 'Q fraction'
CAM_RULES = ('config threshold', 'otsu CAM', 'otsu CAM, one per image')
CONSTANTS = np.round(np.arange(1, 100) / 100, 2)


def rule_thresholds(logits: np.ndarray, learned: np.ndarray) -> dict:
    """``[K]`` thresholds ``t'`` (probability space) of every rule for one image."""
    x = torch.from_numpy(logits)[None]
    fg = x.max(1, keepdim=True).values
    return {
        'learned': learned,
        'otsu logits': torch.sigmoid(otsu_threshold(x, value_range=None))[0].numpy(),
        'otsu probabilities': otsu_threshold(x.sigmoid())[0].numpy(),
        'otsu logits, one per image': np.repeat(
            torch.sigmoid(otsu_threshold(fg, value_range=None))[0].numpy(), len(logits)),
    }


def q_fraction_thresholds(probs: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """``[K]`` thresholds that make each map ``[K, H, W]`` label (``p > t``, as eq. 9)
    the pixel count nearest ``fraction * H * W``, its highest pixels: the split
    ``SBCEHead(threshold_loss='q_count')`` regresses (:func:`count_split`, ties included)."""
    return count_split(probs, fractions)[0]


def cam_rule_thresholds(cam: np.ndarray, config_threshold: float) -> dict:
    """``[K]`` CAM thresholds of every ``--cam`` rule for one image."""
    m = torch.from_numpy(cam)[None]
    return {
        'config threshold': np.full(len(cam), config_threshold, np.float32),
        'otsu CAM': otsu_threshold(m)[0].numpy(),
        'otsu CAM, one per image': np.repeat(
            otsu_threshold(m.max(1, keepdim=True).values)[0].numpy(), len(cam)),
    }


def read_maps(npz: str, cam: bool):
    """The map eq. 9 compares with the thresholds (``sigmoid(x)``, or the CAM), the
    classes and the learned ``t'`` of one saved file."""
    logits, classes, learned = load_maps_npz(npz)
    if cam:
        return cam_from_logits(torch.from_numpy(logits)).numpy(), classes, learned, logits
    return 1 / (1 + np.exp(-logits)), classes, learned, logits


def score_image(args) -> dict:
    """Confusion matrices of one image: every rule (no dCRF, dCRF) and every constant.
    eq. 9 runs over the image's own classes (compact ids ``0..K``, as gen_pseudo does)."""
    npz, root, num_classes, with_crf, cam_threshold, q_dir = args
    img_id = osp.splitext(osp.basename(npz))[0]
    probs, classes, learned, logits = read_maps(npz, cam_threshold is not None)
    q_fractions = None
    if q_dir is not None:
        q_path = osp.join(q_dir, img_id + '.png')
        if not osp.isfile(q_path):
            raise FileNotFoundError(f'no Q map for {img_id}: {q_path}')
        q = read_label_png(q_path)
        if q.shape != probs.shape[1:]:
            raise ValueError(f'{q_path}: Q map {q.shape} and saved maps '
                             f'{probs.shape[1:]} differ in size')
        q_fractions = np.array([(q == c + 1).mean() for c in classes])
    gt_path = osp.join(root, 'SegmentationClass', img_id + '.png')
    if not osp.isfile(gt_path):
        raise FileNotFoundError(f'no ground truth for {img_id}: {gt_path}')
    gt = np.array(Image.open(gt_path))
    n = num_classes + 1
    out = {}
    img = None
    if with_crf:
        img = np.ascontiguousarray(
            np.array(Image.open(osp.join(root, 'JPEGImages', img_id + '.jpg')).convert('RGB')))
    rules = (cam_rule_thresholds(probs, cam_threshold) if cam_threshold is not None else
             rule_thresholds(logits, learned))
    if q_fractions is not None:
        rules[Q_RULE] = q_fraction_thresholds(probs, q_fractions)
    for rule, thr in rules.items():
        compact = label_eq9(probs, thr)
        out[(rule, False)] = confusion_matrix(scatter_compact(compact, classes), gt, n)
        if with_crf:
            refined = dense_crf(img, compact, len(classes) + 1).astype(np.uint8)
            out[(rule, True)] = confusion_matrix(scatter_compact(refined, classes), gt, n)
    out['constants'] = np.stack([
        confusion_matrix(scatter_compact(label_eq9(probs, np.full(len(classes), t)),
                                         classes), gt, n) for t in CONSTANTS])
    return out


def crf_at_constant(args) -> np.ndarray:
    """Confusion matrix of one image labelled at a constant threshold, with dCRF."""
    npz, root, num_classes, t, cam = args
    img_id = osp.splitext(osp.basename(npz))[0]
    probs, classes, _, _ = read_maps(npz, cam)
    gt = np.array(Image.open(osp.join(root, 'SegmentationClass', img_id + '.png')))
    img = np.ascontiguousarray(
        np.array(Image.open(osp.join(root, 'JPEGImages', img_id + '.jpg')).convert('RGB')))
    compact = label_eq9(probs, np.full(len(classes), t))
    refined = dense_crf(img, compact, len(classes) + 1).astype(np.uint8)
    return confusion_matrix(scatter_compact(refined, classes), gt, num_classes + 1)


def summarise(cm: np.ndarray) -> str:
    m = metrics_from_confusion(cm)
    fg = cm[:, 1:cm.shape[0]].sum() / max(cm.sum(), 1)
    return f'{100 * m["miou"]:.1f} ({100 * fg:.1f})'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('maps_dir', help='an export of gen_pseudo --save-probs')
    parser.add_argument('data_root', help='JPEGImages/ and SegmentationClass/')
    parser.add_argument('--num-classes', type=int,
                        help='foreground classes (default: from DATA_ROOT/meta.json)')
    parser.add_argument('--cam', action='store_true',
                        help='threshold max-normalised CAMs (the initial Q\'s space)')
    parser.add_argument('--cam-threshold', type=float, default=0.3,
                        help='the config\'s CAM threshold (the demo\'s 0.3)')
    parser.add_argument('--q-dir', help='a Q store (label PNGs, e.g. WORK_DIR/sbce/q/phase_2): '
                        'adds the "Q fraction" rule')
    parser.add_argument('--no-crf', action='store_true', help='skip the dCRF columns')
    parser.add_argument('--workers', type=int, default=os.cpu_count())
    parser.add_argument('--out', help='also write the table to this Markdown file')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    probs_dir = osp.join(args.maps_dir, 'probs')
    files = sorted(glob.glob(osp.join(probs_dir, '*.npz')))
    if not files:
        raise SystemExit(f'error: no saved maps in {probs_dir} (export with '
                         'tools/gen_pseudo.py --save-probs)')
    num_classes = args.num_classes
    if num_classes is None:
        meta = osp.join(args.data_root, 'meta.json')
        if not osp.isfile(meta):
            raise SystemExit(f'error: {meta} not found; give --num-classes')
        with open(meta) as f:
            num_classes = len(json.load(f)['classes']) - 1
    with_crf = not args.no_crf
    n = num_classes + 1
    if args.q_dir is not None and args.cam:
        raise SystemExit('error: --q-dir labels the maps eq. 9 reads; not with --cam')
    rules = CAM_RULES if args.cam else RULES + ((Q_RULE, ) if args.q_dir else ())
    cam_threshold = args.cam_threshold if args.cam else None
    totals = {(r, c): np.zeros((n, n + 1), np.int64) for r in rules for c in (False, True)}
    constants = np.zeros((len(CONSTANTS), n, n + 1), np.int64)
    jobs = [(f, args.data_root, num_classes, with_crf, cam_threshold, args.q_dir)
            for f in files]
    pool = fork_pool(args.workers) if args.workers > 1 else None
    imap = pool.imap_unordered if pool else (lambda func, items, chunksize: map(func, items))
    try:
        for i, out in enumerate(imap(score_image, jobs, chunksize=4)):
            for key, cm in out.items():
                if key in totals:
                    totals[key] += cm
            constants += out['constants']
            if (i + 1) % 100 == 0 or i + 1 == len(files):
                print(f'[threshold_rules] {i + 1}/{len(files)} images', file=sys.stderr)
        best = int(np.argmax([metrics_from_confusion(c)['miou'] for c in constants]))
        best_crf = None
        if with_crf:
            best_crf = sum(imap(crf_at_constant,
                                [(f, args.data_root, num_classes, CONSTANTS[best], args.cam)
                                 for f in files], chunksize=4))
    finally:
        if pool:
            pool.close()
            pool.join()
    gt_fg = constants[best][1:].sum() / max(constants[best].sum(), 1)
    space = 'max-normalised CAMs' if args.cam else 'p = sigmoid(x)'
    lines = [f'Maps: `{args.maps_dir}` ({len(files)} images, thresholds on {space}); '
             f'ground truth '
             f'{100 * gt_fg:.1f} % foreground. Cells: mIoU (foreground % of the labels).', '',
             '| threshold rule | no dCRF | +dCRF |', '| --- | --- | --- |']
    for rule in rules:
        crf_cell = summarise(totals[(rule, True)]) if with_crf else '-'
        lines.append(f'| {rule} | {summarise(totals[(rule, False)])} | {crf_cell} |')
    crf_cell = summarise(best_crf) if with_crf else '-'
    lines.append(f'| best constant (t={CONSTANTS[best]:.2f}, chosen with ground truth) | '
                 f'{summarise(constants[best])} | {crf_cell} |')
    table = '\n'.join(lines)
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')


if __name__ == '__main__':
    main()
