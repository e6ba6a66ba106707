# Copyright (c) mmseg-sbce contributors.
"""A family of generated WSSS data sets: the demo's objects, with knobs for what is hard.

Objects are drawn as in the demo (:mod:`.generated_common`): a small class-specific head
at the tip of a larger muted body. :class:`FamilyOptions` adds knobs for the ways real
data sets defeat a WSSS recipe tuned on one set: object scale, background clutter and
unlabelled look-alikes, image size, several co-occurring classes per image, bodies that
carry no class information (``body_tint=0``) and a class's usual context present but
unlabelled. Named members live in ``benchmarks/datasets/*.json`` (``docs/data.md``).

Each image uses independent random sub-streams for the layout (classes, objects), the
background, the context and the distractors, so changing a background option keeps the
label maps identical. Same options, same bytes.
"""
import os.path as osp
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from PIL import Image

from .family_options import FamilyOptions
from .generated_common import (HEAD_SPECS, PART_BODY, PART_DISCRIMINATIVE,
                               demo_class_names, finish_maps, heads_meta, muted_colour,
                               object_masks, paint_object, part_map_meta,
                               rotated_frame, sample_rng, shared_body_rgb,
                               textured_background, write_meta, write_voc_dataset)
from .palette import voc_colormap

#: Version of the family generator's drawing rules; stored in ``meta.json``.
FAMILY_GENERATOR_VERSION = 1

# A class's usual context (like water for boats): muted colour and pattern per class.
_CONTEXT_SPECS: Tuple[Tuple[Tuple[int, int, int], str], ...] = (
    ((70, 105, 140), 'waves'), ((95, 135, 80), 'grass'), ((150, 135, 110), 'speckle'),
    ((125, 115, 130), 'bricks'), ((150, 115, 95), 'diagonal'), ((80, 125, 125), 'grass'),
    ((135, 135, 95), 'waves'), ((110, 100, 85), 'bricks'), ((105, 125, 150), 'diagonal'),
    ((140, 110, 125), 'speckle'))

# Sub-streams of an image's random numbers (see the module docstring).
_LAYOUT, _BACKGROUND, _CONTEXT, _DISTRACTORS, _OBJECTS = range(5)
_MAX_LAYOUTS = 50  # fresh layouts tried before giving up on an image
_MIN_VISIBLE = 0.6  # least share of an object's area inside the image


# ------------------------------------------------------------------------------ layout
def _choose_classes(rng: np.random.Generator, opts: FamilyOptions) -> List[int]:
    """Distinct classes of one image; later ones prefer the first one's group."""
    count = int(rng.integers(opts.classes_per_image[0], opts.classes_per_image[1] + 1))
    chosen = [int(rng.integers(1, opts.num_classes + 1))]
    group = next((g for g in opts.class_groups if chosen[0] in g), ())
    while len(chosen) < count:
        mates = [c for c in group if c not in chosen]
        use_group = rng.random() < opts.group_prob
        pool = mates if mates and use_group else [
            c for c in range(1, opts.num_classes + 1) if c not in chosen]
        chosen.append(int(rng.choice(pool)))
    return chosen


