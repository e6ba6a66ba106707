# Copyright (c) mmseg-sbce contributors.
"""Export pseudo-labels of a trained classifier as PNGs (eq. 9 or a CAM threshold, + dCRF).

    python tools/gen_pseudo.py CONFIG CHECKPOINT --out DIR [--split NAME] [--crf/--no-crf]
        [--threshold adaptive|otsu|FLOAT] [--scales 1.0 0.5 1.5 2.0] [--flip/--no-flip]
        [--amp [bf16|fp16]] [--workers N] [--save-probs] [--from-maps MAPS_DIR] [--overwrite]
        [--cfg-options KEY=VALUE ...]

Distributed: ``tools/dist_gen_pseudo.sh CONFIG CHECKPOINT GPUS --out DIR ...``; every rank
labels its shard, rank 0 writes ``DIR/manifest.json``. See docs/pseudo_labels.md.

Exit status: 0 when every image was written (or already there), 1 when some images failed
(listed at the end; the others are written) or the output folder was refused.
"""
import argparse
import os
import os.path as osp
import sys

from mmseg_sbce.utils.errors import report_input_errors


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Generate pseudo-label PNGs with a trained classifier')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (must match the config)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--split', help='ann_file to label: a name (train -> same folder, train.txt) or a path')
    parser.add_argument(
        '--crf', action=argparse.BooleanOptionalAction, default=None,
        help='dense CRF on the labels (default: pseudo_cfg.crf.enabled, i.e. on)')
    parser.add_argument(
        '--threshold',
        help='"adaptive" (eq. 9 with the learned t\', default), "otsu" (eq. 9 with Otsu\'s '
        'split of each map) or a float background threshold')
    parser.add_argument('--scales', type=float, nargs='+', help='inference scales')
    parser.add_argument('--flip', action=argparse.BooleanOptionalAction, default=None,
                        help='horizontal-flip passes (default on)')
    parser.add_argument(
        '--amp', nargs='?', const='auto', choices=['auto', 'bf16', 'fp16'],
        help='network passes under autocast (pseudo_cfg.amp): bf16, fp16 (CUDA only) or, '
        'without a value, fp16 on CUDA and bf16 on CPU; fusion and dCRF stay float32')
    parser.add_argument('--workers', type=int,
                        help='dCRF worker processes per rank (default: cores / ranks per node)')
    parser.add_argument(
        '--from-maps', metavar='DIR',
        help='label the maps a --save-probs run wrote to DIR (DIR/{img_id}.npz) instead of '
        'running the network, e.g. at the best threshold a sweep found on those maps')
    parser.add_argument('--save-probs', action='store_true',
                        help='also write probs/{img_id}.npz (float16) for threshold sweeps')
    parser.add_argument('--overwrite', action='store_true',
                        help='use an output folder holding another run and regenerate '
                        'every image (files are replaced, none deleted)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, e.g. pseudo_cfg.crf.iterations=5')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                        help='job launcher (dist_gen_pseudo.sh passes pytorch)')
    return parser.parse_args(argv)


def _amp_name(amp: str) -> str:
    """``--amp`` -> ``pseudo_cfg.amp``: ``auto`` is fp16 on CUDA and bf16 on CPU; fp16 on a
    machine without CUDA is refused (CPU autocast supports bfloat16 only)."""
    import torch
    if amp == 'auto':
        return 'fp16' if torch.cuda.is_available() else 'bf16'
    if amp == 'fp16' and not torch.cuda.is_available():
        raise SystemExit('gen_pseudo: --amp fp16 needs a CUDA device; use --amp bf16 on CPU')
    return amp


