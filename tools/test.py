# Copyright (c) mmseg-sbce contributors.
"""Evaluate a checkpoint on a config's test set: argparse -> Config -> Runner.test(), as
mmseg's tools/test.py.

Works for both stages of the pipeline: an SBCE classifier config (its single-scale eq. 9
prediction, or the configured background threshold, scored by the config's evaluator) and a
DeepLab config trained on pseudo-labels (the final segmentation mIoU on real ground truth).
Differences from mmseg's tool: importing ``mmseg_sbce`` applies the stack fixes (checkpoint
loading under torch's ``weights_only`` default, mmcv-lite), a missing checkpoint is reported
before anything is built, and under ``--launcher pytorch`` on a machine without CUDA the
process group is initialised with gloo.
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction
from mmengine.runner import Runner

import mmseg_sbce  # noqa: F401  (registers the plugin, applies compat fixes)
from mmseg_sbce.datasets.class_count import check_class_counts
from mmseg_sbce.utils import init_cpu_distributed, load_runner_config, report_input_errors
from mmseg_sbce.utils.checkpoint import read_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir',
                        help='where the log and the metrics (json) are written')
    parser.add_argument('--out',
                        help='directory to save the predictions as PNG label maps')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value pairs (see mmseg tools/test.py)')
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


@report_input_errors('test')
def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint not found: {args.checkpoint}')
    read_checkpoint(args.checkpoint)  # unreadable: one line naming it, before any work
    cfg = load_runner_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    check_class_counts(cfg, args.config)
    cfg.load_from = args.checkpoint

    if args.out is not None:
        # mmseg's IoUMetric writes the predictions as PNGs when given an output_dir
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True

    if args.launcher == 'pytorch':
        init_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    return runner.test()


if __name__ == '__main__':
    main()
