# Copyright (c) mmseg-sbce contributors.
"""Train a model from a config: argparse -> Config -> Runner, as mmseg's tools/train.py.

Differences from mmseg's tool: importing ``mmseg_sbce`` applies the stack fixes (checkpoint
loading under torch's ``weights_only`` default, mmcv-lite), and under ``--launcher pytorch`` on a
machine without CUDA the process group is initialised with gloo (mmengine's own init needs
CUDA).
"""
import argparse
import logging
import os

from mmengine.config import DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

import mmseg_sbce  # noqa: F401  (registers the plugin, applies compat fixes)
from mmseg.registry import RUNNERS
from mmseg_sbce.datasets.class_count import check_class_counts
from mmseg_sbce.engine.optimizers import AMP_DTYPES, amp_optim_wrapper
from mmseg_sbce.utils import init_cpu_distributed, load_runner_config, report_input_errors
from mmseg_sbce.utils.checkpoint import check_load_from
from mmseg_sbce.utils.errors import InputError
from mmseg_sbce.utils.runner_config import resolve_resume


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor or an SBCE classifier')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        help='resume the run in the work_dir from its latest checkpoint (load_from only '
        'initialises a new run: it is used when the work_dir has no checkpoint yet)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training: AmpOptimWrapper (float16, dynamic '
        'loss scale) on a GPU, AutocastOptimWrapper (bfloat16) on CPU')
    parser.add_argument(
        '--amp-dtype',
        choices=AMP_DTYPES,
        help='autocast dtype of --amp (default: float16 on a GPU, bfloat16 on CPU, the only '
        'one CPU autocast supports)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate linearly with the total batch size (GPUs x '
        'train_dataloader.batch_size) relative to the config\'s auto_scale_lr.base_batch_size '
        '(24 for the VOC/COCO recipes); off, the config\'s learning rate is used as is')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value pairs (see mmseg tools/train.py)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


@report_input_errors('train')
def main(argv=None):
    args = parse_args(argv)
    cfg = load_runner_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    check_class_counts(cfg, args.config)  # before the Runner builds anything

    if args.amp:
        if cfg.optim_wrapper.type in ('AmpOptimWrapper', 'AutocastOptimWrapper'):
            print_log('AMP training is already enabled in your config.', logger='current',
                      level=logging.WARNING)
        else:
            cfg.optim_wrapper = amp_optim_wrapper(cfg.optim_wrapper, args.amp_dtype)
    elif args.amp_dtype is not None:
        raise ValueError('--amp-dtype needs --amp')

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise InputError(f'--auto-scale-lr: {args.config} has no '
                             'auto_scale_lr.base_batch_size (the batch its lr is set for)')
        cfg.auto_scale_lr.enable = True

    resolve_resume(cfg, args.resume)  # --resume resumes the work dir's run, not load_from
    if not cfg.resume:  # a resumed run restores its own weights
        check_load_from(cfg)
    if args.launcher == 'pytorch':
        init_cpu_distributed(cfg)

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
