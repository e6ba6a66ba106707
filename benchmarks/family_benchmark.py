# Copyright (c) mmseg-sbce contributors.
"""The one recipe on every member of the generated data-set family, over training seeds.

For every member (``benchmarks/datasets/*.json``, and ``demo``: the demo data set the
recipe was developed on, ``tools/gen_demo_data.py`` with its own defaults) and every seed,
the data set is generated (once per member; the member's own data seed) and the whole
pipeline runs with the demo's configs, unchanged except the class names the member's
generator wrote and ``randomness.seed`` (``tools/run_pipeline.py``; nothing is tuned per
member). Then one table
per member: mean over the seeds and spread (max - min) of the four pseudo-label columns for
the baseline and each SBCE phase, the foreground fraction of the labels against the ground
truth's, and DeepLab's val mIoU. Under each table, issue 16's three criteria of "done"
checked on those numbers (``done_criteria``): the last phase's adaptive labels with dCRF
beat the baseline's best threshold with dCRF by more than the seed spread, no phase is
worse than the one before by more than the spread in any column, and every phase's adaptive
labels are within 3 points of SBCE's own best threshold.

    python benchmarks/family_benchmark.py run [--members NAME ...] [--seeds 0 1 2]
        [--work-dir work_dirs/family] [--data-dir data/family] [--skip-deeplab]
        [--pipeline-options ...] [--baseline-options ...] [--sbce-options ...]
        [--baselines-from WORK_DIR] [--baseline-only | --equal-budget-baseline]
    python benchmarks/family_benchmark.py run --members my_set.json [...]   # your preset
    python benchmarks/family_benchmark.py table [--members ...] [--seeds ...]
        [--work-dir work_dirs/family] [--compare-baselines WORK_DIR] [--out FILE.md]

An ablation of the SBCE stage alone (``--sbce-options``, e.g. another threshold rule) can
start from the finished baselines of another work dir (``--baselines-from``): the BCE
baseline, its initial Q and its scored CAMs are copied, so both runs share them exactly.
Every run records its options in ``family_run.json``; a work dir made with other options is
refused, as is a baseline made with other ``--pipeline-options``, ``--baseline-options``
or preset. ``--baseline-options`` reach the BCE baseline's config only (an ablation of the
baseline, which the phases start from).

The phases start from the baseline and train on, so the SBCE labels have had more training
than the baseline's. ``--equal-budget-baseline`` runs the control: the baseline alone
(``--baseline-only``: no SBCE, no DeepLab), trained from scratch for as many iterations as
the recipe's baseline and phases together; ``table --compare-baselines`` then checks the
SBCE rows of one work dir against those baselines (same member and seed).

``run`` is resumable (every pipeline stage leaves a marker) and prints the tables at the end;
``table`` only reads finished runs (a seed still running is left out and said so). One member
and seed takes about 13 minutes at 128 px and 27 at 256 px on an idle 2-core CPU machine
(without DeepLab, which adds about 2 minutes on the demo).
"""
import argparse
import glob
import json
import os
import os.path as osp
import shutil
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
# The demo data set itself: the generator's defaults, no preset.
DEMO = 'demo'
RUN_RECORD = 'family_run.json'
# What the BCE baseline stages leave in a run's work dir (tools/run_pipeline.py): copied by
# --baselines-from, with their stage markers.
BASELINE_STAGES = ('2_baseline', '3_initial_q')
BASELINE_OUTPUTS = ('baseline', 'q_init', 'pseudo_baseline_nocrf')
# written by stage 3 only when the initial Q is kept without dCRF (``init_q_crf = False``)
OPTIONAL_BASELINE_OUTPUTS = ('pseudo_baseline_crf', )


def equal_budget_options() -> List[str]:
    """``--cfg-options`` that train the BCE baseline for as many iterations as the recipe
    trains in all (its baseline, which the SBCE phases start from, and the phases): the
    control for Spatial-BCE's extra training (``--equal-budget-baseline``)."""
    from mmengine.config import Config
    from mmseg_sbce.engine.phase_schedule import PhaseSchedule
    base = Config.fromfile(osp.join(REPO, CONFIGS['baseline']))
    sbce = Config.fromfile(osp.join(REPO, CONFIGS['sbce']))
    total = base.train_cfg.max_iters + PhaseSchedule.build(sbce.phase_schedule).total_iters
    scheduler = [i for i, p in enumerate(base.param_scheduler) if p.get('end') is not None]
    return [f'train_cfg.max_iters={total}', f'train_cfg.val_interval={total}',
            f'default_hooks.checkpoint.interval={total}',
            *[f'param_scheduler.{i}.end={total}' for i in scheduler]]


