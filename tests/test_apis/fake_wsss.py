# Copyright (c) mmseg-sbce contributors.
"""A tiny stand-in for the classifier, data set and packing transform, for CPU tests and
benchmarks of the pseudo-label code (independent of the real model's progress).

* ``FakeColorClassifier``: class ``c`` (of 3) is "colour channel c is bright": a 1x1 conv
  ``k * (rgb - 0.5)`` then optional average pooling (output stride), a constant threshold
  branch, ``decode_head.logit_scale`` and the inference interface of ``SBCEClassifier``
  (``extract_maps``, ``map_threshold_logits``, ``num_classes``). Pointwise, so flip-equivariant at stride 1.
* ``FakeClsDataset``: ``{data_root}/img/{id}.png`` images, ``{data_root}/gt/{id}.png`` label
  maps, ``{data_root}/{ann_file}`` ids, ``{data_root}/labels.json`` image labels.
* ``FakePackWSSSInputs``: packs like ``PackWSSSInputs`` (uint8 CHW BGR inputs,
  ``gt_labels`` float multi-hot, ``img_id``).
* :func:`make_dataset` draws coloured rectangles on a grey background.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dataset import BaseDataset
from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.registry import DATASETS, MODELS, TRANSFORMS
from mmseg.structures import SegDataSample
from PIL import Image

from mmseg_sbce.models.labelling import map_threshold

NUM_CLASSES = 3
# Pure colours: class 0 red, 1 green, 2 blue (RGB).
COLOURS = np.array([[230, 30, 30], [30, 230, 30], [30, 30, 230]], np.uint8)


class _Head(nn.Module):

    def __init__(self, num_classes: int, scale: float):
        super().__init__()
        self.log_scale = nn.Parameter(torch.full((num_classes, ), float(np.log(scale))))

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.log_scale.exp()


@MODELS.register_module(force=True)
class FakeColorClassifier(nn.Module):
    """Logits from pixel colour; see the module docstring."""

    def __init__(self, num_classes: int = NUM_CLASSES, gain: float = 8.0, stride: int = 1,
                 thr_logit: float = 0.0, scale: float = 10.0, data_preprocessor=None):
        super().__init__()
        self.num_classes = num_classes
        self.stride = stride
        self.data_preprocessor = SegDataPreProcessor(
            mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0], bgr_to_rgb=True)
        self.conv = nn.Conv2d(3, num_classes, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            for c in range(num_classes):
                self.conv.weight[c, c % 3] = gain
            self.conv.bias.fill_(-gain / 2)
        self.thr = nn.Parameter(torch.full((num_classes, ), float(thr_logit)))
        self.decode_head = _Head(num_classes, scale)
        self.forward_calls = 0

    def extract_maps(self, inputs: torch.Tensor):
        self.forward_calls += 1
        # Pooling first: same maps as conv-then-pool (a 1x1 conv is linear), less work.
        x = inputs
        if self.stride > 1:
            x = F.avg_pool2d(x, self.stride, self.stride, ceil_mode=True)
        x = self.conv(x)
        thr = self.thr[None].expand(inputs.shape[0], -1)
        return x, thr

    def map_threshold_logits(self, thr_logits: torch.Tensor) -> torch.Tensor:
        return map_threshold(thr_logits, self.decode_head.logit_scale, from_logits=True)


@TRANSFORMS.register_module(force=True)
class FakePackWSSSInputs:
    """Pack ``img`` (HWC BGR) as uint8 CHW ``inputs`` and the labels as multi-hot."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        self.num_classes = num_classes

    def __call__(self, results: dict) -> dict:
        img = results['img']
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        sample = SegDataSample()
        labels = torch.zeros(self.num_classes)
        labels[list(results['gt_labels'])] = 1
        sample.gt_labels = labels
        sample.set_metainfo(dict(img_id=results['img_id'], img_path=results['img_path'],
                                 ori_shape=results['ori_shape'],
                                 img_shape=img.shape[:2]))
        return dict(inputs=inputs, data_samples=sample)


@DATASETS.register_module(force=True)
class FakeClsDataset(BaseDataset):
    """Images and image labels of :func:`make_dataset`."""

    def load_data_list(self) -> List[dict]:
        with open(osp.join(self.data_root, 'labels.json')) as f:
            labels = json.load(f)
        with open(self.ann_file) as f:
            ids = [line.strip() for line in f if line.strip()]
        return [
            dict(img_path=osp.join(self.data_root, 'img', f'{i}.png'),
                 seg_map_path=osp.join(self.data_root, 'gt', f'{i}.png'), img_id=i,
                 gt_labels=labels[i]) for i in ids
        ]


def make_dataset(root: str, num: int = 6, size=(40, 56), seed: int = 0,
                 split: str = 'train.txt') -> Dict[str, List[int]]:
    """Write ``num`` images with 1-2 coloured rectangles each; returns ``{id: labels}``."""
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'img'), exist_ok=True)
    os.makedirs(osp.join(root, 'gt'), exist_ok=True)
    height, width = size
    labels: Dict[str, List[int]] = {}
    for n in range(num):
        img = np.full((height, width, 3), 110, np.uint8)
        img += rng.integers(0, 20, img.shape, dtype=np.uint8)
        gt = np.zeros((height, width), np.uint8)
        classes = sorted(rng.choice(NUM_CLASSES, size=1 + n % 2, replace=False).tolist())
        for c in classes:
            h, w = rng.integers(height // 4, height // 2), rng.integers(width // 4, width // 2)
            y, x = rng.integers(0, height - h), rng.integers(0, width - w)
            img[y:y + h, x:x + w] = COLOURS[c]
            gt[y:y + h, x:x + w] = c + 1
        gt[0, :] = 255  # an ignore border row, as in VOC
        img_id = f'img_{n:03d}'
        Image.fromarray(img).save(osp.join(root, 'img', f'{img_id}.png'))
        Image.fromarray(gt, mode='L').save(osp.join(root, 'gt', f'{img_id}.png'))
        labels[img_id] = classes
    with open(osp.join(root, 'labels.json'), 'w') as f:
        json.dump(labels, f)
    with open(osp.join(root, split), 'w') as f:
        f.write('\n'.join(labels) + '\n')
    return labels


def dataset_cfg(root: str, ann_file: str = 'train.txt') -> dict:
    return dict(type='FakeClsDataset', data_root=root, ann_file=ann_file,
                pipeline=[dict(type='LoadImageFromFile'), dict(type='FakePackWSSSInputs')])


def build_dataset(root: str, ann_file: str = 'train.txt') -> BaseDataset:
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    return DATASETS.build(dataset_cfg(root, ann_file))


def write_config(path: str, root: str, extra: Optional[str] = '') -> str:
    """A config file for tools/gen_pseudo.py using the fakes (module ``fake_wsss``)."""
    text = f"""
custom_imports = dict(imports=['mmseg_sbce', 'fake_wsss'], allow_failed_imports=False)
default_scope = 'mmseg'
model = dict(type='FakeColorClassifier', stride=2)
pseudo_dataloader = dict(dataset={dataset_cfg(root)!r})
pseudo_cfg = dict(scales=(1.0, 0.5), crf=dict(iterations=3))
{extra}
"""
    with open(path, 'w') as f:
        f.write(text)
    return path
