# Short name of the SBCE COCO run,
# kept so that the documented commands keep working. The recipe, named as mmseg
# names its configs:
#   ./sbce/sbce_vgg16_4xb6-248k_coco2014-368x368.py
_base_ = ['./sbce/sbce_vgg16_4xb6-248k_coco2014-368x368.py']
