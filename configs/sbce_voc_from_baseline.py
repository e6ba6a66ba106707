# Short name of the SBCE VOC run from a separate baseline,
# kept so that the documented commands keep working. The recipe, named as mmseg
# names its configs:
#   ./sbce/sbce-from-baseline_resnet38d_4xb6-24k_voc12aug-368x368.py
_base_ = ['./sbce/sbce-from-baseline_resnet38d_4xb6-24k_voc12aug-368x368.py']
