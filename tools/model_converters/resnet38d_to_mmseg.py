# Copyright (c) mmseg-sbce contributors.
"""Convert ResNet-38d weights (MXNet ImageNet file or PSA/SEAM/EDAM .pth) for ResNet38d.

Usage::

    python tools/model_converters/resnet38d_to_mmseg.py \
        ilsvrc-cls_rna-a1_cls1000_ep-0001.params pretrain/resnet38d_ilsvrc.pth

then ``backbone=dict(type='ResNet38d', init_cfg=dict(type='Pretrained',
checkpoint='pretrain/resnet38d_ilsvrc.pth'))``. The format is detected from the file; the
logic lives in :mod:`mmseg_sbce.models.converters.resnet38d`.
"""
import argparse
import os
import os.path as osp
import sys

import torch


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert ResNet-38d weights to a ResNet38d (mmseg-sbce) checkpoint')
    parser.add_argument('src', help='MXNet .params (NDArray list) or PyTorch .pth file')
    parser.add_argument('dst', help='output checkpoint path')
    parser.add_argument(
        '--widen-factor',
        type=float,
        default=1.0,
        help='width of the target ResNet38d (1.0 for the published weights)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmseg_sbce.models.converters import convert_resnet38d
    try:
        state, fmt, dropped = convert_resnet38d(args.src, widen_factor=args.widen_factor)
    except (ValueError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    if osp.dirname(args.dst):
        os.makedirs(osp.dirname(args.dst), exist_ok=True)
    torch.save(dict(state_dict=state, meta=dict(source=osp.basename(args.src), format=fmt)),
               args.dst)
    print(f'converted {len(state)} tensors from {fmt} file {args.src} to {args.dst}')
    if dropped:
        print(f'dropped {len(dropped)} non-backbone entries: {", ".join(sorted(dropped))}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
