# Copyright (c) mmseg-sbce contributors.
"""Refine saved maps into pseudo-labels with a trained IRN boundary network (random walk).

    python tools/refine_irn.py CONFIG CHECKPOINT --maps DIR --out DIR [--split NAME]
        [--workers N] [--overwrite] [--no-progress] [--cfg-options KEY=VALUE ...]

``CONFIG`` is an IRN config (``configs/irn/``), ``CHECKPOINT`` its trained boundary
network, ``--maps`` the ``probs/`` folder of ``tools/gen_pseudo.py --save-probs`` (one
``{img_id}.npz`` per image). The walk's settings are the config's ``refine_cfg``
(defaults: ``REFINE_CFG_DEFAULTS``). The images to label are the config's
``pseudo_dataloader.dataset`` or its training data set with a plain loading pipeline
(``--split`` changes the ``ann_file``, as for gen_pseudo). The config is read as
``tools/train.py`` reads it (``mmseg_sbce.utils.runner_config.read_config``): its top-level
data set description (``data_root``, ``class_names``, ``train_split``, ``label_file``,
``train_mask_dir``; from the config, a child config or ``--cfg-options``) reaches the data set
to label, so ``--cfg-options data_root=DIR class_names="[...]"`` labels another data set with
its own classes.

Output, manifest, resume, progress bar and worker pool are those of ``gen_pseudo``
(``mmseg_sbce.apis.export_pseudo_labels`` with an ``IRNLabeller``): VOC-palette PNGs
``{out}/{img_id}.png``; a rerun skips finished images; a folder of another run is refused
without ``--overwrite``. See docs/irn.md.

Exit status: 0 when every image was written (or already there), 1 when some failed (listed)
or the output folder was refused.
"""
import argparse
import os.path as osp
import sys

from mmseg_sbce.utils.errors import report_input_errors


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='IRN random-walk refinement of saved maps into pseudo-label PNGs')
    parser.add_argument('config', help='IRN config file')
    parser.add_argument('checkpoint', help='trained IRNBoundaryNet checkpoint')
    parser.add_argument('--maps', required=True,
                        help='folder of saved maps ({img_id}.npz, gen_pseudo --save-probs)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--split', help='ann_file to label: a name (train -> same folder, train.txt) or a path')
    parser.add_argument('--workers', type=int,
                        help='random-walk worker processes (default: the available cores)')
    parser.add_argument('--overwrite', action='store_true',
                        help='use an output folder holding another run and relabel every '
                        'image')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, e.g. refine_cfg.beta=8 or '
                        'the data set: data_root=DIR class_names="[a,b]"')
    return parser.parse_args(argv)


@report_input_errors('refine_irn')
def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isdir(args.maps):
        raise SystemExit(f'refine_irn: --maps {args.maps}: no such folder')
    import mmseg_sbce  # noqa: F401  (registers the plugin)
    import torch
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, MODELS

    from mmseg_sbce.apis import OutDirRefused, export_pseudo_labels, pseudo_dataset_cfg
    from mmseg_sbce.apis.manifest import print_summary, tool_run_fields
    from mmseg_sbce.models.irn.labeller import IRNLabeller
    from mmseg_sbce.utils.checkpoint import load_model_checkpoint
    from mmseg_sbce.utils.runner_config import read_config

    # The config as tools/train.py read it for the training: the data set description
    # (data_root, class_names, train_split, ...) reaches the data set to label.
    cfg = read_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    refine_cfg = dict(cfg.get('refine_cfg', None) or {})
    model = MODELS.build(cfg.model)
    load_model_checkpoint(model, args.checkpoint, strict=True,
                          model_name=f'the model of {args.config}')
    if torch.cuda.is_available():
        model = model.cuda()
    dataset_cfg = pseudo_dataset_cfg(cfg, args.split)
    dataset = DATASETS.build(dataset_cfg)
    num_classes = getattr(dataset, 'num_classes', None)
    if not isinstance(num_classes, int):
        raise SystemExit(f'refine_irn: the data set of {args.config} '
                         f'({dataset_cfg.get("type")}) has no num_classes: use a WSSS data '
                         'set (background first in metainfo classes)')
    labeller = IRNLabeller(num_classes, refine_cfg)

    out_dir = osp.abspath(args.out)
    identity, run_info = tool_run_fields(
        [osp.basename(sys.argv[0])] + list(argv or sys.argv[1:]), args.config,
        args.checkpoint, cfg.model, dataset_cfg, args.split)
    try:
        # The classifier's pseudo_cfg does not apply: no saliency, no dCRF in the walk.
        summary = export_pseudo_labels(
            model, dataset, out_dir, dict(crf=dict(enabled=False)), identity=identity,
            run_info=run_info, overwrite=args.overwrite, workers=args.workers,
            maps_dir=args.maps, progress=not args.no_progress, labeller=labeller)
    except OutDirRefused as exc:
        print(f'refine_irn: refusing to write: {exc}', file=sys.stderr)
        return 1
    return print_summary('refine_irn', summary, out_dir)


if __name__ == '__main__':
    sys.exit(main())
