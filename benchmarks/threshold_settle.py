# Copyright (c) mmseg-sbce contributors.
"""Is the learned threshold off because the branch lags, or because of where it converges?

From the checkpoint that ends SBCE phase ``K`` of a finished pipeline run
(``tools/run_pipeline.py`` / ``benchmarks/family_benchmark.py``), train the threshold branch
alone for ``--iters`` more iterations: every other weight frozen (learning-rate multiplier 0,
BN running statistics kept: momentum 0), so the maps stay the phase's and only ``t`` moves.
Then label the training set with eq. 9 and the settled ``t`` (no dCRF) and score it. Against
the phase's own adaptive labels and its best constant threshold (both from the run's
``summary.json``), the settled labels tell the two apart: if they close the gap to the best
threshold, the branch had not converged when the phase ended; if not, its objective (the
paper's side-mean, or the run's ``threshold_loss``) converges elsewhere.

    python benchmarks/threshold_settle.py WORK_DIR [WORK_DIR ...] [--phases 1 3]
        [--iters 100] [--out-dir work_dirs/threshold_settle] [--out FILE.md]

Each run's SBCE config is the one it saved (``WORK_DIR/sbce/*.py``); the branch trains at
that config's rate of the phase it continues (its ``conv_thr`` multiplier included), poly to
0 over ``--iters``. Algorithm 1 needs one classifier iteration per period: the period here
is 100, and that iteration changes nothing (rate 0). Finished outputs are reused.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
from typing import List

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
FROZEN_KEYS = ('backbone', 'decode_head.T', 'decode_head.conv_cls', 'decode_head.bottleneck')


def run_config(work: str) -> str:
    """The SBCE config a pipeline run saved (mmengine dumps it into the run's work dir)."""
    found = sorted(glob.glob(osp.join(work, 'sbce', '*.py')))
    if len(found) != 1:
        raise SystemExit(f'threshold_settle: {work}/sbce holds {len(found)} config files, '
                         'expected the one the SBCE run saved')
    return found[0]


def settle_config(base: str, branch_lr_mult: float, norm_cfg) -> str:
    """Text of a config that continues ``base`` with only the threshold branch learning."""
    keys = {k: dict(lr_mult=0.0, decay_mult=0.0) for k in FROZEN_KEYS}
    keys['decode_head.conv_thr'] = dict(lr_mult=branch_lr_mult)
    lines = [f'_base_ = [{base!r}]',
             f'optim_wrapper = dict(paramwise_cfg=dict(custom_keys={keys!r}))']
    if norm_cfg is not None:  # momentum 0: the BN running statistics stay the phase's
        lines.append(f'model = dict(backbone=dict(norm_cfg={norm_cfg!r}))')
    return '\n'.join(lines) + '\n'


def frozen_norm_cfg(backbone: dict):
    """The backbone's ``norm_cfg`` (its config's, else its class default) with momentum 0,
    so that its BN running statistics stay the phase's; ``None`` for norms without them."""
    import inspect

    import mmseg_sbce.models  # noqa: F401 (registers the backbones)
    from mmseg.registry import MODELS
    norm = backbone.get('norm_cfg')
    if norm is None:
        param = inspect.signature(MODELS.get(backbone['type']).__init__).parameters.get(
            'norm_cfg')
        norm = None if param is None else param.default
    if not norm or norm.get('type') not in ('BN', 'BN2d', 'SyncBN'):
        return None
    return dict(norm, momentum=0.0)


def settle_commands(work: str, phase: int, iters: int, out: str) -> List[List[str]]:
    """The three commands (train, label, score) of one settle run, and the config they read
    (written to ``out/settle.py``)."""
    from mmengine import Config

    from mmseg_sbce.engine import PhaseSchedule
    base = run_config(work)
    cfg = Config.fromfile(base)
    schedule = PhaseSchedule.build(dict(cfg.phase_schedule))
    if not 1 <= phase <= schedule.num_phases:
        raise SystemExit(f'threshold_settle: phase {phase} not in 1..{schedule.num_phases}')
    phase_end = schedule.phase_start(phase) + schedule.phase_length(phase)
    keys = cfg.optim_wrapper.get('paramwise_cfg', {}).get('custom_keys', {})
    branch = keys.get('decode_head.conv_thr', {}).get('lr_mult', 1.0)
    config = osp.join(out, 'settle.py')
    with open(config, 'w') as f:
        f.write(settle_config(base, branch, frozen_norm_cfg(cfg.model.backbone)))
    hook = next(i for i, h in enumerate(cfg.custom_hooks) if h.type == 'QUpdateHook')
    load_q = next(i for i, t in enumerate(cfg.train_dataloader.dataset.pipeline)
                  if t.type == 'LoadQMap')
    q_store = osp.join(work, 'sbce', 'q')
    q = osp.join(work, 'q_init') if phase == 1 else osp.join(q_store, f'phase_{phase}')
    # scored as the run scored its phases: the split its export labelled, its ground truth
    infer = cfg.get('infer_dataset') or cfg.pseudo_dataloader.dataset
    with open(osp.join(work, f'eval_sbce_p{phase}.json')) as f:
        gt_dir = json.load(f)['gt_dir']
    py = sys.executable
    train = [py, 'tools/train.py', config, '--work-dir', out, '--cfg-options',
             f'load_from={osp.join(work, "sbce", f"iter_{phase_end}.pth")}',
             f'custom_hooks.{hook}.init_q_dir={q}', f'custom_hooks.{hook}.q_dir={out}/q',
             f'train_dataloader.dataset.pipeline.{load_q}.q_dir={out}/q',
             'phase_schedule.gamma=100', 'phase_schedule.theta=1', 'phase_schedule.bce_iters=0',
             f'phase_schedule.phase_iters={iters}', 'phase_schedule.num_phases=1',
             f'param_scheduler.0.phase_factors=[{tuple(_phase_factor(cfg, phase))}]']
    label = [py, 'tools/gen_pseudo.py', config, osp.join(out, f'iter_{iters}.pth'), '--out',
             osp.join(out, 'labels'), '--no-crf', '--no-progress', '--overwrite']
    score = [py, 'tools/eval_pseudo.py', osp.join(out, 'labels'), '--gt', gt_dir, '--split',
             osp.join(infer.data_root, infer.ann_file), '--num-classes',
             str(cfg.model.decode_head.num_classes + 1), '--out', osp.join(out, 'eval')]
    return [train, label, score]


def _phase_factor(cfg, phase: int):
    """(start, end) learning-rate factors of ``phase`` in the run's PhaseSchedulePolyLR."""
    sched = cfg.param_scheduler[0]
    factors = sched['phase_factors']
    return factors[min(phase, len(factors)) - 1]


def settle(work: str, phase: int, iters: int, out: str) -> float:
    """mIoU (0-1) of the settled labels; reuses a finished score."""
    report = osp.join(out, 'eval.json')
    if not osp.exists(report):
        os.makedirs(out, exist_ok=True)
        for cmd in settle_commands(work, phase, iters, out):
            log = osp.join(out, osp.basename(cmd[1]).replace('.py', '.log'))
            with open(log, 'w') as f:
                if subprocess.call(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT):
                    raise SystemExit(f'threshold_settle: {" ".join(cmd[:2])} failed, see {log}')
    with open(report) as f:
        return json.load(f)['prediction']['miou']


def phase_row(work: str, phase: int) -> dict:
    """The run's own numbers for ``phase``: adaptive labels and best threshold, no dCRF."""
    path = osp.join(work, 'summary.json')
    if not osp.isfile(path):
        raise SystemExit(f'threshold_settle: {path} not found: the run must have finished '
                         'with ground truth (its evaluation stage writes the summary)')
    with open(path) as f:
        rows = json.load(f)['rows']
    return rows[phase]  # row 0 is the baseline


def table_row(work: str, phase: int, settled: float) -> str:
    row = phase_row(work, phase)
    gap, new_gap = row['best'] - row['init'], row['best'] - settled
    return (f'| {work} | {phase} | {100 * row["init"]:.1f} | {100 * settled:.1f} | '
            f'{100 * row["best"]:.1f} (t={row["best_threshold"]:g}) | '
            f'{100 * gap:.1f} -> {100 * new_gap:.1f} |')


HEADER = ('| run | phase | learned t, no dCRF | branch settled, no dCRF | best threshold, no '
          'dCRF | gap to the best |\n| --- | --- | --- | --- | --- | --- |')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('work_dirs', nargs='+', help='finished pipeline runs')
    parser.add_argument('--phases', type=int, nargs='+', default=[1])
    parser.add_argument('--iters', type=int, default=100,
                        help='threshold-branch iterations (a multiple of 100)')
    parser.add_argument('--out-dir', default='work_dirs/threshold_settle')
    parser.add_argument('--out', help='also write the table to this file')
    args = parser.parse_args(argv)
    if args.iters <= 0 or args.iters % 100:
        parser.error(f'--iters must be a positive multiple of 100, got {args.iters}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    lines = [HEADER]
    for work in args.work_dirs:
        phase_row(work, 1)  # a run that cannot be reported is refused before any training
        for phase in args.phases:
            name = osp.normpath(work).replace(osp.sep, '_').strip('_.')
            out = osp.abspath(osp.join(args.out_dir, f'{name}_p{phase}_n{args.iters}'))
            lines.append(table_row(work, phase, settle(osp.abspath(work), phase, args.iters,
                                                       out)))
            print(lines[-1], flush=True)
    text = '\n'.join(lines) + '\n'
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
