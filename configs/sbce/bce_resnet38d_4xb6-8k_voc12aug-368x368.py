# GAP-BCE baseline classifier (ResNet-38d) on VOC 2012 train_aug: its CAMs + dCRF give the
# initial Q of configs/sbce_voc.py (tools/gen_pseudo.py --threshold BG_THRESHOLD).
# 4 GPUs x 6 images (batch 24), crop 368, SGD momentum 0.9, wd 5e-4, lr 1e-2 for new layers and
# 1e-3 for the backbone, poly 0.9 (paper sec. 4.2).
_base_ = [
    '../_base_/models/sbce_resnet38d.py', '../_base_/datasets/voc12aug_cls.py',
    'mmseg::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmseg_sbce'], allow_failed_imports=False)

crop_size = (368, 368)
train_iters = 8000
# Background threshold of the CAMs (max-normalised, the usual CAM convention); the initial Q
# uses it. Choose it without ground truth (the reference uses a fixed value).
bg_threshold = 0.25

model = dict(
    decode_head=dict(num_classes={{_base_.num_classes}}, train_mode='bce'),
    test_cfg=dict(threshold=bg_threshold, normalize_cam=True))

train_pipeline = [
    dict(type='LoadCheckedImageFromFile'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=1.0),
    dict(type='RandomFlip', prob=0.5),
    # mmpretrain's RandAugment, photometric ops only: geometric ops would not move the Q map
    dict(type='RandAugment', _scope_='mmpretrain', policies='photometric',
         num_policies=2, total_level=10, magnitude_level=9, magnitude_std=0.5),
    dict(type='PackWSSSInputs'),
]
train_dataloader = dict(
    batch_size=6,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='VOCClsDataset',
        data_root={{_base_.data_root}},
        ann_file={{_base_.train_split}},
        data_prefix=dict(img_path='JPEGImages', seg_map_path={{_base_.train_mask_dir}}),
        pipeline=train_pipeline))

# The learning rates are set for batch 24 (4 GPUs x 6). On fewer GPUs the batch shrinks (1 GPU:
# 6) and the rates stay as they are unless tools/train.py gets --auto-scale-lr, which scales
# them by (GPUs x 6) / 24 (mmengine's linear rule; the paper only trains at 24).
auto_scale_lr = dict(enable=False, base_batch_size=24)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4),
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=0.1),  # 1e-3 for the pretrained backbone
        'decode_head.T': dict(lr_mult=10.0, decay_mult=0.0),  # logit scale: 10x, no wd
    }))
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=train_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=train_iters, val_interval=train_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
