# Template: YOUR data set. Copy it and fill in the description (docs/data.md, "Your own data
# set"): data_root, class_names (num_classes = their count), train_split, label_file (None:
# the labels from the masks in train_mask_dir). Then either run every stage on it:
#   python tools/run_pipeline.py BASELINE_CONFIG SBCE_CONFIG DEEPLAB_CONFIG --dataset THIS_FILE
# (it reads the description only), or make it the `_base_` dataset line of a classifier
# recipe. tools/train.py, test.py and gen_pseudo.py copy the description into every data set
# and head of a config (mmseg_sbce.utils.runner_config.apply_dataset).
#
# Layout (VOC-style, under data_root):
#   JPEGImages/{id}.jpg
#   ImageSets/Segmentation/{train,val}.txt   one image id per line
#   and the image-level labels, one of:
#     cls_labels.json                          {id: [foreground ids 1..C]} (docs/data.md)
#     SegmentationClass/{id}.png               masks: 0 background, 1..C, 255 ignored
# A COCO-style JSON: convert it first (tools/dataset_converters/coco2014.py, docs/data.md).
dataset_type = 'BaseWSSSDataset'
data_root = 'data/my_dataset'
class_names = ('cat', 'dog', 'person')  # foreground, in mask-id order 1..C (no background)
num_classes = len(class_names)
train_split = 'ImageSets/Segmentation/train.txt'  # the training images
# Image-level labels of the training images; None derives them from their masks in
# train_mask_dir
label_file = 'cls_labels.json'
train_mask_dir = 'SegmentationClass'
crop_size = (368, 368)
metainfo = dict(classes=('background', ) + class_names)

test_pipeline = [
    dict(type='LoadCheckedImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackWSSSInputs'),
]
# The training images without augmentation: what the Q update and gen_pseudo label.
infer_dataset = dict(
    type=dataset_type,
    metainfo=metainfo,
    data_root=data_root,
    ann_file=train_split,
    label_file=label_file,
    data_prefix=dict(img_path='JPEGImages', seg_map_path=train_mask_dir),
    pipeline=[dict(type='LoadCheckedImageFromFile'), dict(type='PackWSSSInputs')])
# Validation needs ground-truth masks (SegmentationClass/{id}.png of the val ids); without
# masks, set `val_cfg = None; val_dataloader = None; val_evaluator = None` in your config.
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        metainfo=metainfo,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/val.txt',
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
