# MS-COCO 2014 for image-level classification training: train2014 (82,081 images once the
# converter has dropped the images without any object), validation on val2014 (40,137).
# Layout: docs/data.md (written by tools/dataset_converters/coco2014.py). `train_dataloader`
# is completed by each config (its pipeline reads the config's own `q_dir`).
# The data set's description is `data_root` and `class_names` (foreground, background excluded;
# `num_classes` = their count): tools/train.py, test.py and gen_pseudo.py copy them into every
# data set and head of the config (mmseg_sbce.utils.runner_config.apply_dataset), so a child
# config or `--cfg-options data_root=... class_names="[...]"` switches the whole config.
dataset_type = 'COCOClsDataset'
data_root = 'data/coco'
crop_size = (368, 368)
class_names = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train',
    'truck', 'boat', 'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench',
    'bird', 'cat', 'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe',
    'backpack', 'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard',
    'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard',
    'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl',
    'banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza',
    'donut', 'cake', 'chair', 'couch', 'potted plant', 'bed', 'dining table', 'toilet', 'tv',
    'laptop', 'mouse', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven', 'toaster',
    'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier',
    'toothbrush')  # foreground, in mask-id order 1..80
num_classes = len(class_names)
train_split = 'ImageSets/train.txt'  # the training images
label_file = 'cls_labels_train.json'  # the converter's image-level labels of train2014
train_mask_dir = 'SegmentationClass/train2014'

test_pipeline = [
    dict(type='LoadCheckedImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackWSSSInputs'),
]
# The training images without augmentation: what the Q update and gen_pseudo label.
# `ann_file` is explicit so that `tools/gen_pseudo.py --split val` finds ImageSets/val.txt.
infer_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    split='train',
    ann_file=train_split,
    data_prefix=dict(img_path='train2014', seg_map_path=train_mask_dir),
    label_file=label_file,
    pipeline=[dict(type='LoadCheckedImageFromFile'), dict(type='PackWSSSInputs')])

# Validation: single-scale eq. 9 prediction (restricted to the image labels, as for
# pseudo-labels) on val2014 against the converter's ground-truth masks
# (SegmentationClass/val2014), mmseg's IoUMetric over 81 classes, 255 ignored. Ground truth
# only evaluates, it never feeds training. All 40,137 images by default; for a cheaper
# running view pass a shorter id list, e.g.
# `--cfg-options val_dataloader.dataset.ann_file=ImageSets/val_5k.txt` (a list you write).
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        ann_file='ImageSets/val.txt',
        data_prefix=dict(img_path='val2014', seg_map_path='SegmentationClass/val2014'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
