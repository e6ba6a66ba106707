# Short name of the GAP-BCE COCO baseline (ResNet-38d classifier, the paper's),
# kept so that the documented commands keep working. The recipe, named as mmseg
# names its configs:
#   ./sbce/bce_resnet38d_4xb6-62k_coco2014-368x368.py
# VGG16 classifier variant: ./sbce/bce_vgg16_4xb6-62k_coco2014-368x368.py
_base_ = ['./sbce/bce_resnet38d_4xb6-62k_coco2014-368x368.py']
