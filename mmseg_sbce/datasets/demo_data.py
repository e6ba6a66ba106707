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
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from .cls_labels import dump_cls_labels
from .palette import flat_png_palette, voc_colormap

#: Version of the generator's drawing rules; stored in ``meta.json``.
GENERATOR_VERSION = 2

#: Default share of the class colour mixed into the body colour.
DEFAULT_BODY_TINT = 0.08

#: Values of ``SegmentationPart`` maps.
PART_BACKGROUND, PART_DISCRIMINATIVE, PART_BODY, PART_IGNORE = 0, 1, 2, 255

# (name, head RGB, head texture). Colours are saturated; the background and the bodies are
# muted, so a head is where a class is easy to recognise (a body only through its faint
# tint).
_HEAD_SPECS: Tuple[Tuple[str, Tuple[int, int, int], str], ...] = (
    ('red', (225, 35, 35), 'stripes'),
    ('yellow', (235, 205, 25), 'dots'),
    ('green', (30, 190, 55), 'checker'),
    ('blue', (35, 85, 235), 'rings'),
    ('magenta', (215, 45, 205), 'solid'),
    ('cyan', (25, 200, 215), 'crosshatch'),
    ('orange', (245, 125, 15), 'checker'),
    ('purple', (125, 35, 205), 'stripes'),
    ('lime', (160, 235, 30), 'rings'),
    ('pink', (250, 120, 170), 'dots'),
)

#: Largest number of foreground classes the generator can draw.
MAX_DEMO_CLASSES = len(_HEAD_SPECS)

# Shared body appearance: a muted sand colour with a fine checker in the object's frame.
_BODY_RGB = np.array([176, 160, 128], np.float32)
_BODY_CHECKER_AMPLITUDE = 28.0
_BODY_CHECKER_HALF_PERIOD = 2.0


def demo_class_names(num_classes: int) -> List[str]:
    """Class names of a demo data set: ``'background'`` then one name per class.

    Args:
        num_classes (int): Number of foreground classes C (1..``MAX_DEMO_CLASSES``).

    Returns:
        list[str]: ``C + 1`` names.
    """
    _check_num_classes(num_classes)
    return ['background'] + [spec[0] for spec in _HEAD_SPECS[:num_classes]]


def _check_body_tint(body_tint: float) -> None:
    if not 0.0 <= body_tint <= 1.0:
        raise ValueError(f'body_tint must be in [0, 1], got {body_tint}')


def _check_num_classes(num_classes: int) -> None:
    if not 1 <= num_classes <= MAX_DEMO_CLASSES:
        raise ValueError(f'num_classes must be in 1..{MAX_DEMO_CLASSES}, '
                         f'got {num_classes}')


# ------------------------------------------------------------------------------ drawing
def _background(rng: np.random.Generator, size: int, yy: np.ndarray,
                xx: np.ndarray) -> np.ndarray:
    """Cluttered, desaturated background: base colour, stripes, blobs and noise."""
    base = _muted_colour(rng, value_range=(60, 200))
    img = np.broadcast_to(base, (size, size, 3)).astype(np.float32).copy()
    for _ in range(int(rng.integers(1, 3))):  # low-frequency stripes
        theta = rng.uniform(0, np.pi)
        period = rng.uniform(10, 36)
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + phase)
        img += wave[..., None] * rng.uniform(8, 30) * _muted_direction(rng)
    for _ in range(int(rng.integers(3, 9))):  # soft blobs
        cy, cx = rng.uniform(0, size, 2)
        ry, rx = rng.uniform(5, size / 4, 2)
        dist = ((yy - cy) / ry)**2 + ((xx - cx) / rx)**2
        alpha = np.clip(1.5 - dist, 0, 1)[..., None] * rng.uniform(0.4, 0.9)
        img = img * (1 - alpha) + _muted_colour(rng, value_range=(40, 215)) * alpha
    img += rng.normal(0, rng.uniform(4, 10), img.shape).astype(np.float32)
    return img


