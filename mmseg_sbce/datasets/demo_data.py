# Copyright (c) mmseg-sbce contributors.
"""A small generated data set in the PASCAL VOC layout that makes the WSSS problem real.

Every object has a small class-specific **discriminative part** (the "head": a saturated
colour plus a class-specific texture) and a larger **body**: a muted, finely checkered
ellipse whose colour carries only a faint tint of the class colour (``body_tint``, 8 % by
default). Backgrounds are cluttered (noise, stripes, blobs) but never look like a body or a
head. A classifier trained with image-level labels needs only the head to tell classes
apart, so its CAM is strong on the head and weak on the body: the partial activation that
Spatial-BCE is meant to fix. The faint tint is what makes the body learnable at all for a
network that sees ~40 px around a pixel (with ``body_tint=0`` a body pixel far from the
head carries no class information, and no loss can recover it).

Layout written under ``out_dir`` (see ``docs/data.md``)::

    JPEGImages/<id>.jpg                  RGB images (JPEG quality 90)
    SegmentationClass/<id>.png           VOC palette, 0 background, 1..C, 255 border band
    SegmentationPart/<id>.png            0 background, 1 discriminative part, 2 body, 255
    ImageSets/Segmentation/train.txt     ids, one per line (also val.txt)
    cls_labels.json                      {id: sorted foreground class ids in 1..C}
    meta.json                            class names, palette, generator options

The output is a pure function of the options: the same seed gives the same bytes.
"""
import json
import os.path as osp
from typing import Dict, Sequence

import cv2
import numpy as np

from .generated_common import (DEFAULT_BODY_TINT, MAX_DEMO_CLASSES, PART_BACKGROUND,
                               PART_BODY, PART_DISCRIMINATIVE, PART_IGNORE,
                               check_body_tint, check_num_classes, demo_class_names,
                               finish_maps, heads_meta, object_masks, paint_object,
                               part_map_meta, sample_rng, textured_background,
                               write_meta, write_voc_dataset)
from .palette import voc_colormap

#: Version of the generator's drawing rules; stored in ``meta.json``.
GENERATOR_VERSION = 2


