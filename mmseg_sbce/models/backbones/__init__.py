# Copyright (c) mmseg-sbce contributors.
from .resnet38d import BottleneckBlock, ResBlock, ResNet38d
from .resnet38d_convert import (convert_resnet38d, mxnet_key_to_mmseg, mxnet_to_resnet38d,
                                psa_to_resnet38d, read_mxnet_params)
from .tiny_cnn import TinyCNN
from .vgg_os8 import VGG16OS8

__all__ = [
    'ResNet38d', 'ResBlock', 'BottleneckBlock', 'convert_resnet38d', 'read_mxnet_params',
    'mxnet_key_to_mmseg', 'mxnet_to_resnet38d', 'psa_to_resnet38d', 'TinyCNN', 'VGG16OS8'
]
