# Copyright (c) mmseg-sbce contributors.
"""Evaluate pseudo-label PNGs against ground truth (confusion-matrix mIoU).

    python tools/eval_pseudo.py PRED_DIR --gt GT_DIR --split FILE [--num-classes 21]
        [--out REPORT_BASENAME] [--probs-dir DIR [--sweep START STOP STEP]]
        [--normalize-cam/--no-normalize-cam] [--allow-missing] [--workers N]

Writes ``REPORT_BASENAME.md`` and ``REPORT_BASENAME.json`` (default ``PRED_DIR/eval``).
Ground truth 255 is ignored; a predicted 255 counts as a miss of the ground-truth class
(see :mod:`mmseg_sbce.evaluation.pseudo_eval`). An id of the split without a prediction is
an error listing the missing ids, unless ``--allow-missing`` (then it counts as all-255, and
ids without ground truth are left out and listed in the report). The sweep (CAM-style
background threshold over ``--probs-dir`` maps, no dCRF; default 0.01 to 0.99 step 0.01) is
reported next to the predictions, with a note when its best threshold lies on an edge of the
range; the best threshold is chosen with ground truth, for reporting. The report is never
written through a symbolic link.
"""
import argparse
import os.path as osp
import sys


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='mIoU of pseudo-labels against ground truth')
    parser.add_argument('pred_dir', help='folder of predicted {img_id}.png')
    parser.add_argument('--gt', required=True, help='folder of ground-truth {img_id}.png')
    parser.add_argument('--split', required=True, help='file listing the image ids')
    parser.add_argument('--num-classes', type=int, default=21,
                        help='classes including background (VOC: 21)')
    parser.add_argument('--out', help='report base name (default: PRED_DIR/eval)')
    parser.add_argument('--probs-dir',
                        help='saved probability maps (gen_pseudo --save-probs: PRED_DIR/probs)')
    parser.add_argument('--sweep', type=float, nargs=3, metavar=('START', 'STOP', 'STEP'),
                        help='background thresholds to sweep over --probs-dir, STOP included '
                        '(default 0.01 0.99 0.01)')
    parser.add_argument('--normalize-cam', action=argparse.BooleanOptionalAction, default=True,
                        help='max-normalise class maps in the sweep (default on)')
    parser.add_argument('--allow-missing', action='store_true',
                        help='count ids without a prediction as misses instead of failing')
    parser.add_argument('--workers', type=int, help='processes reading files')
    args = parser.parse_args(argv)
    if args.sweep is not None and args.probs_dir is None:
        parser.error('--sweep needs --probs-dir (the saved maps to sweep over)')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmseg_sbce.evaluation.pseudo_eval import (DEFAULT_SWEEP, build_report,
                                                   evaluate_label_dir, sweep_values,
                                                   threshold_sweep, write_report)
    from mmseg_sbce.utils.io import SymlinkRefused, read_split
    ids = read_split(args.split)
    if args.probs_dir is not None and args.sweep is None:
        args.sweep = list(DEFAULT_SWEEP)
    try:
        result = evaluate_label_dir(args.pred_dir, args.gt, ids, args.num_classes,
                                    allow_missing=args.allow_missing, workers=args.workers)
        sweep = None
        if args.sweep is not None:
            sweep = threshold_sweep(args.probs_dir, args.gt, ids, sweep_values(*args.sweep),
                                    args.num_classes, normalize_cam=args.normalize_cam,
                                    allow_missing=args.allow_missing, workers=args.workers)
    except ValueError as exc:
        print(f'eval_pseudo: {exc}', file=sys.stderr)
        return 1
    report = build_report(args.pred_dir, args.gt, result, sweep=sweep,
                          sweep_range=args.sweep)
    basename = args.out or osp.join(args.pred_dir, 'eval')
    try:
        md_path, json_path = write_report(report, basename)
    except SymlinkRefused as exc:
        print(f'eval_pseudo: {exc}', file=sys.stderr)
        return 1
    with open(md_path, encoding='utf-8') as f:
        print(f.read(), end='')
    print(f'eval_pseudo: report written to {md_path} and {json_path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
