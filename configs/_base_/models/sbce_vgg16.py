# SBCE classifier: VGG16 with output stride 8 (DeepLab-LargeFOV layout: fc6/fc7 as 1024-channel
# convolutions, 1024 output channels) + SBCEHead. The paper's backbone for MS-COCO.
# ImageNet weights: torchvision's vgg16 converted with the DeepLab fc decimation,
#   python tools/model_converters/vgg16_to_mmseg.py vgg16-397923af.pth \
#       pretrain/vgg16_os8_imagenet.pth --fc decimate
# (`--fc drop` also works: fc6/fc7 then start from the Kaiming init).
data_preprocessor = dict(
    type='SegDataPreProcessor',
    # torchvision's ImageNet VGG16 expects RGB normalised by these (x 255) mean/std
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,  # padding is "unknown" in the Q map
    size=(368, 368))
model = dict(
    type='SBCEClassifier',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='VGG16OS8',
        with_fc=True,
        fc_channels=1024,
        fc6_dilation=12,
        fc_dropout=0.5,
        # stage 1 (the two 64-channel convolutions) frozen: the counterpart of ResNet-38d's
        # frozen conv1a/b2, generic low-level filters that gain nothing from WSSS labels
        frozen_stages=1,
        init_cfg=dict(type='Pretrained', checkpoint='pretrain/vgg16_os8_imagenet.pth')),
    decode_head=dict(
        type='SBCEHead',
        in_channels=1024,
        num_classes=80,
        channels=128,
        logit_scale_init=10.0),
    test_cfg=dict(threshold='adaptive'))
