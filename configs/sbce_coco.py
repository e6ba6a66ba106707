# Short name of the SBCE COCO run (ResNet-38d classifier, the paper's),
# kept so that the documented commands keep working. The recipe, named as mmseg
# names its configs:
#   ./sbce/sbce_resnet38d_4xb6-248k_coco2014-368x368.py
# VGG16 classifier variant: ./sbce/sbce_vgg16_4xb6-248k_coco2014-368x368.py
_base_ = ['./sbce/sbce_resnet38d_4xb6-248k_coco2014-368x368.py']
