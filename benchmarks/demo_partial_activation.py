# Copyright (c) mmseg-sbce contributors.
"""Show the partial-activation failure of GAP + BCE CAMs on the generated demo data set.

Plain PyTorch on purpose (no plugin models): a small CNN with global average pooling is
trained with multi-label BCE on the demo train split, then class activation maps (CAMs) of
the ground-truth classes are computed on the val split and labelled with a background
threshold. At the threshold that maximises mIoU, the script reports the CAM recall on the
discriminative parts (heads) and on the bodies, and the foreground precision.

Example::

    python tools/gen_demo_data.py data/demo
    python benchmarks/demo_partial_activation.py data/demo --epochs 10
"""
import argparse
import json
import os.path as osp
import time
from typing import Dict, List, Tuple

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

PART_DISCRIMINATIVE, PART_BODY = 1, 2


def read_split(root: str, split: str, num_classes: int, labels: Dict[str, List[int]]):
    """Images (N, 3, H, W) float, multi-hot labels (N, C), class maps and part maps."""
    with open(osp.join(root, 'ImageSets', 'Segmentation', f'{split}.txt')) as f:
        ids = [line.strip() for line in f if line.strip()]
    imgs, targets, masks, parts = [], [], [], []
    for img_id in ids:
        img = cv2.imread(osp.join(root, 'JPEGImages', img_id + '.jpg'))[..., ::-1]
        imgs.append(img.transpose(2, 0, 1).astype(np.float32) / 255.0)
        target = np.zeros(num_classes, np.float32)
        target[np.asarray(labels[img_id], int) - 1] = 1
        targets.append(target)
        masks.append(np.array(Image.open(
            osp.join(root, 'SegmentationClass', img_id + '.png'))))
        parts.append(np.array(Image.open(
            osp.join(root, 'SegmentationPart', img_id + '.png'))))
    return (torch.from_numpy(np.stack(imgs)), torch.from_numpy(np.stack(targets)),
            np.stack(masks), np.stack(parts))


def conv_bn(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation,
                  bias=False),
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCAMNet(nn.Module):
    """Output stride 4 CNN; class scores = GAP of a 1x1 classifier on the features."""

    def __init__(self, num_classes: int, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(3, width, stride=2), conv_bn(width, width), nn.MaxPool2d(2),
            conv_bn(width, 2 * width), conv_bn(2 * width, 3 * width),
            conv_bn(3 * width, 3 * width))
        self.classifier = nn.Conv2d(3 * width, num_classes, 1, bias=False)

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam(x).mean(dim=(2, 3))  # GAP of the CAM == CAM of the GAP


