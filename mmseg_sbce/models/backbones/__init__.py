# Copyright (c) mmseg-sbce contributors.
from .resnet38d import BottleneckBlock, ResBlock, ResNet38d
from .tiny_cnn import TinyCNN
from .vgg_os8 import VGG16OS8

__all__ = ['ResNet38d', 'ResBlock', 'BottleneckBlock', 'TinyCNN', 'VGG16OS8']
