# IRN boundary network on the generated demo data set (CPU). STAND-IN BACKBONE: no ImageNet
# weights can be used here, so a narrow ResNet-18 is trained from scratch together with the
# boundary branch (IRN freezes an ImageNet ResNet-50 and trains only the branch; see
# irn_r50_1xb32-3e_voc12aug-512x512.py). Seeds: the adaptive rule on the SBCE maps of the
# demo pipeline (tools/run_demo.py writes them with --save-probs), see docs/irn.md.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mmseg_sbce'], allow_failed_imports=False)

# The data set, described once as in configs/_base_/datasets/demo_cls.py: tools/train.py and
# tools/refine_irn.py copy the description into the data set below
# (mmseg_sbce.utils.runner_config.apply_dataset), so a child config, `--cfg-options
# data_root=... class_names="[...]"` or tools/run_pipeline.py --dataset switches it.
dataset_type = 'DemoClsDataset'
data_root = 'data/sbce_demo'
# Class names: None reads them from the generator's meta.json (DemoClsDataset); the boundary
# network has no class count of its own (refine_irn takes the data set's).
class_names = None
train_split = 'ImageSets/Segmentation/train.txt'  # the training images
# (label_file: DemoClsDataset's default, the generator's cls_labels.json)
# The saved maps of the final SBCE phase: {maps_dir}/{img_id}.npz.
maps_dir = 'work_dirs/demo/pseudo_sbce/probs'
crop_size = (96, 96)
train_iters = 300
# The seed rule: eq. 9 with the network's own thresholds t' +/- margin, so the demo needs no
# hand-tuned background threshold (the fixed IRN rule needs two, tuned per CAM source).
seed_cfg = dict(mode='adaptive', margin=0.1)

model = dict(
    type='IRNBoundaryNet',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
        size=crop_size),
    backbone=dict(type='ResNet', depth=18, stem_channels=16, base_channels=16,
                  strides=(1, 2, 2, 1), out_indices=(0, 1, 2, 3), norm_eval=False),
    in_channels=(16, 32, 64, 128),
    edge_channels=16,
    freeze_backbone=False,
    loss_affinity=dict(type='InterPixelAffinityLoss', radius=10))

train_pipeline = [
    dict(type='LoadCheckedImageFromFile'),
    dict(type='LoadIRNSeeds', maps_dir=maps_dir, seed_cfg=seed_cfg),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file=train_split,
                 pipeline=train_pipeline))
# The network is only trained here; tools/refine_irn.py runs it on the images to label.
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None

optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=train_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=train_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=train_iters,
                    max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
# The random walk of tools/refine_irn.py (REFINE_CFG_DEFAULTS: radius 10, the training
# pairs' radius; beta 10, 2^8 steps, background threshold 0.25).
refine_cfg = dict()
