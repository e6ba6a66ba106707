# Copyright (c) mmseg-sbce contributors.
"""What the scripts that read a run's saved maps against the ground truth share (not a
benchmark itself): finding the saved maps, reading label images, and the command line that
turns groups of paths into one Markdown row each (``activation_profile.py``,
``q_seeds.py``, ``saturation_profile.py``)."""
import argparse
import glob
import os.path as osp
from typing import Callable, Dict, List, Optional

import numpy as np
from PIL import Image


def saved_map_files(maps_dir: str) -> List[str]:
    """The ``probs/*.npz`` of a ``tools/gen_pseudo.py --save-probs`` export, sorted; a clear
    error when there are none."""
    files = sorted(glob.glob(osp.join(maps_dir, 'probs', '*.npz')))
    if not files:
        raise SystemExit(f'error: no saved maps in {osp.join(maps_dir, "probs")} (export '
                         'with tools/gen_pseudo.py --save-probs)')
    return files


def read_png(path: str, what: str) -> np.ndarray:
    """The label image at ``path``; a clear error naming ``what`` when it is missing."""
    if not osp.isfile(path):
        raise SystemExit(f'error: no {what}: {path}')
    return np.array(Image.open(path))


def ground_truth(data_root: str, img_id: str) -> np.ndarray:
    """``DATA_ROOT/SegmentationClass/{img_id}.png``."""
    return read_png(osp.join(data_root, 'SegmentationClass', img_id + '.png'),
                    f'ground truth for {img_id}')


def report_main(argv: Optional[list], doc: str, metavar: str,
                measure: Callable[..., Dict[str, float]],
                table: Callable[[Dict[str, Dict[str, float]]], str],
                add_arguments: Optional[Callable] = None,
                min_pixels: bool = False) -> Dict[str, Dict[str, float]]:
    """Parse ``GROUP [GROUP ...] [--names ...] [--limit N] [--out FILE]`` where a group is
    the ``len(metavar.split())`` paths of ``metavar``; ``measure(*group, args)`` gives each
    row, ``table`` the Markdown, printed and written to ``--out``. ``add_arguments(parser)``
    adds a script's own options; ``min_pixels`` adds ``--min-pixels`` (default 10)."""
    width = len(metavar.split())
    parser = argparse.ArgumentParser(description=doc.split('\n\n')[0])
    parser.add_argument('paths', nargs='+', metavar=metavar)
    parser.add_argument('--names', nargs='+', help='a row name for each group of paths')
    parser.add_argument('--limit', type=int, help='read only the first N images of each')
    if min_pixels:
        parser.add_argument('--min-pixels', type=int, default=10,
                            help='skip maps whose class covers fewer ground-truth pixels')
    if add_arguments is not None:
        add_arguments(parser)
    parser.add_argument('--out', help='also write the table to this Markdown file')
    args = parser.parse_args(argv)
    if len(args.paths) % width:
        parser.error(f'give groups of {width} paths: {metavar}')
    groups = [args.paths[i:i + width] for i in range(0, len(args.paths), width)]
    names = args.names or [group[0] for group in groups]
    if len(names) != len(groups):
        parser.error(f'--names gives {len(names)} names for {len(groups)} groups of paths')
    results = {name: measure(*group, args) for name, group in zip(names, groups)}
    text = table(results)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    return results
