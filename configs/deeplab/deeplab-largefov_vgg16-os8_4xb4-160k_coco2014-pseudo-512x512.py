# DeepLab-LargeFOV (VGG16, output stride 8) on MS-COCO 2014 train, trained on SBCE
# pseudo-labels only: the segmentation network of the paper's COCO row (Tab. 3, "image labels
# only", sec. 4.4: "On the MS-COCO dataset, we use VGG16 as the backbone", the protocol of the
# methods compared there). ./deeplabv3plus_r101-d8_4xb4-160k_coco2014-pseudo-512x512.py is the
# stronger DeepLabV3+ R101 alternative (no paper row).
#
# Backbone: the project's VGG16OS8 (DeepLab's VGG16: pool4/pool5 stride 1, conv5 dilation 2,
# fc6 3x3 dilation 12 and fc7 1x1 with 1024 channels), not mmpretrain's VGG, because
# mmpretrain.models imports torchvision at module level, which does not import beside a CPU
# torch wheel (CI). ImageNet weights are the user's: torchvision's vgg16 converted with
#   python tools/model_converters/vgg16_to_mmseg.py vgg16-397923af.pth \
#       pretrain/vgg16_os8_imagenet.pth --fc decimate
# Head: DeepLab-LargeFOV's fc8, a 1x1 classifier on fc7 (mmseg's FCNHead without convs).
# Data, pipelines and the 160k schedule: the DeepLabV3+ COCO config's. Optimiser: DeepLab's
# VGG16 recipe, lr 1e-3 for the pretrained layers and 10x for the new classifier, momentum 0.9,
# weight decay 5e-4.
_base_ = './deeplabv3plus_r101-d8_4xb4-160k_coco2014-pseudo-512x512.py'
custom_imports = dict(imports=['mmseg_sbce'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='EncoderDecoder',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(
        type='VGG16OS8',
        with_fc=True,
        fc_channels=1024,
        fc6_dilation=12,
        fc_dropout=0.5,
        init_cfg=dict(type='Pretrained', checkpoint='pretrain/vgg16_os8_imagenet.pth')),
    decode_head=dict(
        type='FCNHead',
        in_channels=1024,
        channels=1024,
        num_convs=0,
        concat_input=False,
        dropout_ratio=0.0,  # fc6/fc7 already drop out
        num_classes={{_base_.seg_num_classes}},
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4),
    paramwise_cfg=dict(custom_keys={'decode_head': dict(lr_mult=10.0)}))
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end={{_base_.train_iters}},
         by_epoch=False)
]