def member_names() -> List[str]:
    return sorted(osp.splitext(osp.basename(p))[0]
                  for p in glob.glob(osp.join(PRESET_DIR, '*.json'))) + [DEMO]


def run_record(member: str, seed: int, args) -> Dict:
    record = dict(member=member, seed=seed, pipeline_options=list(args.pipeline_options),
                  sbce_options=list(args.sbce_options))
    if args.baseline_options:  # only when given: the records of older runs stay valid
        record['baseline_options'] = list(args.baseline_options)
    if args.baseline_only:
        record['baseline_only'] = True
    if member in args.preset_files:  # a preset from outside the repository: its options
        with open(args.preset_files[member]) as f:
            record['preset'] = json.load(f)
    return record


def check_record(work: str, record: Dict) -> None:
    """Write ``record`` into a new run dir, or check it against the one already there."""
    path = osp.join(work, RUN_RECORD)
    if osp.isfile(path):
        with open(path) as f:
            old = json.load(f)
        if old != record:
            raise SystemExit(f'{work} holds a run made with {old}, not {record}: give this '
                             'run its own --work-dir')
        return
    os.makedirs(work, exist_ok=True)
    with open(path, 'w') as f:
        json.dump(record, f)


def copy_baseline(source: str, work: str, record: Dict) -> None:
    """Copy the finished baseline stages of the run in ``source`` into ``work``.

    Refused when ``source`` is not finished that far or was made with other
    ``--pipeline-options`` (which reach the baseline too), ``--baseline-options`` or
    preset; nothing is copied twice.
    """
    markers = osp.join(work, 'stages')
    if all(osp.isfile(osp.join(markers, f'{s}.json')) for s in BASELINE_STAGES):
        return
    src_record = osp.join(source, RUN_RECORD)
    if not osp.isfile(src_record):
        raise SystemExit(f'--baselines-from: {source} has no {RUN_RECORD} (not a run of '
                         'this script)')
    with open(src_record) as f:
        theirs = json.load(f)
    for key in ('member', 'seed', 'pipeline_options', 'baseline_options', 'preset'):
        if theirs.get(key) != record.get(key):
            raise SystemExit(f'--baselines-from: {source} was made with {key} '
                             f'{theirs.get(key)!r}, this run with {record.get(key)!r}')
    for stage in BASELINE_STAGES:
        if not osp.isfile(osp.join(source, 'stages', f'{stage}.json')):
            raise SystemExit(f'--baselines-from: {source} has not finished stage {stage}')
    os.makedirs(markers, exist_ok=True)
    for name in BASELINE_OUTPUTS + OPTIONAL_BASELINE_OUTPUTS:
        src, dst = osp.join(source, name), osp.join(work, name)
        if name in OPTIONAL_BASELINE_OUTPUTS and not osp.isdir(src):
            continue
        if osp.isdir(dst):
            shutil.rmtree(dst)  # a partial copy of an interrupted run
        shutil.copytree(src, dst)
    for stage in BASELINE_STAGES:  # the markers last: they say the copy is complete
        shutil.copy(osp.join(source, 'stages', f'{stage}.json'), markers)


def generate(member: str, data: str, preset: Optional[str] = None) -> None:
    """Generate a member into ``data``: ``preset`` is its JSON file when it is not one of
    the repository's (``--members PATH.json``)."""
    cmd = [sys.executable, 'tools/gen_demo_data.py', data, '--no-progress']
    if preset is not None:
        cmd += ['--preset', preset]
    elif member != DEMO:
        cmd += ['--preset', member]
    subprocess.run(cmd, cwd=REPO, check=True)


def run_member(member: str, seed: int, args) -> None:
    """Generate the member (once) and run the pipeline with training seed ``seed``."""
    data = osp.join(args.data_dir, member)
    if not osp.isfile(osp.join(data, 'meta.json')):
        generate(member, data, args.preset_files.get(member))
    with open(osp.join(data, 'meta.json')) as f:
        names = json.load(f)['classes'][1:]
    work = osp.join(args.work_dir, member, f'seed{seed}')
    record = run_record(member, seed, args)
    check_record(work, record)
    if args.baselines_from:
        copy_baseline(osp.join(args.baselines_from, member, f'seed{seed}'), work, record)
    data_set = [f'class_names=[{",".join(names)}]', f'randomness.seed={seed}']
    cmd = [sys.executable, 'tools/run_pipeline.py', CONFIGS['baseline'], CONFIGS['sbce'],
           CONFIGS['deeplab'], '--data-root', data, '--work-dir', work]
    for name in CONFIGS:
        extra = dict(sbce=args.sbce_options, baseline=args.baseline_options).get(name, [])
        cmd += [f'--{name}-options', *data_set, *args.pipeline_options, *extra]
    if args.skip_deeplab:
        cmd.append('--skip-deeplab')
    if args.baseline_only:
        cmd.append('--baseline-only')
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


