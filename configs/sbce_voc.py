# Short name of the SBCE VOC run (baseline phase + 3 SBCE phases),
# kept so that the documented commands keep working. The recipe, named as mmseg
# names its configs:
#   ./sbce/sbce_resnet38d_4xb6-32k_voc12aug-368x368.py
_base_ = ['./sbce/sbce_resnet38d_4xb6-32k_voc12aug-368x368.py']
