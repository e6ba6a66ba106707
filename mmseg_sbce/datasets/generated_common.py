# Copyright (c) mmseg-sbce contributors.
"""Drawing and writing primitives shared by the generated data sets.

:mod:`.demo_data` (the demo set) and :mod:`.family_data` (the benchmark family) draw the
same kind of object: a small class-specific **discriminative part** (the "head": a
saturated class colour plus a class texture) at the tip of a larger muted, finely
checkered **body** whose colour carries a faint tint of the class colour. Both write the
PASCAL VOC layout described in ``docs/data.md``. The demo's bytes must not change (its
results table depends on them), so every function here keeps the demo's operations and
random draws in their original order; new parameters default to the demo's constants.
"""
import json
import os
import os.path as osp
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import cv2
import numpy as np
from PIL import Image

from .cls_labels import dump_cls_labels
from .palette import flat_png_palette

#: Values of ``SegmentationPart`` maps.
PART_BACKGROUND, PART_DISCRIMINATIVE, PART_BODY, PART_IGNORE = 0, 1, 2, 255

#: Default share of the class colour mixed into the body colour.
DEFAULT_BODY_TINT = 0.08

# (name, head RGB, head texture). Colours are saturated; the background and the bodies are
# muted, so a head is where a class is easy to recognise (a body only through its faint
# tint).
HEAD_SPECS: Tuple[Tuple[str, Tuple[int, int, int], str], ...] = (
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

#: Largest number of foreground classes the generators can draw.
MAX_DEMO_CLASSES = len(HEAD_SPECS)

# Shared body appearance: a muted sand colour with a fine checker in the object's frame.
BODY_RGB = np.array([176, 160, 128], np.float32)
_BODY_CHECKER_AMPLITUDE = 28.0
_BODY_CHECKER_HALF_PERIOD = 2.0

_SPLIT_CODES = {'train': 0, 'val': 1}


def demo_class_names(num_classes: int) -> List[str]:
    """Class names of a generated data set: ``'background'`` then one name per class.

    Args:
        num_classes (int): Number of foreground classes C (1..``MAX_DEMO_CLASSES``).

    Returns:
        list[str]: ``C + 1`` names.
    """
    check_num_classes(num_classes)
    return ['background'] + [spec[0] for spec in HEAD_SPECS[:num_classes]]


def check_body_tint(body_tint: float) -> None:
    """Raise a ``ValueError`` unless ``0 <= body_tint <= 1``."""
    if not 0.0 <= body_tint <= 1.0:
        raise ValueError(f'body_tint must be in [0, 1], got {body_tint}')


def check_num_classes(num_classes: int) -> None:
    """Raise a ``ValueError`` unless ``1 <= num_classes <= MAX_DEMO_CLASSES``."""
    if not 1 <= num_classes <= MAX_DEMO_CLASSES:
        raise ValueError(f'num_classes must be in 1..{MAX_DEMO_CLASSES}, '
                         f'got {num_classes}')


def sample_rng(seed: int, split: str, index: int, *stream: int) -> np.random.Generator:
    """The random stream of image ``index`` of ``split``: a pure function of the arguments.

    ``stream`` (extra integers) selects an independent sub-stream of the same image, so a
    generator can keep, e.g., the object layout fixed while the background options change.
    """
    if split not in _SPLIT_CODES:
        raise ValueError(f'split must be one of {sorted(_SPLIT_CODES)}, got {split!r}')
    return np.random.default_rng([seed, _SPLIT_CODES[split], index, *stream])


# ------------------------------------------------------------------------------ drawing
def textured_background(rng: np.random.Generator,
                        size: int,
                        yy: np.ndarray,
                        xx: np.ndarray,
                        period_range: Tuple[float, float] = (10, 36),
                        min_blob_radius: float = 5) -> np.ndarray:
    """Cluttered, desaturated background: base colour, stripes, blobs and noise.

    Args:
        rng (np.random.Generator): Random stream of the image.
        size (int): Image side in px.
        yy (np.ndarray): Row coordinates (size, size) float32.
        xx (np.ndarray): Column coordinates (size, size) float32.
        period_range (tuple[float, float]): Stripe periods in px. Defaults to the demo's.
        min_blob_radius (float): Smallest blob semi-axis in px. Defaults to the demo's.

    Returns:
        np.ndarray: (size, size, 3) float32 RGB, not clipped.
    """
    base = muted_colour(rng, value_range=(60, 200))
    img = np.broadcast_to(base, (size, size, 3)).astype(np.float32).copy()
    for _ in range(int(rng.integers(1, 3))):  # low-frequency stripes
        theta = rng.uniform(0, np.pi)
        period = rng.uniform(*period_range)
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + phase)
        img += wave[..., None] * rng.uniform(8, 30) * _muted_direction(rng)
    for _ in range(int(rng.integers(3, 9))):  # soft blobs
        cy, cx = rng.uniform(0, size, 2)
        ry, rx = rng.uniform(min_blob_radius, size / 4, 2)
        dist = ((yy - cy) / ry)**2 + ((xx - cx) / rx)**2
        alpha = np.clip(1.5 - dist, 0, 1)[..., None] * rng.uniform(0.4, 0.9)
        img = img * (1 - alpha) + muted_colour(rng, value_range=(40, 215)) * alpha
    img += rng.normal(0, rng.uniform(4, 10), img.shape).astype(np.float32)
    return img


