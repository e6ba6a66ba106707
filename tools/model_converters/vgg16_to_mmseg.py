# Copyright (c) mmseg-sbce contributors.
"""Convert ImageNet VGG16 weights (torchvision or mmpretrain format) for ``VGG16OS8``.

Example::

    python tools/model_converters/vgg16_to_mmseg.py vgg16-397923af.pth \
        pretrain/vgg16_os8.pth --fc decimate

then ``backbone=dict(type='VGG16OS8', init_cfg=dict(type='Pretrained',
checkpoint='pretrain/vgg16_os8.pth'))``. The logic lives in
:mod:`mmseg_sbce.models.backbones.vgg_os8`.
"""
import argparse
import os
import os.path as osp
import pickle
import sys
from typing import Optional, Sequence

import torch
from mmengine.runner import CheckpointLoader

from mmseg_sbce.models.backbones.vgg_os8 import (VGGCheckpointError,
                                                 check_vgg16_os8_state_dict,
                                                 convert_vgg16_state_dict,
                                                 detect_vgg16_format, unwrap_state_dict)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert ImageNet VGG16 weights (no batch norm) from torchvision or '
        'mmpretrain into VGG16OS8 parameter names.')
    parser.add_argument('src', help='input checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument(
        '--fc', choices=['drop', 'decimate'], default='drop',
        help="'decimate': build fc6/fc7 of DeepLab-LargeFOV by subsampling the ImageNet "
        "fully connected layers; 'drop' (default): convolutions only")
    parser.add_argument('--fc-channels', type=int, default=1024)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.src):
        print(f'error: no such file: {args.src}', file=sys.stderr)
        return 1
    try:
        # mmengine's loader: weights_only, with the allow-list mmseg_sbce installs for
        # the objects mmengine-saved checkpoints (e.g. mmpretrain's) carry in 'meta'.
        checkpoint = CheckpointLoader.load_checkpoint(args.src, map_location='cpu')
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        print(f'error: {args.src}: not a loadable torch checkpoint ({err})', file=sys.stderr)
        return 1
    try:
        state = unwrap_state_dict(checkpoint)
        fmt = detect_vgg16_format(state)
        converted = convert_vgg16_state_dict(state, fc=args.fc, fc_channels=args.fc_channels)
        check_vgg16_os8_state_dict(converted)
    except (VGGCheckpointError, ValueError) as err:
        print(f'error: {args.src}: {err}', file=sys.stderr)
        return 1
    if osp.dirname(args.dst):
        os.makedirs(osp.dirname(args.dst), exist_ok=True)
    meta = dict(converted_from=fmt, source=osp.basename(args.src), fc=args.fc)
    torch.save(dict(state_dict=converted, meta=meta), args.dst)
    print(f'converted {len(converted)} tensors from {fmt} format -> {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
