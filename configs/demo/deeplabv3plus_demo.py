# Short name of the demo's DeepLabV3+ stage,
# kept so that the documented commands keep working. The recipe, named as mmseg
# names its configs:
#   ../deeplab/deeplabv3plus_r18-w16-d8_1xb8-500_demo-pseudo-112x112.py
_base_ = ['../deeplab/deeplabv3plus_r18-w16-d8_1xb8-500_demo-pseudo-112x112.py']