def muted_colour(rng: np.random.Generator,
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


def rotated_frame(cy: float, cx: float, theta: float, yy: np.ndarray,
                  xx: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (u, v) in a frame centred on (cy, cx), u along angle ``theta``."""
    cos, sin = np.cos(theta), np.sin(theta)
    dx, dy = xx - cx, yy - cy
    return dx * cos + dy * sin, -dx * sin + dy * cos


def object_masks(cy: float, cx: float, theta: float, a: float, b: float, r: float,
                 yy: np.ndarray, xx: np.ndarray):
    """Body ellipse and head disc (at the tip of the major axis) plus frame coordinates.

    Returns:
        tuple: ``(object, head, (u, v), (hu, hv))``: boolean masks of the whole object and
        of its head, and each pixel's coordinates in the body's and the head's frame.
    """
    u, v = rotated_frame(cy, cx, theta, yy, xx)
    body = (u / a)**2 + (v / b)**2 <= 1.0
    hu, hv = u - a, v  # head centred on the tip of the body
    head = hu * hu + hv * hv <= r * r
    return body | head, head, (u, v), (hu, hv)


def shared_body_rgb(u: np.ndarray, v: np.ndarray, tint_rgb: np.ndarray, body_tint: float,
                    shade: float) -> np.ndarray:
    """Body colour: muted base with ``body_tint`` of ``tint_rgb``, fine checker in (u, v)."""
    checker = (np.floor(u / _BODY_CHECKER_HALF_PERIOD) +
               np.floor(v / _BODY_CHECKER_HALF_PERIOD)) % 2
    body_base = BODY_RGB * (1 - body_tint) + tint_rgb * body_tint
    return (body_base * shade)[None, None] + (
        (checker - 0.5) * 2 * _BODY_CHECKER_AMPLITUDE)[..., None]


def paint_object(rng: np.random.Generator, img: np.ndarray, obj: np.ndarray,
                 head: np.ndarray, uv: Tuple[np.ndarray, np.ndarray],
                 head_uv: Tuple[np.ndarray, np.ndarray], cls: int,
                 body_tint: float) -> np.ndarray:
    """Paint the body and the head of one object of class ``cls`` into ``img`` in place.

    Returns:
        np.ndarray: The body mask (``obj`` without the head).
    """
    _, colour, texture = HEAD_SPECS[cls - 1]
    body = obj & ~head
    # Body: muted colour with a faint class tint, fine checker in the object's frame,
    # per-object shade.
    shade = rng.uniform(0.85, 1.15)
    body_rgb = shared_body_rgb(uv[0], uv[1], np.array(colour, np.float32), body_tint, shade)
    img[body] = body_rgb[body]
    # Head: class colour (small jitter), class texture (full vs 55% shade).
    jitter = rng.uniform(0.9, 1.1)
    head_colour = np.clip(np.array(colour, np.float32) * jitter, 0, 255)
    pattern = _head_texture(texture, head_uv[0], head_uv[1])
    head_rgb = head_colour[None, None] * (0.55 + 0.45 * pattern)[..., None]
    img[head] = head_rgb[head]
    return body


def border_band(label: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` px of a boundary between two different labels."""
    size = 2 * width + 1
    kernel = np.ones((size, size), np.uint8)
    local_max = cv2.dilate(label, kernel, borderType=cv2.BORDER_REPLICATE)
    local_min = cv2.erode(label, kernel, borderType=cv2.BORDER_REPLICATE)
    return local_max != local_min


def finish_maps(img: np.ndarray, label: np.ndarray, part: np.ndarray,
                border_width: int):
    """Clip the image to uint8, mark the border band 255 and list the classes present."""
    img = np.clip(img, 0, 255).astype(np.uint8)
    band = border_band(label, border_width)
    label[band] = 255
    part[band] = PART_IGNORE
    labels = sorted(int(c) for c in np.unique(label) if 0 < c < 255)
    return img, label, part, labels


# ------------------------------------------------------------------------------ writing
def _write_png(path: str, array: np.ndarray, palette: Optional[List[int]]) -> None:
    if palette is None:
        Image.fromarray(array, mode='L').save(path)
    else:
        image = Image.fromarray(array, mode='P')
        image.putpalette(palette)
        image.save(path)


#: Render callback of :func:`write_voc_dataset`: ``(split, index) -> (img, label, part,
#: labels)``.
RenderFn = Callable[[str, int], Tuple[np.ndarray, np.ndarray, np.ndarray, List[int]]]


def write_voc_dataset(out_dir: str, splits: Mapping[str, int], render: RenderFn,
                      jpeg_quality: int, progress: bool = False) -> None:
    """Render every image of ``splits`` and write the VOC layout under ``out_dir``.

    Writes ``JPEGImages``, ``SegmentationClass`` (VOC palette), ``SegmentationPart``,
    ``ImageSets/Segmentation/{split}.txt`` and ``cls_labels.json``; ``meta.json`` is the
    caller's.

    Args:
        out_dir (str): Output directory (created; existing files are overwritten).
        splits (Mapping[str, int]): Number of images per split, in writing order.
        render (RenderFn): Draws image ``index`` of ``split``.
        jpeg_quality (int): JPEG quality of the images.
        progress (bool): Show a progress bar. Defaults to False.
    """
    dirs = {name: osp.join(out_dir, name) for name in (
        'JPEGImages', 'SegmentationClass', 'SegmentationPart', 'ImageSets/Segmentation')}
    for path in dirs.values():
        os.makedirs(path, exist_ok=True)
    png_palette = flat_png_palette()

    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(sum(splits.values()))
    cls_labels: Dict[str, List[int]] = {}
    for split, count in splits.items():
        ids = []
        for index in range(count):
            img_id = f'{split}_{index:05d}'
            img, label, part, labels = render(split, index)
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


def write_meta(out_dir: str, meta: Mapping) -> None:
    """Write ``meta`` to ``{out_dir}/meta.json`` (indented, trailing newline)."""
    with open(osp.join(out_dir, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=2)
        f.write('\n')


def part_map_meta() -> Dict:
    """The ``part_map`` entry of ``meta.json``: where the part maps are, what values mean."""
    return dict(
        dir='SegmentationPart',
        values={
            str(PART_BACKGROUND): 'background',
            str(PART_DISCRIMINATIVE): 'discriminative part (class-specific head)',
            str(PART_BODY): 'body (muted; faint class tint, see generator.body_tint)',
            str(PART_IGNORE): 'ignore (border band)',
        })


def heads_meta(num_classes: int) -> Dict:
    """The ``heads`` entry of ``meta.json``: each class's head colour and texture."""
    return {spec[0]: dict(rgb=list(spec[1]), texture=spec[2])
            for spec in HEAD_SPECS[:num_classes]}


# --------------------------------------------------------------------- saliency stand-in
#: Folder of :func:`write_saliency_stand_in` under the data root.
SALIENCY_STAND_IN_DIR = 'SaliencyStandIn'


def saliency_stand_in(label: np.ndarray, rng: np.random.Generator, blur_sigma: float = 2.0,
                      noise: float = 0.15, noise_sigma: float = 6.0) -> np.ndarray:
    """A STAND-IN for an off-the-shelf salient-object detector's map of one image.

    No saliency detector can run here, so the ground-truth objects are degraded the way a
    detector's output is: the object mask (classes and their border band) is blurred, and
    smooth random noise (blurred Gaussian noise, standard deviation ``noise``) adds blotchy
    false positives and holes. It is derived from the ground truth, so it is an optimistic
    cue: results with it say that the saliency route runs, not how a real detector does.

    Args:
        label (np.ndarray): ``[H, W]`` uint8 ground truth (0 background, 1..C, 255 band).
        rng (np.random.Generator): the image's random stream.
        blur_sigma (float): Gaussian blur of the mask, in pixels.
        noise (float): amplitude of the noise (after its blur, rescaled to this std).
        noise_sigma (float): spatial scale of the noise, in pixels.

    Returns:
        np.ndarray: ``[H, W]`` uint8 saliency, 0..255.
    """
    mask = (label > 0).astype(np.float32)  # the 255 band lies on object boundaries
    sal = cv2.GaussianBlur(mask, (0, 0), blur_sigma, borderType=cv2.BORDER_REPLICATE)
    field = cv2.GaussianBlur(rng.standard_normal(label.shape).astype(np.float32), (0, 0),
                             noise_sigma, borderType=cv2.BORDER_REPLICATE)
    field *= noise / max(float(field.std()), 1e-6)
    return np.clip(np.rint((sal + field) * 255.0), 0, 255).astype(np.uint8)


def write_saliency_stand_in(root: str, seed: int = 0, blur_sigma: float = 2.0,
                            noise: float = 0.15, noise_sigma: float = 6.0) -> int:
    """Write :func:`saliency_stand_in` maps ``{root}/SaliencyStandIn/{id}.png`` (grey) for
    every ``{root}/SegmentationClass/{id}.png`` of a generated data set.

    The maps are a pure function of the masks and ``seed``; nothing else under ``root``
    changes. Use them as ``pseudo_cfg.saliency.dir`` (docs/pseudo_labels.md).

    Returns:
        int: the number of maps written.

    Raises:
        FileNotFoundError: ``root`` has no ``SegmentationClass`` folder.
    """
    masks = osp.join(root, 'SegmentationClass')
    if not osp.isdir(masks):
        raise FileNotFoundError(f'{masks}: no such folder (generate the data set first)')
    out_dir = osp.join(root, SALIENCY_STAND_IN_DIR)
    os.makedirs(out_dir, exist_ok=True)
    names = sorted(n for n in os.listdir(masks) if n.endswith('.png'))
    for index, name in enumerate(names):
        with Image.open(osp.join(masks, name)) as img:
            label = np.array(img)
        rng = np.random.default_rng([seed, index])
        _write_png(osp.join(out_dir, name),
                   saliency_stand_in(label, rng, blur_sigma, noise, noise_sigma), None)
    return len(names)
