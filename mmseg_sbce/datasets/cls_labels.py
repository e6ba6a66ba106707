# Copyright (c) mmseg-sbce contributors.
"""The image-level label file shared by every data set of this plugin.

Format (UTF-8 JSON): one object mapping each image id (file stem) to the **sorted** list
of the foreground class ids present in the image, as they appear in the masks (1..C; 0 is
background, 255 ignore; neither is ever listed)::

    {
      "2007_000032": [1, 15],
      "2007_000039": [20]
    }

The demo generator, the COCO converter and :func:`labels_from_mask` all produce it;
``BaseWSSSDataset(label_file=...)`` reads it.
"""
import json
from typing import Dict, List, Mapping, Sequence

import numpy as np

from ..utils.errors import InputError


def load_cls_labels(path: str, num_classes: int) -> Dict[str, List[int]]:
    """Read and validate a label file.

    Args:
        path (str): The JSON file.
        num_classes (int): Number of foreground classes C; ids must lie in 1..C.

    Returns:
        dict[str, list[int]]: Image id -> sorted foreground class ids (1..C).
    """
    try:
        with open(path, encoding='utf-8') as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f'image-level label file {path} not found') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f'image-level label file {path} is not valid JSON: {e}') from None
    if not isinstance(raw, dict):
        raise InputError(f'image-level label file {path} must hold a JSON object '
                         f'(image id -> list of class ids), got {type(raw).__name__}')
    labels = {}
    for img_id, ids in raw.items():
        if not isinstance(ids, list) or not all(
                isinstance(c, int) and not isinstance(c, bool) for c in ids):
            raise InputError(f'{path}: labels of {img_id!r} must be a list of integers, '
                             f'got {ids!r}')
        bad = [c for c in ids if not 1 <= c <= num_classes]
        if bad:
            raise InputError(f'{path}: image {img_id!r} lists class ids {bad} outside '
                             f'1..{num_classes} (0 = background and 255 = ignore are '
                             'never listed)')
        labels[img_id] = sorted(set(ids))
    return labels


def dump_cls_labels(labels: Mapping[str, Sequence[int]], path: str) -> None:
    """Write a label file (one image per line, keys sorted, ids sorted).

    Args:
        labels (Mapping[str, Sequence[int]]): Image id -> foreground class ids (1..C).
        path (str): Output JSON file.
    """
    lines = [
        f'  {json.dumps(str(img_id))}: {json.dumps(sorted(int(c) for c in set(ids)))}'
        for img_id, ids in sorted(labels.items())
    ]
    with open(path, 'w', encoding='utf-8') as f:
        f.write('{\n' + ',\n'.join(lines) + ('\n' if lines else '') + '}\n')


def labels_from_mask(mask: np.ndarray, num_classes: int, ignore_index: int = 255,
                     name: str = 'mask') -> List[int]:
    """Foreground class ids (1..C) present in a label map; validates its values.

    Args:
        mask (np.ndarray): 2-D integer label map (0 background, 1..C, ``ignore_index``).
        num_classes (int): Number of foreground classes C.
        ignore_index (int): Value of unlabelled pixels. Defaults to 255.
        name (str): How to name the map in error messages (e.g. its file).

    Returns:
        list[int]: Sorted class ids present, background and ignore excluded.
    """
    if mask.ndim != 2:
        raise InputError(f'{name}: expected a single-channel label map, got shape '
                         f'{mask.shape} (an RGB-coloured mask instead of palette indices?)')
    values = np.unique(mask)
    bad = [int(v) for v in values if not (0 <= v <= num_classes or v == ignore_index)]
    if bad:
        raise InputError(f'{name}: values {bad[:10]} are not class ids (expected 0 '
                         f'background, 1..{num_classes} or {ignore_index} ignore)')
    return [int(v) for v in values if 1 <= v <= num_classes]
