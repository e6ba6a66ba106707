# The generated demo data set (tools/gen_demo_data.py data/sbce_demo), for image-level
# classification training. `train_dataloader` is completed by each config (its pipeline reads
# the config's own `q_dir`).
# The data set's description is `data_root` and `class_names` (foreground, background excluded;
# `num_classes` = their count): tools/train.py, test.py and gen_pseudo.py copy them into every
# data set and head of the config (mmseg_sbce.utils.runner_config.apply_dataset), so a child
# config or `--cfg-options data_root=... class_names="[...]"` switches the whole config.
dataset_type = 'DemoClsDataset'
data_root = 'data/sbce_demo'
crop_size = (112, 112)
# Class names: None reads them from the generator's meta.json (DemoClsDataset); their count:
class_names = None
num_classes = 6
train_split = 'ImageSets/Segmentation/train.txt'  # the training images
# (label_file: DemoClsDataset's default, the generator's cls_labels.json)

test_pipeline = [
    dict(type='LoadCheckedImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackWSSSInputs'),
]
# The training images without augmentation: what the Q update and gen_pseudo label.
infer_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    ann_file=train_split,
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
