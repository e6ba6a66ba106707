# The generated demo data set (tools/gen_demo_data.py data/sbce_demo), for image-level
# classification training. `train_dataloader` is completed by each config (its pipeline reads
# the config's own `q_dir`).
dataset_type = 'DemoClsDataset'
data_root = 'data/sbce_demo'
crop_size = (112, 112)
num_classes = 6

test_pipeline = [
    dict(type='LoadCheckedImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackWSSSInputs'),
]
# The training images without augmentation: what the Q update and gen_pseudo label.
infer_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    ann_file='ImageSets/Segmentation/train.txt',
    pipeline=[dict(type='LoadCheckedImageFromFile'), dict(type='PackWSSSInputs')])

# Validation scores the single-scale prediction (eq. 9) on val ground truth with mmseg's
# IoUMetric: a cheap running view of pseudo-label quality.
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/val.txt',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