def _place(rng: np.random.Generator, opts: FamilyOptions, occupied: np.ndarray,
           yy: np.ndarray, xx: np.ndarray, part_size: Optional[float] = None):
    """Place one object that does not touch ``occupied``; None when there is no room.

    Returns:
        tuple: ``(object, head, uv, head_uv, (cy, cx), reach)`` as in ``object_masks``.
    """
    size = opts.img_size
    area = np.exp(rng.uniform(*np.log(opts.object_scale))) * size * size
    elongation = rng.uniform(0.45, 0.65)
    ratio = rng.uniform(*opts.part_size) if part_size is None else part_size
    for attempt in range(60):
        if attempt and attempt % 20 == 0:
            area *= 0.7  # no room at this size: shrink rather than drop the class
        # ellipse pi*a*b plus about half the head disc, which sticks out of the body
        nominal = np.pi * elongation * (1 + 0.5 * elongation * ratio**2)
        a = np.sqrt(area / nominal)
        b, r = a * elongation, a * elongation * ratio
        theta, (cy, cx) = rng.uniform(0, 2 * np.pi), rng.uniform(0, size, 2)
        hy, hx = cy + a * np.sin(theta), cx + a * np.cos(theta)
        if min(hy, hx) < r + 2 or max(hy, hx) > size - 3 - r:
            continue  # the head (the class evidence) is never cut by the border
        obj, head, uv, head_uv = object_masks(cy, cx, theta, a, b, r, yy, xx)
        if obj.sum() < _MIN_VISIBLE * area:
            continue
        grown = cv2.dilate(obj.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        if not (grown & occupied).any():
            return obj, head, uv, head_uv, (cy, cx), a + r
    return None


def _layout(opts: FamilyOptions, split: str, index: int, yy: np.ndarray, xx: np.ndarray):
    """Classes and placed objects ``(cls, placement)``; first instances are placed first."""
    rng = sample_rng(opts.seed, split, index, _LAYOUT)
    for _ in range(_MAX_LAYOUTS):
        classes = _choose_classes(rng, opts)
        extra = [int(rng.integers(opts.instances_per_class[0] - 1,
                                  opts.instances_per_class[1])) for _ in classes]
        occupied = np.zeros(yy.shape, bool)
        objects = []
        for cls in classes + [c for c, n in zip(classes, extra) for _ in range(n)]:
            placed = _place(rng, opts, occupied, yy, xx)
            if placed is None:
                if cls not in [c for c, _ in objects]:
                    break  # a class of the image found no room: try a fresh layout
                continue
            objects.append((cls, placed))
            occupied |= placed[0]
        else:
            return objects
    raise RuntimeError(
        f'{split} image {index}: found no room for {opts.classes_per_image} classes of '
        f'object_scale {opts.object_scale} in a {opts.img_size} px image after '
        f'{_MAX_LAYOUTS} layouts; lower object_scale or classes_per_image')


# ------------------------------------------------------------------------------ painting
def _background(opts: FamilyOptions, split: str, index: int, yy: np.ndarray,
                xx: np.ndarray) -> np.ndarray:
    rng = sample_rng(opts.seed, split, index, _BACKGROUND)
    size, scale = opts.img_size, opts.img_size / 128
    if opts.clutter == 'plain':
        theta = rng.uniform(0, 2 * np.pi)
        ramp = (xx * np.cos(theta) + yy * np.sin(theta)) / size  # gentle lighting
        img = muted_colour(rng, value_range=(60, 200)) + (ramp * rng.uniform(-12, 12))[..., None]
        return img + rng.normal(0, rng.uniform(2, 5), img.shape).astype(np.float32)
    img = textured_background(rng, size, yy, xx, (10 * scale, 36 * scale), 5 * scale)
    if opts.clutter in ('edges', 'lookalikes'):
        low, high = np.sqrt(opts.object_scale) * size / 2
        for _ in range(int(round(rng.integers(3, 8) * scale))):
            theta, (cy, cx) = rng.uniform(0, np.pi), rng.uniform(0, size, 2)
            a, b = rng.uniform(low, high), rng.uniform(low, high)
            u, v = rotated_frame(cy, cx, theta, yy, xx)
            inside = ((u / a)**2 + (v / b)**2 <= 1) if rng.random() < 0.5 else (
                (np.abs(u) <= a) & (np.abs(v) <= b))
            if rng.random() < 0.4:  # outline only, 1-3 px
                width = int(rng.integers(3, 8))
                kernel = np.ones((width, width), np.uint8)
                inside &= ~(cv2.erode(inside.astype(np.uint8), kernel) > 0)
            img[inside] = muted_colour(rng, value_range=(30, 225))
    return img


def _context_pattern(kind: str, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray,
                     scale: float) -> np.ndarray:
    """Zero-mean pattern in [-1, 1] of a context, features ~3-24 px at 128 px."""
    phase = rng.uniform(0, 2 * np.pi)
    if kind == 'waves':
        return np.sin(2 * np.pi * (yy + 2 * scale * np.sin(2 * np.pi * xx / (24 * scale)))
                      / (6 * scale) + phase)
    if kind == 'grass':
        return np.sin(2 * np.pi * xx / (3 * scale) + 3 * np.sin(2 * np.pi * yy / (17 * scale)))
    if kind == 'diagonal':
        return np.sin(2 * np.pi * (xx + yy) / (8 * scale) + phase)
    if kind == 'bricks':
        row = np.floor(yy / (6 * scale))
        mortar = ((yy % (6 * scale)) < 1.2) | (((xx + 6 * scale * (row % 2)) %
                                                 (12 * scale)) < 1.2)
        return np.where(mortar, -1.0, 0.5)
    noise = cv2.GaussianBlur(rng.normal(0, 1, yy.shape).astype(np.float32), (0, 0),
                             0.8 * scale)
    return np.clip(noise / (noise.std() + 1e-6), -1, 1)  # speckle


def _paint_context(img: np.ndarray, cls: int, centre: Tuple[float, float],
                   radii: Tuple[float, float], rng: np.random.Generator, yy: np.ndarray,
                   xx: np.ndarray, scale: float) -> None:
    rgb, kind = _CONTEXT_SPECS[cls - 1]
    dist = ((yy - centre[0]) / radii[0])**2 + ((xx - centre[1]) / radii[1])**2
    alpha = np.clip((1.0 - dist) / 0.3, 0, 1)[..., None] * 0.9  # soft edge
    pattern = _context_pattern(kind, rng, yy, xx, scale)
    colour = np.array(rgb, np.float32) + pattern[..., None] * 20
    img[...] = img * (1 - alpha) + colour * alpha


def _paint_distractors(opts: FamilyOptions, split: str, index: int, img: np.ndarray,
                       occupied: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> None:
    """Unlabelled look-alikes: headless bodies and untextured discs in head colours."""
    rng = sample_rng(opts.seed, split, index, _DISTRACTORS)
    keep_out = cv2.dilate(occupied.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    for _ in range(int(round(rng.integers(1, 4) * opts.img_size / 128))):
        placed = _place(rng, opts, keep_out, yy, xx, part_size=opts.part_size[0])
        if placed is None:
            continue
        obj, head, uv, _, _, _ = placed
        colour = np.array(HEAD_SPECS[int(rng.integers(0, opts.num_classes))][1], np.float32)
        if rng.random() < 0.5:
            body = obj & ~head
            img[body] = shared_body_rgb(uv[0], uv[1], colour, opts.body_tint,
                                        rng.uniform(0.85, 1.15))[body]
            keep_out |= obj
        else:
            img[head] = colour * 0.5 + 64  # half-way to grey, no class texture
            keep_out |= head


def render_family_sample(opts: FamilyOptions, split: str, index: int):
    """Render image ``index`` of ``split`` exactly as :func:`generate_family_dataset` does.

    Returns:
        tuple: ``(img, label, part, labels)`` as :func:`.demo_data.render_demo_sample`.
    """
    size = opts.img_size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    objects = _layout(opts, split, index, yy, xx)
    img = _background(opts, split, index, yy, xx).astype(np.float32)
    rng = sample_rng(opts.seed, split, index, _CONTEXT)
    present = {cls for cls, _ in objects}
    for cls in range(1, opts.num_classes + 1):
        draw = rng.random()
        radii = rng.uniform(1.4, 2.2, 2)
        if cls in present and draw < opts.context:  # around the class's first object
            _, _, _, _, centre, reach = next(p for c, p in objects if c == cls)
            _paint_context(img, cls, centre, tuple(radii * reach), rng, yy, xx, size / 128)
        elif cls not in present and draw < opts.context_leak:
            centre = tuple(rng.uniform(0, size, 2))
            _paint_context(img, cls, centre, tuple(radii * size / 6), rng, yy, xx, size / 128)
    label = np.zeros((size, size), np.uint8)
    part = np.zeros((size, size), np.uint8)
    for cls, (obj, _, _, _, _, _) in objects:
        label[obj] = cls
    if opts.clutter == 'lookalikes':
        _paint_distractors(opts, split, index, img, label > 0, yy, xx)
    rng = sample_rng(opts.seed, split, index, _OBJECTS)
    for cls, (obj, head, uv, head_uv, _, _) in objects:
        body = paint_object(rng, img, obj, head, uv, head_uv, cls, opts.body_tint)
        part[body] = PART_BODY
        part[head] = PART_DISCRIMINATIVE
    img += rng.normal(0, 5, img.shape).astype(np.float32)
    return finish_maps(img, label, part, opts.border_width)


# ------------------------------------------------------------------------------ writing
def generate_family_dataset(out_dir: str,
                            opts: Optional[FamilyOptions] = None,
                            preset: Optional[str] = None,
                            progress: bool = False) -> Dict:
    """Write one member of the family (PASCAL VOC layout, as the demo) to ``out_dir``.

    Args:
        out_dir (str): Output directory (created; existing files are overwritten).
        opts (FamilyOptions, optional): The member's options. Defaults to
            ``FamilyOptions()``.
        preset (str, optional): Name of the preset the options come from; recorded.
        progress (bool): Show a progress bar. Defaults to False.

    Returns:
        dict: The content written to ``meta.json``.
    """
    opts = FamilyOptions() if opts is None else opts
    splits = {'train': opts.num_train, 'val': opts.num_val}
    write_voc_dataset(out_dir, splits,
                      lambda split, index: render_family_sample(opts, split, index),
                      opts.jpeg_quality, progress)
    meta = dict(
        classes=demo_class_names(opts.num_classes),
        palette=voc_colormap(opts.num_classes + 1),
        num_classes=opts.num_classes,
        splits=splits,
        part_map=part_map_meta(),
        heads=heads_meta(opts.num_classes),
        contexts={HEAD_SPECS[i][0]: dict(rgb=list(spec[0]), pattern=spec[1])
                  for i, spec in enumerate(_CONTEXT_SPECS[:opts.num_classes])},
        generator=dict(name='family', version=FAMILY_GENERATOR_VERSION, preset=preset,
                       **opts.to_dict()),
    )
    write_meta(out_dir, meta)
    return meta


def label_statistics(data_root: str, split: str = 'train') -> Dict:
    """Foreground share and classes per image of a split, from its ``SegmentationClass``.

    Returns:
        dict: ``num_images``, ``foreground_fraction`` (foreground pixels over labelled,
        i.e. non-255, pixels), ``mean_classes_per_image`` and ``classes_per_image``
        (``{count: images}``).
    """
    with open(osp.join(data_root, 'ImageSets', 'Segmentation', f'{split}.txt')) as f:
        ids = f.read().split()
    foreground = labelled = 0
    counts: Dict[int, int] = {}
    for img_id in ids:
        mask = np.array(Image.open(osp.join(data_root, 'SegmentationClass', img_id + '.png')))
        valid = mask != 255
        foreground += int((valid & (mask > 0)).sum())
        labelled += int(valid.sum())
        present = len(set(np.unique(mask[valid]).tolist()) - {0})
        counts[present] = counts.get(present, 0) + 1
    return dict(
        num_images=len(ids),
        foreground_fraction=foreground / max(labelled, 1),
        mean_classes_per_image=sum(k * n for k, n in counts.items()) / max(len(ids), 1),
        classes_per_image=dict(sorted(counts.items())))
