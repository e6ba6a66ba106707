# Short name of the demo's SBCE run,
# kept so that the documented commands keep working. The recipe, named as mmseg
# names its configs:
#   ../sbce/sbce_tinycnn_1xb16-600_demo-112x112.py
_base_ = ['../sbce/sbce_tinycnn_1xb16-600_demo-112x112.py']
