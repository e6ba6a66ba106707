# Copyright (c) mmseg-sbce contributors.
"""Generate the demo data set (PASCAL VOC layout) used by the CPU demo and the tests.

Example::

    python tools/gen_demo_data.py data/demo
    python tools/gen_demo_data.py data/demo-small --num-train 64 --num-val 16
"""
import argparse
import time

from mmseg_sbce.datasets.demo_data import (DEFAULT_BODY_TINT, MAX_DEMO_CLASSES,
                                           generate_demo_dataset)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Generate the demo WSSS data set.')
    parser.add_argument('out', help='output directory')
    parser.add_argument('--num-train', type=int, default=400, help='training images')
    parser.add_argument('--num-val', type=int, default=100, help='validation images')
    parser.add_argument('--size', type=int, default=128, help='image side in pixels')
    parser.add_argument(
        '--num-classes', type=int, default=6,
        help=f'foreground classes (1..{MAX_DEMO_CLASSES})')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--body-tint', type=float, default=DEFAULT_BODY_TINT,
        help='share of the class colour in the body colour (0 = bodies identical for all '
        'classes)')
    parser.add_argument(
        '--no-progress', dest='progress', action='store_false', help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    tic = time.time()
    meta = generate_demo_dataset(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        img_size=args.size,
        num_classes=args.num_classes,
        seed=args.seed,
        body_tint=args.body_tint,
        progress=args.progress)
    print(f'wrote {args.num_train} train + {args.num_val} val images, '
          f'{meta["num_classes"]} classes ({", ".join(meta["classes"][1:])}) to '
          f'{args.out} in {time.time() - tic:.1f} s')


if __name__ == '__main__':
    main()