def _draw_image(rng: np.random.Generator, size: int, num_classes: int,
                max_objects: int, border_width: int, body_tint: float):
    """Draw one image; returns (rgb uint8, class map uint8, part map uint8, labels)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = textured_background(rng, size, yy, xx)
    label = np.zeros((size, size), np.uint8)
    part = np.zeros((size, size), np.uint8)

    weights = np.array([0.45, 0.4, 0.15][:max_objects], np.float64)
    num_objects = int(rng.choice(np.arange(1, max_objects + 1), p=weights / weights.sum()))
    # Fewer, larger objects or more, smaller ones; sizes are fractions of the image.
    a_range = {1: (0.22, 0.34), 2: (0.16, 0.25), 3: (0.13, 0.19)}[num_objects]
    occupied = np.zeros((size, size), bool)
    for _ in range(num_objects):
        for _attempt in range(40):
            a = rng.uniform(*a_range) * size
            b = a * rng.uniform(0.45, 0.6)
            r = b * rng.uniform(0.65, 0.8)
            theta = rng.uniform(0, 2 * np.pi)
            reach = a + r  # keep the whole object, head included, inside the image
            margin = reach + 2
            if size - 2 * margin <= 0:
                continue
            cy, cx = rng.uniform(margin - a * 0.5, size - margin + a * 0.5, 2)
            obj, head, uv, head_uv = object_masks(cy, cx, theta, a, b, r, yy, xx)
            if obj[0, :].any() or obj[-1, :].any() or obj[:, 0].any() or obj[:, -1].any():
                continue
            grown = cv2.dilate(obj.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            if (grown & occupied).any():
                continue
            break
        else:
            continue  # no room left: draw fewer objects
        cls = int(rng.integers(1, num_classes + 1))
        body = paint_object(rng, img, obj, head, uv, head_uv, cls, body_tint)
        label[obj] = cls
        part[body] = PART_BODY
        part[head] = PART_DISCRIMINATIVE
        occupied |= obj

    # Texture noise on top of everything, so flat colours are never exact.
    img += rng.normal(0, 5, img.shape).astype(np.float32)
    return finish_maps(img, label, part, border_width)


def render_demo_sample(seed: int,
                       split: str,
                       index: int,
                       img_size: int = 128,
                       num_classes: int = 6,
                       max_objects: int = 3,
                       border_width: int = 1,
                       body_tint: float = DEFAULT_BODY_TINT):
    """Render image ``index`` of ``split`` exactly as :func:`generate_demo_dataset` does.

    Args:
        seed (int): Random seed of the data set.
        split (str): ``'train'`` or ``'val'``.
        index (int): Index of the image in its split.
        img_size (int): Image side in pixels. Defaults to 128.
        num_classes (int): Number of foreground classes C. Defaults to 6.
        max_objects (int): Most objects per image (1..3). Defaults to 3.
        border_width (int): Half-width of the 255 border band. Defaults to 1.
        body_tint (float): Share of the class colour in the body colour (0..1).
            Defaults to ``DEFAULT_BODY_TINT``.

    Returns:
        tuple: ``(img, label, part, labels)``: RGB uint8 image (before JPEG encoding),
        class map (0, 1..C, 255), part map (``PART_*`` values) and the sorted foreground
        class ids present.
    """
    check_num_classes(num_classes)
    check_body_tint(body_tint)
    return _draw_image(sample_rng(seed, split, index), img_size, num_classes, max_objects,
                       border_width, float(body_tint))


def generate_demo_dataset(out_dir: str,
                          num_train: int = 400,
                          num_val: int = 100,
                          img_size: int = 128,
                          num_classes: int = 6,
                          seed: int = 0,
                          max_objects: int = 3,
                          border_width: int = 1,
                          jpeg_quality: int = 90,
                          body_tint: float = DEFAULT_BODY_TINT,
                          progress: bool = False) -> Dict:
    """Write the demo data set (PASCAL VOC layout) to ``out_dir``.

    Image ``i`` of a split depends only on ``(seed, split, i)``, so a larger set extends a
    smaller one with the same seed, and the same options always give the same bytes.

    Args:
        out_dir (str): Output directory (created; existing files are overwritten).
        num_train (int): Number of training images. Defaults to 400.
        num_val (int): Number of validation images. Defaults to 100.
        img_size (int): Side of the square images in pixels. Defaults to 128.
        num_classes (int): Number of foreground classes C (1..10). Defaults to 6.
        seed (int): Random seed. Defaults to 0.
        max_objects (int): Most objects per image (1..3). Defaults to 3.
        border_width (int): Half-width in px of the 255 band drawn on every boundary
            between two labels (VOC marks object outlines the same way); the band is
            ``2 * border_width + 1`` px wide. 0 disables it. Defaults to 1.
        jpeg_quality (int): JPEG quality of the images. Defaults to 90.
        body_tint (float): Share of the class colour mixed into the body colour (0..1);
            0 makes the bodies identical for all classes. Defaults to
            ``DEFAULT_BODY_TINT``.
        progress (bool): Show a progress bar. Defaults to False.

    Returns:
        dict: The content written to ``meta.json``.
    """
    check_num_classes(num_classes)
    if not 1 <= max_objects <= 3:
        raise ValueError(f'max_objects must be in 1..3, got {max_objects}')
    check_body_tint(body_tint)
    if img_size < 32:
        raise ValueError(f'img_size must be at least 32, got {img_size}')
    if num_train < 0 or num_val < 0 or num_train + num_val == 0:
        raise ValueError('num_train and num_val must be >= 0 and not both 0')

    splits = {'train': num_train, 'val': num_val}

    def render(split: str, index: int):
        return render_demo_sample(seed, split, index, img_size, num_classes, max_objects,
                                  border_width, body_tint)

    write_voc_dataset(out_dir, splits, render, jpeg_quality, progress)
    meta = dict(
        classes=demo_class_names(num_classes),
        palette=voc_colormap(num_classes + 1),
        num_classes=num_classes,
        splits=splits,
        part_map=part_map_meta(),
        heads=heads_meta(num_classes),
        generator=dict(
            version=GENERATOR_VERSION,
            num_train=num_train,
            num_val=num_val,
            img_size=img_size,
            num_classes=num_classes,
            seed=seed,
            max_objects=max_objects,
            border_width=border_width,
            jpeg_quality=jpeg_quality,
            body_tint=body_tint),
    )
    write_meta(out_dir, meta)
    return meta


def load_demo_meta(data_root: str) -> Dict:
    """Read ``{data_root}/meta.json`` written by :func:`generate_demo_dataset`.

    Args:
        data_root (str): Root of a demo data set.

    Returns:
        dict: The parsed meta information.
    """
    path = osp.join(data_root, 'meta.json')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: is {data_root!r} a demo data set written by '
            'tools/gen_demo_data.py? A data set of your own needs its class names: a data '
            'set file (run_pipeline.py --dataset) or class_names=[...] (docs/data.md, '
            '"Your own data set")')
    with open(path) as f:
        meta = json.load(f)
    for key in ('classes', 'palette'):
        if key not in meta:
            raise ValueError(f'{path} has no {key!r} entry')
    return meta


__all__: Sequence[str] = [
    'generate_demo_dataset', 'render_demo_sample', 'load_demo_meta', 'demo_class_names',
    'MAX_DEMO_CLASSES', 'DEFAULT_BODY_TINT', 'PART_BACKGROUND', 'PART_DISCRIMINATIVE',
    'PART_BODY', 'PART_IGNORE'
]