def _muted_colour(rng: np.random.Generator,
                  value_range: Tuple[float, float]) -> np.ndarray:
    """A low-saturation RGB colour (grey with a weak tint)."""
    value = rng.uniform(*value_range)
    tint = rng.uniform(-1, 1, 3) * rng.uniform(0, 22)
    return np.clip(value + tint, 0, 255).astype(np.float32)


def _muted_direction(rng: np.random.Generator) -> np.ndarray:
    """Mostly-luminance modulation with a weak colour tint."""
    return (1.0 + rng.uniform(-0.25, 0.25, 3)).astype(np.float32)


def _head_texture(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Binary texture (1 = full colour, 0 = shaded) in the head's frame, period ~4 px."""
    if kind == 'solid':
        return np.ones_like(u)
    if kind == 'stripes':
        return (np.floor(u / 2.0) % 2).astype(np.float32)
    if kind == 'checker':
        return ((np.floor(u / 2.0) + np.floor(v / 2.0)) % 2).astype(np.float32)
    if kind == 'dots':
        du = (u % 4.0) - 2.0
        dv = (v % 4.0) - 2.0
        return (du * du + dv * dv > 1.6).astype(np.float32)
    if kind == 'rings':
        return (np.floor(np.sqrt(u * u + v * v) / 1.5) % 2).astype(np.float32)
    if kind == 'crosshatch':
        return ((np.abs((u % 4.0) - 2) > 0.8) & (np.abs((v % 4.0) - 2) > 0.8)).astype(np.float32)
    raise ValueError(f'unknown head texture {kind!r}')


def _object_masks(cy: float, cx: float, theta: float, a: float, b: float, r: float,
                  yy: np.ndarray, xx: np.ndarray):
    """Body ellipse and head disc (at the tip of the major axis) plus frame coordinates."""
    cos, sin = np.cos(theta), np.sin(theta)
    dx, dy = xx - cx, yy - cy
    u = dx * cos + dy * sin
    v = -dx * sin + dy * cos
    body = (u / a)**2 + (v / b)**2 <= 1.0
    hu, hv = u - a, v  # head centred on the tip of the body
    head = hu * hu + hv * hv <= r * r
    return body | head, head, (u, v), (hu, hv)


def _border_band(label: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` px of a boundary between two different labels."""
    size = 2 * width + 1
    kernel = np.ones((size, size), np.uint8)
    local_max = cv2.dilate(label, kernel, borderType=cv2.BORDER_REPLICATE)
    local_min = cv2.erode(label, kernel, borderType=cv2.BORDER_REPLICATE)
    return local_max != local_min


def _draw_image(rng: np.random.Generator, size: int, num_classes: int,
                max_objects: int, border_width: int, body_tint: float):
    """Draw one image; returns (rgb uint8, class map uint8, part map uint8, labels)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = _background(rng, size, yy, xx)
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
            obj, head, (u, v), (hu, hv) = _object_masks(cy, cx, theta, a, b, r, yy, xx)
            if obj[0, :].any() or obj[-1, :].any() or obj[:, 0].any() or obj[:, -1].any():
                continue
            grown = cv2.dilate(obj.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            if (grown & occupied).any():
                continue
            break
        else:
            continue  # no room left: draw fewer objects
        cls = int(rng.integers(1, num_classes + 1))
        _, colour, texture = _HEAD_SPECS[cls - 1]
        body = obj & ~head
        # Body: muted colour with a faint class tint, fine checker in the object's frame,
        # per-object shade.
        shade = rng.uniform(0.85, 1.15)
        checker = (np.floor(u / _BODY_CHECKER_HALF_PERIOD) +
                   np.floor(v / _BODY_CHECKER_HALF_PERIOD)) % 2
        body_base = _BODY_RGB * (1 - body_tint) + np.array(colour, np.float32) * body_tint
        body_rgb = (body_base * shade)[None, None] + (
            (checker - 0.5) * 2 * _BODY_CHECKER_AMPLITUDE)[..., None]
        img[body] = body_rgb[body]
        # Head: class colour (small jitter), class texture (full vs 55% shade).
        jitter = rng.uniform(0.9, 1.1)
        head_colour = np.clip(np.array(colour, np.float32) * jitter, 0, 255)
        pattern = _head_texture(texture, hu, hv)
        head_rgb = head_colour[None, None] * (0.55 + 0.45 * pattern)[..., None]
        img[head] = head_rgb[head]
        label[obj] = cls
        part[body] = PART_BODY
        part[head] = PART_DISCRIMINATIVE
        occupied |= obj

    # Texture noise on top of everything, so flat colours are never exact.
    img += rng.normal(0, 5, img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)

    band = _border_band(label, border_width)
    label[band] = 255
    part[band] = PART_IGNORE
    labels = sorted(int(c) for c in np.unique(label) if 0 < c < 255)
    return img, label, part, labels


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
    _check_num_classes(num_classes)
    _check_body_tint(body_tint)
    rng = np.random.default_rng([seed, _SPLIT_CODES[split], index])
    return _draw_image(rng, img_size, num_classes, max_objects, border_width,
                       float(body_tint))


_SPLIT_CODES = {'train': 0, 'val': 1}


# ------------------------------------------------------------------------------ writing
def _write_png(path: str, array: np.ndarray, palette: Optional[List[int]]) -> None:
    if palette is None:
        Image.fromarray(array, mode='L').save(path)
    else:
        image = Image.fromarray(array, mode='P')
        image.putpalette(palette)
        image.save(path)


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
    _check_num_classes(num_classes)
    if not 1 <= max_objects <= 3:
        raise ValueError(f'max_objects must be in 1..3, got {max_objects}')
    _check_body_tint(body_tint)
    if img_size < 32:
        raise ValueError(f'img_size must be at least 32, got {img_size}')
    if num_train < 0 or num_val < 0 or num_train + num_val == 0:
        raise ValueError('num_train and num_val must be >= 0 and not both 0')

    dirs = {name: osp.join(out_dir, name) for name in (
        'JPEGImages', 'SegmentationClass', 'SegmentationPart', 'ImageSets/Segmentation')}
    for path in dirs.values():
        os.makedirs(path, exist_ok=True)
    png_palette = flat_png_palette()

    splits = {'train': num_train, 'val': num_val}
    total = num_train + num_val
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(total)
    cls_labels: Dict[str, List[int]] = {}
    for split, count in splits.items():
        ids = []
        for index in range(count):
            img_id = f'{split}_{index:05d}'
            img, label, part, labels = render_demo_sample(
                seed, split, index, img_size, num_classes, max_objects, border_width,
                body_tint)
            cv2.imwrite(osp.join(dirs['JPEGImages'], img_id + '.jpg'),
                        cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
            _write_png(osp.join(dirs['SegmentationClass'], img_id + '.png'), label,
                       png_palette)
            _write_png(osp.join(dirs['SegmentationPart'], img_id + '.png'), part, None)
            cls_labels[img_id] = labels
            ids.append(img_id)
            if bar is not None:
                bar.update()
        with open(osp.join(dirs['ImageSets/Segmentation'], f'{split}.txt'), 'w') as f:
            f.write(''.join(f'{i}\n' for i in ids))
    if bar is not None:
        print()

    dump_cls_labels(cls_labels, osp.join(out_dir, 'cls_labels.json'))
    meta = dict(
        classes=demo_class_names(num_classes),
        palette=voc_colormap(num_classes + 1),
        num_classes=num_classes,
        splits=splits,
        part_map=dict(
            dir='SegmentationPart',
            values={
                str(PART_BACKGROUND): 'background',
                str(PART_DISCRIMINATIVE): 'discriminative part (class-specific head)',
                str(PART_BODY): 'body (muted; faint class tint, see generator.body_tint)',
                str(PART_IGNORE): 'ignore (border band)',
            }),
        heads={spec[0]: dict(rgb=list(spec[1]), texture=spec[2])
               for spec in _HEAD_SPECS[:num_classes]},
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
    with open(osp.join(out_dir, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=2)
        f.write('\n')
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
            'tools/gen_demo_data.py?')
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