def _pseudo_cfg(cfg, args) -> dict:
    from mmseg_sbce.apis import resolve_pseudo_cfg
    pcfg = dict(cfg.get('pseudo_cfg', None) or {})
    pcfg = {k: (dict(v) if hasattr(v, 'keys') else v) for k, v in pcfg.items()}
    if args.threshold is not None:
        pcfg['threshold'] = args.threshold
    if args.scales:
        pcfg['scales'] = tuple(args.scales)
    if args.flip is not None:
        pcfg['flip'] = args.flip
    if args.crf is not None:
        pcfg['crf'] = dict(pcfg.get('crf') or {}, enabled=args.crf)
    if args.amp is not None:
        pcfg['amp'] = _amp_name(args.amp)
    return resolve_pseudo_cfg(pcfg)


def _init_distributed(cfg, launcher: str) -> None:
    import torch
    if launcher == 'none':
        return
    if torch.cuda.is_available():
        from mmengine.dist import init_dist
        init_dist(launcher)
    else:
        from mmseg_sbce.utils.compat import init_cpu_distributed
        init_cpu_distributed(cfg)
        # One process per core group: keep torch's intra-op threads to this rank's share.
        local = int(os.environ.get('LOCAL_WORLD_SIZE', '1'))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, local)))


@report_input_errors('gen_pseudo')
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.from_maps is not None and not osp.isdir(args.from_maps):
        raise SystemExit(f'gen_pseudo: --from-maps {args.from_maps}: no such folder')
    import mmseg_sbce  # noqa: F401  (registers the plugin, applies the stack fixes)
    import torch
    from mmengine.dist import get_dist_info
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, MODELS

    from mmseg_sbce.apis import OutDirRefused, export_pseudo_labels, pseudo_dataset_cfg
    from mmseg_sbce.apis.manifest import print_summary, tool_run_fields
    from mmseg_sbce.datasets.class_count import check_class_counts
    from mmseg_sbce.utils.checkpoint import load_model_checkpoint, threshold_branch_trained
    from mmseg_sbce.utils.errors import InputError
    from mmseg_sbce.utils.runner_config import read_config

    # The config as tools/train.py reads it (data set description and phase layout derived).
    cfg = read_config(args.config, args.cfg_options)
    _init_distributed(cfg, args.launcher)
    rank, _ = get_dist_info()
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    pcfg = _pseudo_cfg(cfg, args)
    check_class_counts(cfg, args.config)

    model = MODELS.build(cfg.model)
    checkpoint = load_model_checkpoint(model, args.checkpoint, strict=True,
                                       model_name=f'the model of {args.config}')
    if pcfg['threshold'] == 'adaptive' and not threshold_branch_trained(checkpoint, cfg):
        raise InputError(
            f'checkpoint {args.checkpoint} never trained the threshold branch (a BCE '
            'baseline: no sbce-threshold mode in its meta) so --threshold adaptive would '
            'read an untrained branch; give a background threshold, e.g. --threshold '
            f"{cfg.get('bg_threshold', 0.3)}")
    if torch.cuda.is_available():
        model = model.cuda()
    dataset_cfg = pseudo_dataset_cfg(cfg, args.split)
    dataset = DATASETS.build(dataset_cfg)

    out_dir = osp.abspath(args.out)
    # What decides the files besides pseudo_cfg (the export adds it and the output options).
    identity, run_info = tool_run_fields(
        [osp.basename(sys.argv[0])] + list(argv or sys.argv[1:]), args.config,
        args.checkpoint, cfg.model, dataset_cfg, args.split, hash_checkpoint=rank == 0)
    try:
        summary = export_pseudo_labels(
            model, dataset, out_dir, pcfg, identity=identity, run_info=run_info,
            overwrite=args.overwrite, workers=args.workers, save_probs=args.save_probs,
            maps_dir=args.from_maps, progress=not args.no_progress)
    except OutDirRefused as exc:
        if rank == 0:
            print(f'gen_pseudo: refusing to write: {exc}', file=sys.stderr)
        return 1
    status = print_summary('gen_pseudo', summary, out_dir) if rank == 0 else 0
    return 1 if summary['failures'] else status


if __name__ == '__main__':
    sys.exit(main())
