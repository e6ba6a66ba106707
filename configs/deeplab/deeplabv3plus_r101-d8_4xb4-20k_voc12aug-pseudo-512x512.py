# DeepLabV3+ R101 on PASCAL VOC 2012 train_aug, trained on SBCE pseudo-labels only.
#
# Everything is mmseg's stock config except the training labels: the stock VOC-aug
# ConcatDataset mixes in ground-truth `SegmentationClass` masks of the 1,464 `train` images,
# which would leak full supervision into a weakly supervised result, so it is replaced by ONE
# dataset over train_aug whose masks are the exported pseudo-labels. Validation stays on the
# real ground truth of `val`. No plugin class is needed: mmseg's own tools/train.py runs it.
#
# Produce the labels first (see docs/getting_started.md):
#   python tools/gen_pseudo.py configs/sbce_voc.py CKPT \
#       --out data/VOCdevkit/VOC2012/SegmentationClassSBCE --split trainaug
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb4-20k_voc12aug-512x512.py'

pseudo_label_dir = 'SegmentationClassSBCE'  # relative to data_root, or an absolute path
train_split = 'ImageSets/Segmentation/trainaug.txt'  # mmseg's voc_aug.py converter's name

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='PascalVOCDataset',
        data_root='data/VOCdevkit/VOC2012',
        data_prefix=dict(img_path='JPEGImages', seg_map_path=pseudo_label_dir),
        ann_file=train_split,
        pipeline={{_base_.train_pipeline}}))
