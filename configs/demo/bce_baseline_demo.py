# Short name of the demo's GAP-BCE baseline,
# kept so that the documented commands keep working. The recipe, named as mmseg
# names its configs:
#   ../sbce/bce_tinycnn_1xb16-400_demo-112x112.py
_base_ = ['../sbce/bce_tinycnn_1xb16-400_demo-112x112.py']
