# DeepLabV3+ R101 on MS-COCO 2014 train (82,081 images), trained on SBCE pseudo-labels only
# (no paper row: the paper's COCO row uses
# ./deeplab-largefov_vgg16-os8_4xb4-160k_coco2014-pseudo-512x512.py);
# validated on the real val2014 masks (40,137 images, 81 classes incl. background).
#
# mmseg ships no COCO-2014 (objects, 81 classes) config, so this inherits the stock VOC
# DeepLabV3+ R101 config (model, pipelines, optimiser, runtime) and replaces the data and the
# schedule. Data: mmseg's own BaseSegDataset over the layout of docs/data.md (written by
# tools/dataset_converters/coco2014.py), class names spelled out below (configs cannot import
# them): ids 0 background, 1..80 the COCO categories in category-id order, 255 ignored.
# No plugin class is needed (no custom_imports): mmseg's own tools/train.py runs it.
#
# Not the paper's segmentation network: its COCO result (35.2 mIoU, image labels only) uses a
# VGG16 DeepLab (v1/v2, sec. 4.2), which mmseg does not ship; numbers from this config are
# not comparable with it.
#
# Schedule, scaled from the stock VOC one: 20,000 iterations x 16 images = 320,000 samples =
# 30.2 epochs of VOC's 10,582 images; 30.2 epochs of 82,081 images = 20,000 x 82,081 /
# 10,582 = 155,133 iterations -> mmseg's stock 160k schedule (31.2 epochs), poly LR 1e-2 to
# 1e-4 as in mmseg's schedule_160k.py, validation and checkpoints every 16k iterations.
#
# The data set (data_root, class_names; num_classes = their count) is described once below:
# tools/train.py copies it into every data set and head (heads: num_classes + 1), so
# `--cfg-options data_root=... class_names="[...]"` switches the whole config.
#
# Produce the labels first (see docs/getting_started.md):
#   python tools/gen_pseudo.py configs/sbce_coco.py CKPT \
#       --out data/coco/SegmentationClassSBCE/train2014
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb4-20k_voc12aug-512x512.py'

data_root = 'data/coco'
pseudo_label_dir = 'SegmentationClassSBCE/train2014'  # relative to data_root, or absolute
train_iters = 160000
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
num_classes = len(class_names)  # foreground; the heads count background too
seg_num_classes = num_classes + 1  # the heads' count (background + the C classes)
# no palette: mmseg draws a fixed (seed 42) one for visualisation
coco_metainfo = dict(classes=('background', ) + class_names)

model = dict(
    decode_head=dict(num_classes=seg_num_classes),
    auxiliary_head=dict(num_classes=seg_num_classes))

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='BaseSegDataset',
        metainfo=coco_metainfo,
        data_root=data_root,
        data_prefix=dict(img_path='train2014', seg_map_path=pseudo_label_dir),
        ann_file='ImageSets/train.txt',
        img_suffix='.jpg',
        seg_map_suffix='.png',
        reduce_zero_label=False,
        pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='BaseSegDataset',
        metainfo=coco_metainfo,
        data_root=data_root,
        data_prefix=dict(img_path='val2014', seg_map_path='SegmentationClass/val2014'),
        ann_file='ImageSets/val.txt',
        img_suffix='.jpg',
        seg_map_suffix='.png',
        reduce_zero_label=False,
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader

param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=train_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=train_iters, val_interval=16000)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=16000))
