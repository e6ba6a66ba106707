# Short name of the GAP-BCE VOC baseline,
# kept so that the documented commands keep working. The recipe, named as mmseg
# names its configs:
#   ./sbce/bce_resnet38d_4xb6-8k_voc12aug-368x368.py
_base_ = ['./sbce/bce_resnet38d_4xb6-8k_voc12aug-368x368.py']
