# IRN boundary network on PASCAL VOC 2012 train_aug (IRN's schedule: batch 32, 3 epochs, SGD
# lr 0.1 poly, weight decay 1e-4, rescale 0.5-1.5, crop 512; one GPU: multi-GPU training of
# this branch was reported to lower results). The backbone is an ImageNet ResNet-50 that the
# user brings (torchvision's resnet50 .pth loads as is; an mmpretrain checkpoint with
# prefix='backbone.', see docs/irn.md), frozen with its BN statistics.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mmseg_sbce'], allow_failed_imports=False)

# The data set, described once as in configs/_base_/datasets/voc12aug_cls.py: tools/train.py
# and tools/refine_irn.py copy the description into the data set below
# (mmseg_sbce.utils.runner_config.apply_dataset), so a child config, `--cfg-options
# data_root=... class_names="[...]"` or tools/run_pipeline.py --dataset switches it.
dataset_type = 'VOCClsDataset'
data_root = 'data/VOCdevkit/VOC2012'
class_names = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
               'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant',
               'sheep', 'sofa', 'train', 'tvmonitor')  # foreground, in mask-id order 1..20
num_classes = len(class_names)
train_split = 'ImageSets/Segmentation/trainaug.txt'  # the training images (mmseg's name)
label_file = None  # image-level labels from the masks of the training images:
train_mask_dir = 'SegmentationClassAug'
pretrained = 'checkpoints/resnet50_imagenet.pth'  # bring your own (docs/irn.md)
# The saved maps of the final SBCE phase (tools/gen_pseudo.py --save-probs): {maps_dir}/{id}.npz
maps_dir = 'work_dirs/pseudo/sbce_voc/probs'
crop_size = (512, 512)
# Seeds by the adaptive rule (t' +/- margin) so the pipeline has no hand-tuned background
# threshold; IRN's own rule on CAMs of a BCE baseline is dict(mode='fixed', high=0.30,
# low=0.05).
seed_cfg = dict(mode='adaptive', margin=0.1)

model = dict(
    type='IRNBoundaryNet',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
        size=crop_size),
    backbone=dict(type='ResNet', depth=50, strides=(1, 2, 2, 1), out_indices=(0, 1, 2, 3),
                  norm_eval=True, frozen_stages=4,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    in_channels=(256, 512, 1024, 2048),
    edge_channels=32,
    freeze_backbone=True,
    loss_affinity=dict(type='InterPixelAffinityLoss', radius=10))

train_pipeline = [
    dict(type='LoadCheckedImageFromFile'),
    dict(type='LoadIRNSeeds', maps_dir=maps_dir, seed_cfg=seed_cfg),
    dict(type='RandomResize', scale=(512, 512), ratio_range=(0.5, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=train_split,
        label_file=label_file,
        data_prefix=dict(img_path='JPEGImages', seg_map_path=train_mask_dir),
        pipeline=train_pipeline))
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None

optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4))
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=True, begin=0, end=3,
         convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=3)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=1,
                                     max_keep_ckpts=1))
# The random walk of tools/refine_irn.py (REFINE_CFG_DEFAULTS: radius 10, beta 10, 2^8 steps,
# background threshold 0.25); IRN's published code walks with radius 5: dict(radius=5).
refine_cfg = dict()
