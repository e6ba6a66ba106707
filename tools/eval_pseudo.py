# Copyright (c) mmseg-sbce contributors.
"""Evaluate pseudo-label PNGs against ground truth (confusion-matrix mIoU).

    python tools/eval_pseudo.py PRED_DIR --gt GT_DIR --split FILE
        [--config CONFIG | --class-names NAME ... | --num-classes N]
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

Class names (the report's rows) and their count come from, first found: ``--class-names``
(the foreground names; ``background`` first is accepted), ``--config`` (its data set
description ``class_names``, else the ``meta.json`` of its ``data_root`` when there is one,
else ``num_classes`` with generic names), ``--num-classes`` (background included; VOC's
names for 21), or VOC's 21 classes.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='mIoU of pseudo-labels against ground truth')
    parser.add_argument('pred_dir', help='folder of predicted {img_id}.png')
    parser.add_argument('--gt', required=True, help='folder of ground-truth {img_id}.png')
    parser.add_argument('--split', required=True, help='file listing the image ids')
    parser.add_argument('--num-classes', type=int,
                        help='classes including background (default: from --class-names or '
                        '--config, else 21, VOC)')
    parser.add_argument('--class-names', nargs='+', metavar='NAME',
                        help='the foreground class names, in label-id order 1..C')
    parser.add_argument('--config', help="a config whose data set's class names to use "
                        '(--cfg-options data_root=... class_names=... apply as in train.py)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of --config')
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
    if args.class_names and args.config:
        parser.error('give the class names once: --class-names or --config')
    if args.cfg_options and not args.config:
        parser.error('--cfg-options needs --config')
    return args


def config_class_names(config: str, cfg_options: Optional[dict] = None) -> List[str]:
    """The foreground class names of ``config``'s data set.

    Its ``class_names`` (after ``cfg_options``, derived as ``tools/train.py`` does), else the
    names of the ``meta.json`` in its ``data_root`` (the generated demo data), else
    ``class_1 ... class_C`` for its ``num_classes``.

    Raises:
        ValueError: The config describes no data set (none of the three).
    """
    from mmseg_sbce.utils.runner_config import read_config
    cfg = read_config(config, cfg_options)
    if cfg.get('class_names', None) is not None:
        return list(cfg.class_names)
    data_root = cfg.get('data_root', None)
    if data_root and osp.isfile(osp.join(data_root, 'meta.json')):
        from mmseg_sbce.datasets.demo_data import load_demo_meta
        return list(load_demo_meta(data_root)['classes'][1:])
    if cfg.get('num_classes', None) is not None:
        return [f'class_{i}' for i in range(1, int(cfg.num_classes) + 1)]
    raise ValueError(f'{config} describes no data set: no class_names, no '
                     f'{data_root}/meta.json and no num_classes')


def resolve_class_names(args: argparse.Namespace) -> Optional[List[str]]:
    """All N class names (background first) and set ``args.num_classes`` to N.

    Returns None when neither names nor a config were given (the report then names the
    classes from their count).

    Raises:
        ValueError: The names and ``--num-classes`` disagree, or a name repeats.
    """
    names = args.class_names
    if args.config:
        names = config_class_names(args.config, args.cfg_options)
    if names is None:
        if args.num_classes is None:
            args.num_classes = 21
        return None
    names = list(names)
    if names[0] != 'background':
        names = ['background'] + names
    if len(set(names)) != len(names):
        raise ValueError(f'class names repeat a name: {names[1:]}')
    if args.num_classes is not None and args.num_classes != len(names):
        raise ValueError(f'--num-classes {args.num_classes} but {len(names)} class names '
                         f'(background included): {names}')
    args.num_classes = len(names)
    return names


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmseg_sbce.evaluation.pseudo_eval import (DEFAULT_SWEEP, build_report,
                                                   evaluate_label_dir, sweep_values,
                                                   threshold_sweep, write_report)
    from mmseg_sbce.utils.io import SymlinkRefused, read_split
    try:
        class_names = resolve_class_names(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f'eval_pseudo: {exc}', file=sys.stderr)
        return 1
    try:
        ids = read_split(args.split)
    except OSError as exc:  # a missing or unreadable split file: one line, not a traceback
        print(f'eval_pseudo: --split {args.split}: {exc.strerror or exc}', file=sys.stderr)
        return 1
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
                          sweep_range=args.sweep, class_names=class_names)
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
