# GAP-BCE baseline classifier (ResNet-38d) on MS-COCO 2014 train (82,081 images): its CAMs +
# dCRF give the initial Q of configs/sbce_coco.py. The paper's classification network for
# every experiment (sec. 4.2: "We use ResNet38 as the backbone of the classification
# network"; the authors' release trains ResNet-38 on COCO too). Everything else (data, crop
# 368, batch 24, lr 1e-2 / 1e-3 backbone, the schedule scaled to COCO) is the VGG16 recipe's,
# ./bce_vgg16_4xb6-62k_coco2014-368x368.py, which stays as a documented variant.
_base_ = ['./bce_vgg16_4xb6-62k_coco2014-368x368.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet38d',
        frozen_stages=1,  # conv1a and b2, as in the reference
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='pretrain/resnet38d_ilsvrc.pth')),
    decode_head=dict(in_channels=4096))
