# Copyright (c) mmseg-sbce contributors.
"""Generate the demo data set, or a member of the generated data-set family (VOC layout).

Example::

    python tools/gen_demo_data.py data/demo
    python tools/gen_demo_data.py data/demo-small --num-train 64 --num-val 16
    python tools/gen_demo_data.py --list-presets
    python tools/gen_demo_data.py data/family/small_objects_256 --preset small_objects_256
    python tools/gen_demo_data.py data/family --preset all        # every member, OUT/NAME
    python tools/gen_demo_data.py data/mine --option clutter=edges object_scale=[0.1,0.3]
    python tools/gen_demo_data.py data/demo --saliency-stand-in   # + SaliencyStandIn/*.png

Without ``--preset`` or ``--option`` the demo generator runs with its own defaults (the
demo's results depend on its bytes). ``--preset`` takes a name from
``benchmarks/datasets/`` or a JSON file; ``--option KEY=VALUE`` (JSON values) and the
explicit flags below override the preset's options.

``--saliency-stand-in`` also writes ``SaliencyStandIn/{id}.png``: blurred, noisy object masks
derived from the ground truth, a STAND-IN for an off-the-shelf saliency detector so that the
saliency-guided route runs end to end (see docs/pseudo_labels.md). The other files are the
same bytes with or without it.
"""
import argparse
import json
import os.path as osp
import time
from typing import Dict, List, Optional

from mmseg_sbce.datasets.demo_data import (DEFAULT_BODY_TINT, MAX_DEMO_CLASSES,
                                           generate_demo_dataset)
from mmseg_sbce.datasets.family_data import generate_family_dataset
from mmseg_sbce.datasets.generated_common import write_saliency_stand_in
from mmseg_sbce.datasets.family_options import (FamilyOptions, family_preset_names,
                                                load_family_preset, resolve_family_preset)

PRESET_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'benchmarks',
                      'datasets')

# Demo defaults of the flags that a family member may override.
_DEMO_DEFAULTS = dict(num_train=400, num_val=100, size=128, num_classes=6, seed=0,
                      body_tint=DEFAULT_BODY_TINT)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate the demo WSSS data set or a member of the generated family.')
    parser.add_argument('out', nargs='?', help='output directory')
    parser.add_argument('--num-train', type=int, help='training images (demo: 400)')
    parser.add_argument('--num-val', type=int, help='validation images (demo: 100)')
    parser.add_argument('--size', type=int, help='image side in pixels (demo: 128)')
    parser.add_argument(
        '--num-classes', type=int, help=f'foreground classes (1..{MAX_DEMO_CLASSES}, demo: 6)')
    parser.add_argument('--seed', type=int, help='random seed (demo: 0)')
    parser.add_argument(
        '--body-tint', type=float,
        help='share of the class colour in the body colour (0 = bodies identical for all '
        f'classes; demo: {DEFAULT_BODY_TINT})')
    parser.add_argument(
        '--preset', help=f'family member: a name in {PRESET_DIR}, a JSON file, or "all" '
        '(every member, written to OUT/NAME)')
    parser.add_argument(
        '--option', nargs='+', default=[], metavar='KEY=VALUE',
        help='family option overrides, values in JSON (e.g. object_scale=[0.1,0.3]); '
        'without --preset they apply to the family defaults')
    parser.add_argument(
        '--saliency-stand-in', action='store_true',
        help='also write SaliencyStandIn/{id}.png: blurred, noisy ground-truth masks standing '
        'in for a saliency detector (for pseudo_cfg.saliency)')
    parser.add_argument('--list-presets', action='store_true',
                        help='list the family members and exit')
    parser.add_argument(
        '--no-progress', dest='progress', action='store_false', help='no progress bar')
    args = parser.parse_args(argv)
    if args.out is None and not args.list_presets:
        parser.error('the output directory is required')
    return args


def parse_options(pairs: List[str]) -> Dict:
    """``['key=value', ...]`` -> dict; values are JSON, or plain strings if not JSON."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        if not sep or not key:
            raise ValueError(f'--option expects KEY=VALUE, got {pair!r}')
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def family_options(args: argparse.Namespace, preset: Optional[str]) -> FamilyOptions:
    """The preset's options (or the family defaults) with the command line's overrides."""
    base = FamilyOptions() if preset is None else load_family_preset(
        resolve_family_preset(preset, PRESET_DIR))[0]
    values = base.to_dict()
    flags = dict(num_train=args.num_train, num_val=args.num_val, img_size=args.size,
                 num_classes=args.num_classes, seed=args.seed, body_tint=args.body_tint)
    values.update({k: v for k, v in flags.items() if v is not None})
    values.update(parse_options(args.option))
    return FamilyOptions.from_dict(values, source=f'preset {preset}' if preset else
                                   'family options')


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.list_presets:
        for name in family_preset_names(PRESET_DIR):
            _, description = load_family_preset(osp.join(PRESET_DIR, name + '.json'))
            print(f'{name}: {description}')
        return
    tic = time.time()
    if args.preset is None and not args.option:
        demo = {k: v if getattr(args, k) is None else getattr(args, k)
                for k, v in _DEMO_DEFAULTS.items()}
        meta = generate_demo_dataset(
            args.out, num_train=demo['num_train'], num_val=demo['num_val'],
            img_size=demo['size'], num_classes=demo['num_classes'], seed=demo['seed'],
            body_tint=demo['body_tint'], progress=args.progress)
        outputs = [(args.out, meta)]
    elif args.preset == 'all':
        outputs = []
        for name in family_preset_names(PRESET_DIR):
            out = osp.join(args.out, name)
            outputs.append((out, generate_family_dataset(
                out, family_options(args, name), preset=name, progress=args.progress)))
    else:
        outputs = [(args.out, generate_family_dataset(
            args.out, family_options(args, args.preset), preset=args.preset,
            progress=args.progress))]
    for out, meta in outputs:
        if args.saliency_stand_in:
            count = write_saliency_stand_in(out, seed=meta.get('seed', 0) or 0)
            print(f'wrote {count} stand-in saliency maps to {osp.join(out, "SaliencyStandIn")}')
        print(f'wrote {meta["splits"]["train"]} train + {meta["splits"]["val"]} val images, '
              f'{meta["num_classes"]} classes ({", ".join(meta["classes"][1:])}) to {out}')
    print(f'done in {time.time() - tic:.1f} s')


if __name__ == '__main__':
    main()
