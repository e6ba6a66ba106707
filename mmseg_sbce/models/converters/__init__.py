# Copyright (c) mmseg-sbce contributors.
"""Offline converters from foreign weight files to state dicts our backbones load.

Not imported by :mod:`mmseg_sbce.models`: converters register nothing and are used by the thin
scripts under ``tools/model_converters/``.
"""
from .resnet38d import (convert_resnet38d, mxnet_key_to_mmseg, mxnet_to_resnet38d,
                        psa_to_resnet38d, read_mxnet_params)

__all__ = [
    'convert_resnet38d', 'read_mxnet_params', 'mxnet_key_to_mmseg', 'mxnet_to_resnet38d',
    'psa_to_resnet38d'
]
