# DeepLabV3 R101 on PASCAL VOC 2012 train_aug, trained on SBCE pseudo-labels only.
#
# Everything is mmseg's stock config except the training labels: the stock VOC-aug
# ConcatDataset mixes in ground-truth `SegmentationClass` masks of the 1,464 `train` images,
# which would leak full supervision into a weakly supervised result, so it is replaced by ONE
# dataset over train_aug whose masks are the exported pseudo-labels. Validation stays on the
# real ground truth of `val`. No plugin class is needed: mmseg's own tools/train.py runs it.
#
# The data set (data_root, class_names; num_classes = their count) is described once at the
# top: tools/train.py copies it into every data set and head (heads: num_classes + 1), so
# `--cfg-options data_root=... class_names="[...]"` switches the whole config.
#
# Produce the labels first (see docs/getting_started.md):
#   python tools/gen_pseudo.py configs/sbce_voc.py CKPT \
#       --out data/VOCdevkit/VOC2012/SegmentationClassSBCE --split trainaug
_base_ = 'mmseg::deeplabv3/deeplabv3_r101-d8_4xb4-20k_voc12aug-512x512.py'

pseudo_label_dir = 'SegmentationClassSBCE'  # relative to data_root, or an absolute path
train_split = 'ImageSets/Segmentation/trainaug.txt'  # mmseg's voc_aug.py converter's name

class_names = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
               'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant',
               'sheep', 'sofa', 'train', 'tvmonitor')  # foreground, in mask-id order 1..20
num_classes = len(class_names)  # foreground; the heads count background too

model = dict(
    decode_head=dict(num_classes=num_classes + 1),
    auxiliary_head=dict(num_classes=num_classes + 1))

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='PascalVOCDataset',
        metainfo=dict(classes=('background', ) + class_names),
        data_root='data/VOCdevkit/VOC2012',
        data_prefix=dict(img_path='JPEGImages', seg_map_path=pseudo_label_dir),
        ann_file=train_split,
        pipeline={{_base_.train_pipeline}}))
