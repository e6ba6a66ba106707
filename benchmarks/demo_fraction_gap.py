# Copyright (c) mmseg-sbce contributors.
"""Where the KL term's predicted foreground fraction comes from, per checkpoint.

The proportion KL term (paper eq. 7-8) compares the SOFT predicted fraction
``P = mean_hw(sigmoid(s * x))`` with the target ``Q``. When the logit scale ``s`` is small,
the background's probabilities are far from 0 and ``P`` stays well above ``Q`` however good
the map is; the KL term then keeps pushing every unsaturated pixel down, the weakest
foreground (the demo objects' faintly tinted bodies) included. This script measures that in
the view the network trains on (scale 1, no flip, the low-resolution class maps, ground truth
resized to them with nearest neighbour), for each checkpoint given:

- ``s``: mean logit scale; ``Q``: mean ground-truth fraction of the positive classes;
- ``P``: mean soft fraction, and the part of it that lies on ground-truth background;
- mean ``sigmoid(s * x)`` on background, on object bodies and on heads (the demo's
  ``SegmentationPart`` maps; bodies and heads are skipped when the data set has none).

Ground truth only measures; nothing here feeds training.

Example (the demo's SBCE run, one checkpoint per phase)::

    python benchmarks/demo_fraction_gap.py configs/demo/sbce_demo.py data/sbce_demo \
        work_dirs/demo/sbce/iter_200.pth work_dirs/demo/sbce/iter_400.pth \
        work_dirs/demo/sbce/iter_600.pth
"""
import argparse
import json
import os.path as osp
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from PIL import Image

PART_HEAD, PART_BODY = 1, 2


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='SBCE classifier config')
    parser.add_argument('data_root', help='VOC-layout data set (the generated demo set)')
    parser.add_argument('checkpoints', nargs='+', help='checkpoints to compare')
    parser.add_argument('--split', default='train', help='ImageSets/Segmentation split')
    parser.add_argument('--num-images', type=int, default=150,
                        help='first N images of the split (default 150)')
    return parser.parse_args()


def read_image_ids(root: str, split: str, num: int) -> List[str]:
    path = osp.join(root, 'ImageSets', 'Segmentation', f'{split}.txt')
    if not osp.isfile(path):
        raise FileNotFoundError(f'split file not found: {path}')
    with open(path) as f:
        ids = [line.strip() for line in f if line.strip()]
    return ids[:num]


def resize_nearest(label: np.ndarray, hw) -> np.ndarray:
    t = torch.from_numpy(label.astype(np.float32))[None, None]
    return F.interpolate(t, size=tuple(hw), mode='nearest')[0, 0].numpy().astype(np.int64)


@torch.no_grad()
def measure(model, root: str, ids: List[str], labels: Dict[str, List[int]]) -> Dict[str, float]:
    scale = model.decode_head.logit_scale.detach().float().reshape(-1)
    has_parts = osp.isdir(osp.join(root, 'SegmentationPart'))
    rows = []
    for img_id in ids:
        img = np.array(Image.open(osp.join(root, 'JPEGImages', img_id + '.jpg')).convert('RGB'))
        gt = np.array(Image.open(osp.join(root, 'SegmentationClass', img_id + '.png')))
        part = (np.array(Image.open(osp.join(root, 'SegmentationPart', img_id + '.png')))
                if has_parts else None)
        # The data preprocessor expects BGR as loaded by mmcv (it converts to RGB).
        packed = torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1)
        data = model.data_preprocessor(dict(inputs=[packed]), training=False)
        cls_logits, _ = model.extract_maps(data['inputs'])
        probs = torch.sigmoid(cls_logits[0] * scale[:, None, None]).numpy()
        hw = probs.shape[1:]
        gt_low = resize_nearest(gt, hw)
        part_low = resize_nearest(part, hw) if part is not None else None
        for cls in sorted(labels[img_id]):
            p = probs[cls - 1]
            obj, bg = gt_low == cls, gt_low == 0
            row = dict(Q=float((gt == cls).sum() / max((gt != 255).sum(), 1)),
                       P=float(p.mean()), P_bg=float((p * bg).sum() / p.size),
                       p_bg=float(p[bg].mean()) if bg.any() else np.nan)
            if part_low is not None:
                for name, code in (('p_body', PART_BODY), ('p_head', PART_HEAD)):
                    m = obj & (part_low == code)
                    row[name] = float(p[m].mean()) if m.any() else np.nan
            rows.append(row)
    out = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}
    out['s'] = float(scale.mean())
    return out


def main():
    args = parse_args()
    import mmseg_sbce  # noqa: F401  (registers the plugin's modules)
    from mmseg.registry import MODELS
    cfg = Config.fromfile(args.config)
    init_default_scope('mmseg')
    label_file = osp.join(args.data_root, 'cls_labels.json')
    if not osp.isfile(label_file):
        raise FileNotFoundError(f'image-level labels not found: {label_file}')
    with open(label_file) as f:
        labels = json.load(f)
    ids = read_image_ids(args.data_root, args.split, args.num_images)
    cols = ['s', 'Q', 'P', 'P_bg', 'p_bg', 'p_body', 'p_head']
    print('| checkpoint | ' + ' | '.join(cols) + ' |')
    print('| --- ' * (len(cols) + 1) + '|')
    for ckpt in args.checkpoints:
        if not osp.isfile(ckpt):
            raise FileNotFoundError(f'checkpoint not found: {ckpt}')
        model = MODELS.build(cfg.model)
        load_checkpoint(model, ckpt, map_location='cpu', logger='silent')
        model.eval()
        res = measure(model, args.data_root, ids, labels)
        print(f'| {ckpt} | ' + ' | '.join(
            f'{res[c]:.3f}' if c in res else '-' for c in cols) + ' |')


if __name__ == '__main__':
    main()
