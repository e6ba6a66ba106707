# Copyright (c) mmseg-sbce contributors.
"""The one recipe on every member of the generated data-set family, over training seeds.

For every member (``benchmarks/datasets/*.json``) and every seed, the data set is generated
(once per member; the member's own data seed) and the whole pipeline runs with the demo's
configs, unchanged except the class names the member's generator wrote and
``randomness.seed`` (``tools/run_pipeline.py``; nothing is tuned per member). Then one table
per member: mean over the seeds and spread (max - min) of the four pseudo-label columns for
the baseline and each SBCE phase, the foreground fraction of the labels against the ground
truth's, and DeepLab's val mIoU.

    python benchmarks/family_benchmark.py run [--members NAME ...] [--seeds 0 1 2]
        [--work-dir work_dirs/family] [--data-dir data/family] [--skip-deeplab]
        [--pipeline-options ...]
    python benchmarks/family_benchmark.py table [--members ...] [--seeds ...]
        [--work-dir work_dirs/family] [--out FILE.md]

``run`` is resumable (every pipeline stage leaves a marker) and prints the tables at the end;
``table`` only reads finished runs (a seed still running is left out and said so). One member
and seed takes about 8-10 minutes on an idle 2-core CPU machine.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PRESET_DIR = osp.join(REPO, 'benchmarks', 'datasets')
CONFIGS = dict(baseline='configs/demo/bce_baseline_demo.py',
               sbce='configs/demo/sbce_demo.py',
               deeplab='configs/demo/deeplabv3plus_demo.py')
COLUMNS = ('init', 'crf', 'best', 'best_crf')


def member_names() -> List[str]:
    return sorted(osp.splitext(osp.basename(p))[0]
                  for p in glob.glob(osp.join(PRESET_DIR, '*.json')))


def run_member(member: str, seed: int, args) -> None:
    """Generate the member (once) and run the pipeline with training seed ``seed``."""
    data = osp.join(args.data_dir, member)
    if not osp.isfile(osp.join(data, 'meta.json')):
        subprocess.run([sys.executable, 'tools/gen_demo_data.py', data, '--preset', member,
                        '--no-progress'], cwd=REPO, check=True)
    with open(osp.join(data, 'meta.json')) as f:
        names = json.load(f)['classes'][1:]
    data_set = [f'class_names=[{",".join(names)}]', f'randomness.seed={seed}']
    cmd = [sys.executable, 'tools/run_pipeline.py', CONFIGS['baseline'], CONFIGS['sbce'],
           CONFIGS['deeplab'], '--data-root', data,
           '--work-dir', osp.join(args.work_dir, member, f'seed{seed}')]
    for name in CONFIGS:
        cmd += [f'--{name}-options', *data_set, *args.pipeline_options]
    if args.skip_deeplab:
        cmd.append('--skip-deeplab')
    print(f'\n[family] ===== {member}, seed {seed} =====', flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def fg_fraction(confusion) -> Optional[float]:
    """Share of the labelled pixels predicted as foreground (a class, not background or
    255) in a ``[N, N + 1]`` confusion matrix (rows: ground truth)."""
    if confusion is None:
        return None
    cm = np.asarray(confusion, np.float64)
    total = cm.sum()
    return float(cm[:, 1:cm.shape[0]].sum() / total) if total else None


def gt_fg_fraction(confusion) -> Optional[float]:
    cm = np.asarray(confusion, np.float64)
    total = cm.sum()
    return float(cm[1:].sum() / total) if total else None


def read_run(work: str) -> Optional[Dict]:
    """Rows of one finished pipeline run (None while it is not finished): the four columns,
    the foreground fractions of the no-dCRF and dCRF labels, the ground truth's, and
    DeepLab's val mIoU."""
    path = osp.join(work, 'summary.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        summary = json.load(f)

    def report(name):
        with open(osp.join(work, name + '.json')) as f:
            return json.load(f)

    phases = len(summary['rows']) - 1
    crf_reports = ['eval_baseline_crf'] + [
        f'eval_sbce_p{k}' if k == phases else f'eval_sbce_p{k}_crf' for k in range(1, phases + 1)]
    map_reports = ['eval_baseline'] + [f'eval_sbce_p{k}' for k in range(1, phases + 1)]
    rows = []
    gt_fg = None
    for i, row in enumerate(summary['rows']):
        maps = report(map_reports[i])
        crf = report(crf_reports[i])['prediction']['confusion']
        init = maps['prediction']['confusion'] if i == 0 else \
            maps['sweep']['adaptive'].get('confusion')
        gt_fg = gt_fg_fraction(crf)
        rows.append(dict(name=row['name'], **{c: row[c] for c in COLUMNS},
                         best_threshold=row['best_threshold'],
                         fg_init=fg_fraction(init), fg_crf=fg_fraction(crf)))
    return dict(rows=rows, gt_fg=gt_fg, deeplab=summary.get('deeplab_miou'))


def member_table(member: str, runs: Dict[int, Dict]) -> str:
    """Mean over seeds (spread = max - min in brackets) of every cell."""
    seeds = sorted(runs)
    first = runs[seeds[0]]

    def cell(values, scale=100.0):
        vals = [v for v in values if v is not None]
        if not vals:
            return '-'
        mean = scale * float(np.mean(vals))
        if len(vals) == 1:
            return f'{mean:.1f}'
        return f'{mean:.1f} ({scale * (max(vals) - min(vals)):.1f})'

    lines = [f'### {member}', '',
             f'Seeds {", ".join(map(str, seeds))}: mean (max - min). Foreground: share of the '
             'labelled pixels labelled as a class, ground truth '
             f'{100 * first["gt_fg"]:.1f} %.', '',
             '| labels | init | +dCRF | best threshold | best threshold +dCRF | '
             't best | fg init | fg +dCRF |',
             '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for i, row in enumerate(first['rows']):
        cells = [cell([runs[s]['rows'][i][c] for s in seeds]) for c in COLUMNS]
        thr = f'{float(np.mean([runs[s]["rows"][i]["best_threshold"] for s in seeds])):.2f}'
        fg = [cell([runs[s]['rows'][i][k] for s in seeds]) for k in ('fg_init', 'fg_crf')]
        lines.append(f'| {row["name"]} | ' + ' | '.join(cells) + f' | {thr} | '
                     + ' | '.join(fg) + ' |')
    deeplab = [runs[s]['deeplab'] for s in seeds]
    if any(d is not None for d in deeplab):
        lines += ['', 'DeepLab val mIoU on the final SBCE labels: '
                  + cell([None if d is None else d / 100 for d in deeplab])
                  + ' (per seed: ' + ', '.join('-' if d is None else f'{d:.1f}'
                                               for d in deeplab) + ')']
    return '\n'.join(lines)


def tables(args) -> str:
    out = []
    for member in args.members:
        runs, pending = {}, []
        for seed in args.seeds:
            run = read_run(osp.join(args.work_dir, member, f'seed{seed}'))
            if run is None:
                pending.append(seed)
            else:
                runs[seed] = run
        if runs:
            out.append(member_table(member, runs))
        if pending:
            out.append(f'({member}: seeds {pending} not finished)')
    return '\n\n'.join(out) + '\n'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('command', choices=('run', 'table'))
    parser.add_argument('--members', nargs='+', default=member_names(),
                        help='family members (benchmarks/datasets/NAME.json; default: all)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2],
                        help='training seeds (randomness.seed of every config)')
    parser.add_argument('--work-dir', default='work_dirs/family')
    parser.add_argument('--data-dir', default='data/family', help='generated members')
    parser.add_argument('--skip-deeplab', action='store_true')
    parser.add_argument('--pipeline-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='--cfg-options given to every config (an ablation of the '
                        'recipe, the same on every member)')
    parser.add_argument('--out', help='also write the tables to this Markdown file')
    args = parser.parse_args(argv)
    unknown = set(args.members) - set(member_names())
    if unknown:
        parser.error(f'unknown members {sorted(unknown)}; known: {member_names()}')
    args.work_dir = osp.abspath(args.work_dir)
    args.data_dir = osp.abspath(args.data_dir)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.command == 'run':
        for seed in args.seeds:  # every member once before the next seed: early coverage
            for member in args.members:
                run_member(member, seed, args)
    text = tables(args)
    print(text)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)) or '.', exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(text)


if __name__ == '__main__':
    main()