def _stats(runs: Dict[int, Dict], row: int, column: str):
    """Mean and spread (max - min) over the seeds of one cell, in points."""
    vals = [100.0 * runs[s]['rows'][row][column] for s in sorted(runs)]
    return float(np.mean(vals)), float(max(vals) - min(vals))


def done_criteria(runs: Dict[int, Dict], tolerance: float = 3.0) -> List[Dict]:
    """Issue 16's three criteria of "done", checked on one member's finished seeds.

    1. ``beats_baseline``: the last phase's adaptive labels with dCRF beat the baseline's
       best threshold with dCRF by more than the seed spread (the larger of the two cells').
    2. ``phases_never_worse``: in every column, no phase's mean is below the previous
       phase's by more than the larger spread of the two cells (phase 1 has no previous
       SBCE phase; its comparison with the baseline is criterion 1).
    3. ``near_own_best``: in every phase, the adaptive labels are at most ``tolerance``
       points below SBCE's own best threshold, without dCRF and with it.

    Returns one dict per criterion: ``name``, ``holds`` and ``evidence`` (the numbers, as
    text). Every cell must be there (``read_run`` gives all four columns of every row).
    """
    phases = len(runs[min(runs)]['rows']) - 1
    out = []
    base, base_spread = _stats(runs, 0, 'best_crf')
    last, last_spread = _stats(runs, phases, 'crf')
    spread = max(base_spread, last_spread)
    per_seed = ', '.join(
        f'{100.0 * (runs[s]["rows"][phases]["crf"] - runs[s]["rows"][0]["best_crf"]):+.1f}'
        for s in sorted(runs))
    out.append(dict(
        name='beats_baseline', holds=bool(last - base > spread),
        evidence=f'phase {phases} adaptive +dCRF {last:.1f} vs baseline best threshold '
        f'+dCRF {base:.1f}: {last - base:+.1f}, spread {spread:.1f} (per seed {per_seed})'))
    worst = []
    for k in range(2, phases + 1):
        for column in COLUMNS:
            before, s_before = _stats(runs, k - 1, column)
            after, s_after = _stats(runs, k, column)
            drop = before - after
            allowed = max(s_before, s_after)
            worst.append((drop - allowed, k, column, drop, allowed))
    if worst:
        margin, k, column, drop, allowed = max(worst)
        evidence = (f'largest drop beyond the spread: phase {k - 1} -> {k}, {column} '
                    f'{-drop:+.1f} (spread {allowed:.1f})')
        holds = margin <= 0
    else:
        evidence, holds = 'one phase: nothing to compare', True
    out.append(dict(name='phases_never_worse', holds=holds, evidence=evidence))
    gaps = [[_stats(runs, k, best)[0] - _stats(runs, k, adaptive)[0]
             for adaptive, best in (('init', 'best'), ('crf', 'best_crf'))]
            for k in range(1, phases + 1)]
    out.append(dict(
        name='near_own_best', holds=bool(max(max(g) for g in gaps) <= tolerance),
        evidence='points below the best threshold, no dCRF / +dCRF: ' + ', '.join(
            f'phase {k} {g[0]:.1f} / {g[1]:.1f}' for k, g in enumerate(gaps, 1))
        + f' (allowed {tolerance:.1f})'))
    return out


def criteria_text(runs: Dict[int, Dict]) -> str:
    """The criteria of :func:`done_criteria` as Markdown lines under a member's table."""
    checks = done_criteria(runs)
    failed = [c['name'] for c in checks if not c['holds']]
    lines = [f'Issue 16\'s criteria over seeds {", ".join(map(str, sorted(runs)))}: '
             + ('all hold' if not failed else 'fails ' + ', '.join(failed))]
    lines += [f'- {c["name"]}: {"holds" if c["holds"] else "FAILS"}; {c["evidence"]}'
              for c in checks]
    return '\n'.join(lines)


def with_baseline_of(run: Dict, other: Dict, label: str) -> Dict:
    """``run`` with its baseline row replaced by ``other``'s (``label`` appended to its
    name): the SBCE phases compared with another baseline of the same member and seed."""
    row = dict(other['rows'][0], name=f"{other['rows'][0]['name']}, {label}")
    return dict(run, rows=[row] + run['rows'][1:])


