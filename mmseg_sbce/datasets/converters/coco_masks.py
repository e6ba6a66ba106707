# Copyright (c) mmseg-sbce contributors.
"""Rasterising COCO segmentations (polygons, RLEs) into one semantic label map per image.

The overlap and crowd rules are documented in :mod:`.coco2014` and ``docs/data.md``.
"""
import warnings
from typing import Any, Iterable, List, Optional, Tuple

import numpy as np

from ...utils.io import IGNORE_INDEX
from .coco_json import BACKGROUND_INDEX, AnnRecord


class ImageProblem(Exception):
    """A problem local to one image: the converter skips the image and reports it."""


def annotation_to_rle(segmentation: Any, height: int,
                      width: int) -> Tuple[Optional[dict], int]:
    """Turn one COCO segmentation into a pycocotools RLE of size ``height x width``.

    Args:
        segmentation: Polygons (list of flat ``[x1, y1, x2, y2, ...]`` lists), an
            uncompressed RLE (``counts`` a list) or a compressed RLE (``counts`` a string).
        height (int): Image height.
        width (int): Image width.

    Returns:
        tuple: The RLE (None when every polygon is degenerate) and the number of polygons
        with fewer than 3 points that were dropped (they have no area; pycocotools would
        read a 2-point polygon as a bounding box).

    Raises:
        ImageProblem: A segmentation that cannot be decoded into this image's mask.
    """
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        polygons, dropped = [], 0
        for poly in segmentation:
            if not isinstance(poly, list) or len(poly) % 2 or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in poly):
                raise ImageProblem(f'malformed polygon {str(poly)[:60]}')
            if len(poly) < 6:
                dropped += 1
                continue
            polygons.append([float(v) for v in poly])
        if not polygons:
            if not segmentation:
                raise ImageProblem('empty segmentation')
            return None, dropped
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width)), dropped
    if isinstance(segmentation, dict) and {'counts', 'size'} <= set(segmentation):
        size = list(segmentation['size'])
        if size != [height, width]:
            raise ImageProblem(f'RLE size {size} differs from the image size '
                                f'[{height}, {width}]')
        counts = segmentation['counts']
        if isinstance(counts, list):
            if not all(isinstance(c, int) and c >= 0 for c in counts):
                raise ImageProblem('RLE counts are not non-negative integers')
            if sum(counts) != height * width:
                raise ImageProblem(
                    f'RLE counts sum to {sum(counts)}, expected {height * width}')
            return mask_utils.frPyObjects(segmentation, height, width), 0
        if isinstance(counts, (str, bytes)):
            return dict(size=size, counts=counts), 0
    raise ImageProblem(f'unsupported segmentation {str(segmentation)[:60]}')


def build_label_map(height: int, width: int,
                    anns: Iterable[AnnRecord]) -> Tuple[np.ndarray, int]:
    """Rasterise the annotations of one image into a semantic label map.

    Crowd regions are set to 255 first; non-crowd instances are then painted from the
    largest to the smallest area (ties: lower annotation id first), so smaller instances
    end up on top and any instance overrides a crowd region.

    Args:
        height (int): Image height.
        width (int): Image width.
        anns (Iterable[AnnRecord]): The image's annotations.

    Returns:
        tuple: ``uint8`` array ``[height, width]`` (0 background, 1..80, 255 ignore) and
        the number of degenerate polygons dropped.

    Raises:
        ImageProblem: A segmentation that cannot be decoded (see
            :func:`annotation_to_rle`).
    """
    from pycocotools import mask as mask_utils

    label = np.full((height, width), BACKGROUND_INDEX, dtype=np.uint8)
    crowd, things, dropped = [], [], 0
    for ann in anns:
        rle, n_dropped = annotation_to_rle(ann.segmentation, height, width)
        dropped += n_dropped
        if rle is None:
            continue
        if ann.iscrowd:
            crowd.append(rle)
        else:
            # The area comes from the RLE itself: no mask is decoded to sort.
            things.append((-int(mask_utils.area(rle)), ann.ann_id, ann.class_id, rle))

    # Decode one mask at a time: memory stays at one label map plus one mask.
    try:
        with warnings.catch_warnings():
            # pycocotools 2.0.x + numpy 2: a harmless warning about __array__(copy=...).
            warnings.filterwarnings('ignore', message='__array__ implementation',
                                    category=DeprecationWarning)
            for rle in crowd:
                label[mask_utils.decode(rle) > 0] = IGNORE_INDEX
            for _, _, class_id, rle in sorted(things, key=lambda t: (t[0], t[1])):
                label[mask_utils.decode(rle) > 0] = class_id
    except (ValueError, TypeError) as err:  # e.g. an inconsistent compressed RLE
        raise ImageProblem(f'pycocotools cannot decode a segmentation: {err}') from err
    return label, dropped


def image_labels(anns: Iterable[AnnRecord]) -> List[int]:
    """Sorted class ids (1..80) of all annotations of an image, crowd included."""
    return sorted({ann.class_id for ann in anns})