def train(model: nn.Module, imgs: torch.Tensor, targets: torch.Tensor, epochs: int,
          batch_size: int, lr: float, seed: int) -> List[float]:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(imgs) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    losses = []
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(imgs), generator=gen)
        total = 0.0
        for start in range(0, len(imgs), batch_size):
            idx = order[start:start + batch_size]
            x = imgs[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x[flip] = x[flip].flip(-1)
            loss = F.binary_cross_entropy_with_logits(model(x), targets[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        losses.append(total / len(imgs))
        print(f'epoch {epoch + 1}/{epochs}  bce {losses[-1]:.4f}', flush=True)
    return losses


@torch.no_grad()
def compute_cams(model: nn.Module, imgs: torch.Tensor, targets: torch.Tensor):
    """Max-normalised CAMs of the ground-truth classes at image size (N, C, H, W)."""
    model.eval()
    out = []
    for start in range(0, len(imgs), 32):
        x = imgs[start:start + 32]
        cam = F.relu(model.cam(x) + model.cam(x.flip(-1)).flip(-1))
        cam = F.interpolate(cam, size=x.shape[-2:], mode='bilinear', align_corners=False)
        cam = cam / cam.amax(dim=(2, 3), keepdim=True).clamp(min=1e-5)
        out.append(cam * targets[start:start + 32, :, None, None])
    return torch.cat(out).numpy()


def label_with_threshold(cams: np.ndarray, thr: float) -> np.ndarray:
    bg = np.full(cams[:, :1].shape, thr, np.float32)
    return np.concatenate([bg, cams], axis=1).argmax(axis=1)


def evaluate(pred: np.ndarray, gt: np.ndarray, parts: np.ndarray,
             num_classes: int) -> Dict[str, float]:
    valid = gt != 255
    hist = np.bincount(
        (gt[valid].astype(np.int64) * (num_classes + 1) + pred[valid]),
        minlength=(num_classes + 1)**2).reshape(num_classes + 1, num_classes + 1)
    iou = np.diag(hist) / np.maximum(hist.sum(0) + hist.sum(1) - np.diag(hist), 1)
    correct = pred == gt
    head, body = parts == PART_DISCRIMINATIVE, parts == PART_BODY
    fg_pred = valid & (pred > 0)
    fg_gt = valid & (gt > 0)
    return dict(
        miou=float(iou.mean()),
        part_recall=float(correct[head].mean()),
        body_recall=float(correct[body].mean()),
        fg_recall=float(correct[fg_gt].mean()),
        precision=float((correct & fg_pred).sum() / max(fg_pred.sum(), 1)))


def save_visualisation(path: str, imgs: torch.Tensor, gt: np.ndarray, cams: np.ndarray,
                       pred: np.ndarray, palette: List[List[int]], count: int = 8) -> None:
    """Rows of image | ground truth | max CAM over the GT classes | labels."""
    colours = np.zeros((256, 3), np.uint8)
    colours[:len(palette)] = np.asarray(palette, np.uint8)
    colours[255] = (255, 255, 255)
    rows = []
    for i in range(min(count, len(imgs))):
        img = (imgs[i].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
        heat = cv2.applyColorMap((cams[i].max(0) * 255).astype(np.uint8),
                                 cv2.COLORMAP_JET)[..., ::-1]
        rows.append(np.concatenate([img, colours[gt[i]], heat, colours[pred[i]]], 1))
    cv2.imwrite(path, np.concatenate(rows, 0)[..., ::-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data_root', help='a demo data set (tools/gen_demo_data.py)')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--lr', type=float, default=3e-3)
    parser.add_argument('--width', type=int, default=32)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--vis', help='write a PNG of image | GT | CAM | labels at the '
                        'best threshold for the first val images here')
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    with open(osp.join(args.data_root, 'meta.json')) as f:
        meta = json.load(f)
    with open(osp.join(args.data_root, 'cls_labels.json')) as f:
        labels = json.load(f)
    num_classes = int(meta['num_classes'])
    train_imgs, train_t, _, _ = read_split(args.data_root, 'train', num_classes, labels)
    val_imgs, val_t, val_gt, val_parts = read_split(args.data_root, 'val', num_classes,
                                                    labels)
    print(f'train {len(train_imgs)}  val {len(val_imgs)}  classes {num_classes}')

    model = SmallCAMNet(num_classes, args.width)
    tic = time.time()
    losses = train(model, train_imgs, train_t, args.epochs, args.batch_size, args.lr,
                   args.seed)
    train_s = time.time() - tic

    model.eval()
    with torch.no_grad():
        scores = torch.sigmoid(model(val_imgs))
    cls_acc = float(((scores > 0.5).float() == val_t).all(dim=1).float().mean())
    cams = compute_cams(model, val_imgs, val_t)
    sweep: List[Tuple[float, Dict[str, float]]] = []
    for thr in np.round(np.arange(0.05, 1.0, 0.05), 2):
        sweep.append((float(thr), evaluate(label_with_threshold(cams, thr), val_gt,
                                           val_parts, num_classes)))
    best_thr, best = max(sweep, key=lambda item: item[1]['miou'])

    print(f'\ntraining: {train_s:.0f} s, final bce {losses[-1]:.4f}, '
          f'val exact-match classification accuracy {cls_acc:.3f}')
    print('\n| bg thr | mIoU | part recall | body recall | fg recall | fg precision |')
    print('| --- | --- | --- | --- | --- | --- |')
    for thr, m in sweep:
        mark = ' (best)' if thr == best_thr else ''
        print(f'| {thr:.2f}{mark} | {100 * m["miou"]:.1f} | {100 * m["part_recall"]:.1f} '
              f'| {100 * m["body_recall"]:.1f} | {100 * m["fg_recall"]:.1f} '
              f'| {100 * m["precision"]:.1f} |')
    if args.vis:
        save_visualisation(args.vis, val_imgs, val_gt, cams,
                           label_with_threshold(cams, best_thr), meta['palette'])
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(args=vars(args), train_s=train_s, cls_acc=cls_acc,
                           best_thr=best_thr, best=best,
                           sweep=[dict(thr=t, **m) for t, m in sweep]), f, indent=2)


if __name__ == '__main__':
    main()
