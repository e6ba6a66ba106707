# Copyright (c) mmseg-sbce contributors.
"""Convert MS-COCO 2014 instance annotations into semantic label PNGs and image labels.

Example::

    python tools/dataset_converters/coco2014.py data/coco --out data/coco2014 --nproc 8

The logic lives in :mod:`mmseg_sbce.datasets.converters.coco2014`; the layout and the rules
(overlap, crowd, excluded images) are described there and in ``docs/data.md``.
"""
import argparse
import sys
from typing import Optional, Sequence

from mmseg_sbce.datasets.converters.coco2014 import (SPLIT_DIRS, CocoFormatError,
                                                     convert_coco2014)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='MS-COCO 2014 instances -> semantic label PNGs, split lists and '
        'image-level labels for mmseg-sbce.')
    parser.add_argument(
        'coco_root', help='folder with annotations/instances_{train,val}2014.json '
        '(and the train2014/ val2014/ image folders)')
    parser.add_argument('--out', required=True, help='output root (the data_root)')
    parser.add_argument('--nproc', type=int, default=1, help='worker processes')
    parser.add_argument(
        '--splits', nargs='+', default=['train', 'val'], choices=sorted(SPLIT_DIRS))
    parser.add_argument(
        '--check-images', action='store_true',
        help='read every image header and skip images that are missing or whose size '
        'differs from the json')
    parser.add_argument(
        '--keep-crowd-only', action='store_true',
        help='keep images whose only annotations are crowd regions (excluded by default)')
    parser.add_argument(
        '--overwrite', action='store_true', help='rewrite existing PNGs (default: resume)')
    parser.add_argument(
        '--no-link-images', dest='link_images', action='store_false',
        help='do not symlink OUT/{train,val}2014 to the COCO image folders')
    parser.add_argument('--no-progress', dest='progress', action='store_false')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        reports = convert_coco2014(
            args.coco_root, args.out, splits=args.splits, nproc=args.nproc,
            check_images=args.check_images, keep_crowd_only=args.keep_crowd_only,
            overwrite=args.overwrite, link_images=args.link_images,
            progress=args.progress, log=print)
    except CocoFormatError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    skipped = sum(len(report.skipped) for report in reports.values())
    if skipped:
        print(f'{skipped} image(s) skipped; see {args.out}/coco2014_<split>_report.json',
              file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
