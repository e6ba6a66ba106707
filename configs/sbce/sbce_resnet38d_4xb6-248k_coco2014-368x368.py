# Adaptive Spatial-BCE on MS-COCO 2014 train with ResNet-38d, the paper's classification
# network (sec. 4.2; Tab. 3's COCO pseudo-label row comes from this classifier): BCE baseline
# phase -> SBCE phase 1 -> 2 -> 3, Q re-estimated before each, schedule and optimiser of the
# VGG16 recipe ./sbce_vgg16_4xb6-248k_coco2014-368x368.py (kept as a documented variant):
#   tools/dist_train.sh configs/sbce_coco.py 4
_base_ = ['./sbce_vgg16_4xb6-248k_coco2014-368x368.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet38d',
        frozen_stages=1,  # conv1a and b2, as in the reference
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='pretrain/resnet38d_ilsvrc.pth')),
    decode_head=dict(in_channels=4096))