def tables(args) -> str:
    out = []
    for member in args.members:
        runs, pending = {}, []
        for seed in args.seeds:
            run = read_run(osp.join(args.work_dir, member, f'seed{seed}'))
            if run is not None and args.compare_baselines:
                other = read_run(osp.join(args.compare_baselines, member, f'seed{seed}'))
                run = other and with_baseline_of(run, other,
                                                 osp.basename(args.compare_baselines))
            if run is None:
                pending.append(seed)
            else:
                runs[seed] = run
        if runs:
            out.append(member_table(member, runs))
            if len(runs[min(runs)]['rows']) > 1:  # a baseline-only run has no criteria
                out.append(criteria_text(runs))
        if pending:
            out.append(f'({member}: seeds {pending} not finished)')
    return '\n\n'.join(out) + '\n'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('command', choices=('run', 'table'))
    parser.add_argument('--members', nargs='+', default=member_names(),
                        help='family members: names of benchmarks/datasets/NAME.json or '
                        '"demo" (default: all), or paths to preset files of your own '
                        '(tools/gen_demo_data.py --preset; the member is named after the '
                        'file)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2],
                        help='training seeds (randomness.seed of every config)')
    parser.add_argument('--work-dir', default='work_dirs/family')
    parser.add_argument('--data-dir', default='data/family', help='generated members')
    parser.add_argument('--skip-deeplab', action='store_true')
    parser.add_argument('--pipeline-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='--cfg-options given to every config (an ablation of the '
                        'recipe, the same on every member)')
    parser.add_argument('--sbce-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='--cfg-options of the SBCE config only (an ablation of the '
                        'SBCE stage, e.g. pseudo_cfg.threshold=otsu '
                        'custom_hooks.1.pseudo_cfg.threshold=otsu)')
    parser.add_argument('--baseline-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='--cfg-options of the BCE baseline config only (an ablation '
                        'of the baseline, e.g. a longer schedule: train_cfg.max_iters=800 '
                        'param_scheduler.0.end=800 train_cfg.val_interval=800 '
                        'default_hooks.checkpoint.interval=800)')
    parser.add_argument('--baselines-from', metavar='WORK_DIR',
                        help='copy each run\'s finished BCE baseline and initial Q from '
                        'this work dir of the script (same member, seed and '
                        '--pipeline-options) instead of training them again')
    parser.add_argument('--baseline-only', action='store_true',
                        help='run: train and score the BCE baseline only (no SBCE, no '
                        'DeepLab)')
    parser.add_argument('--equal-budget-baseline', action='store_true',
                        help='run: the baseline only, trained for as many iterations as '
                        'the recipe\'s baseline and SBCE phases together (the control for '
                        'the phases\' extra training); compare it with --compare-baselines')
    parser.add_argument('--compare-baselines', metavar='WORK_DIR',
                        help='table: each run\'s baseline row taken from this work dir\'s '
                        'run of the same member and seed (e.g. an --equal-budget-baseline '
                        'run), and criterion 1 checked against it')
    parser.add_argument('--out', help='also write the tables to this Markdown file')
    args = parser.parse_args(argv)
    if args.equal_budget_baseline:
        if args.baseline_options:
            parser.error('--equal-budget-baseline sets the baseline\'s schedule: not with '
                         '--baseline-options')
        args.baseline_only = True
        args.baseline_options = equal_budget_options()
    if args.baseline_only and (args.sbce_options or args.baselines_from):
        parser.error('--baseline-only runs no SBCE stage: not with --sbce-options or '
                     '--baselines-from')
    args.preset_files, members = {}, []
    for member in args.members:
        if member.endswith('.json'):
            name = osp.splitext(osp.basename(member))[0]
            if not osp.isfile(member):
                parser.error(f'preset file {member} does not exist')
            if name in member_names() or name in args.preset_files:
                parser.error(f'preset file {member}: a member named {name!r} is already '
                             'given or in the repository; rename the file')
            args.preset_files[name] = osp.abspath(member)
            member = name
        members.append(member)
    args.members = members
    unknown = set(args.members) - set(member_names()) - set(args.preset_files)
    if unknown:
        parser.error(f'unknown members {sorted(unknown)}; known: {member_names()} or a '
                     'preset file PATH.json')
    args.work_dir = osp.abspath(args.work_dir)
    if args.baselines_from:
        args.baselines_from = osp.abspath(args.baselines_from)
        if args.baselines_from == args.work_dir:
            parser.error('--baselines-from is this --work-dir')
    if args.compare_baselines:
        args.compare_baselines = osp.abspath(args.compare_baselines)
        if not osp.isdir(args.compare_baselines):
            parser.error(f'--compare-baselines: no such folder: {args.compare_baselines}')
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
