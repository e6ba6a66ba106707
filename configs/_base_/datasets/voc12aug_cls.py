# PASCAL VOC 2012 + SBD (train_aug, 10,582 images) for image-level classification training.
# Layout: docs/data.md. `train_dataloader` is completed by each config (its pipeline reads the
# config's own `q_dir`).
# The data set's description is `data_root` and `class_names` (foreground, background excluded;
# `num_classes` = their count): tools/train.py, test.py and gen_pseudo.py copy them into every
# data set and head of the config (mmseg_sbce.utils.runner_config.apply_dataset), so a child
# config or `--cfg-options data_root=... class_names="[...]"` switches the whole config.
dataset_type = 'VOCClsDataset'
data_root = 'data/VOCdevkit/VOC2012'
crop_size = (368, 368)
class_names = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
               'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant',
               'sheep', 'sofa', 'train', 'tvmonitor')  # foreground, in mask-id order 1..20
num_classes = len(class_names)
train_split = 'ImageSets/Segmentation/trainaug.txt'  # the training images (mmseg's name)
label_file = None  # image-level labels from the masks of the training images:
train_mask_dir = 'SegmentationClassAug'

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
    data_prefix=dict(img_path='JPEGImages', seg_map_path=train_mask_dir),
    pipeline=[dict(type='LoadCheckedImageFromFile'), dict(type='PackWSSSInputs')])

# Validation: single-scale eq. 9 prediction on the 1,464 VOC `train` images against their
# ground truth (the paper's pseudo-label benchmark; multi-scale + dCRF via tools/gen_pseudo.py
# and tools/eval_pseudo.py). Ground truth only evaluates, it never feeds training.
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/train.txt',
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
