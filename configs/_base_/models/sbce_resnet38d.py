# SBCE classifier: ResNet-38d (output stride 8, 4096 channels) + SBCEHead.
norm_cfg = dict(type='BN', requires_grad=False)
data_preprocessor = dict(
    type='SegDataPreProcessor',
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
        type='ResNet38d',
        frozen_stages=1,  # conv1a and b2, as in the reference
        norm_cfg=norm_cfg,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='pretrain/resnet38d_ilsvrc.pth')),
    decode_head=dict(
        type='SBCEHead',
        in_channels=4096,
        num_classes=20,
        channels=128,
        logit_scale_init=10.0),
    test_cfg=dict(threshold='adaptive'))
