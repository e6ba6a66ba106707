# Copyright (c) mmseg-sbce contributors.
"""COCO 2014 instances json: the 80-class map, reading and validating the file.

Structural problems (missing fields, annotations of unknown images, category ids outside
the 80-class map) raise :class:`CocoFormatError` before the converter writes anything; see
:mod:`.coco2014` for the whole conversion.
"""
import json
import os.path as osp
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

from ..coco_cls import COCO_CLASSES as COCO_CLS_NAMES

COCO_CATEGORY_IDS: Tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77,
    78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90)
"""The 80 COCO 2014 category ids, sorted; position i (0-based) is class id i + 1."""

# The data set's METAINFO is the single definition of the class names.
COCO_CLASSES: Tuple[str, ...] = tuple(COCO_CLS_NAMES)
"""The 80 foreground class names in class-id order (class id 1 is ``'person'``)."""

CATEGORY_TO_CLASS: Dict[int, int] = {
    cat_id: index + 1 for index, cat_id in enumerate(COCO_CATEGORY_IDS)}
"""COCO category id -> contiguous class id in 1..80."""

BACKGROUND_INDEX = 0

SPLIT_DIRS: Dict[str, str] = {'train': 'train2014', 'val': 'val2014'}
"""Split name -> image folder / mask folder / annotation-file suffix."""

_MAX_LISTED = 5  # ids quoted per error message


class CocoFormatError(ValueError):
    """The annotation json is not a usable COCO instances file; names the file and ids."""



# --------------------------------------------------------------------------- records
@dataclass
class AnnRecord:
    """The part of one COCO annotation a worker needs.

    Attributes:
        ann_id (int): COCO annotation id.
        class_id (int): Contiguous class id in 1..80.
        iscrowd (bool): Whether the annotation is a crowd region.
        segmentation (Any): Polygons (list of coordinate lists) or an RLE dict.
    """
    ann_id: int
    class_id: int
    iscrowd: bool
    segmentation: Any


# ------------------------------------------------------------------ json validation
def _quote(items: Sequence[Any]) -> str:
    shown = ', '.join(str(item) for item in items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f', ... ({more} more)' if more > 0 else '')


def _require(record: Any, keys: Sequence[str], what: str, json_name: str,
             index: int) -> None:
    if not isinstance(record, dict):
        raise CocoFormatError(f'{json_name}: {what} #{index} is not an object')
    missing = [key for key in keys if key not in record]
    if missing:
        ident = record.get('id', f'#{index}')
        raise CocoFormatError(
            f'{json_name}: {what} {ident} is missing field(s) {missing}')


def index_instances(data: dict, json_name: str = '<json>',
                    ) -> Tuple[Dict[int, dict], Dict[int, List[AnnRecord]]]:
    """Validate a loaded COCO instances json and group its annotations by image.

    Args:
        data (dict): The parsed json.
        json_name (str): Name used in error messages (the file path).

    Returns:
        tuple: ``images`` (image id -> image record with ``stem`` added) and
        ``anns_by_image`` (image id -> list of :class:`AnnRecord`, in json order).

    Raises:
        CocoFormatError: Missing top-level or per-record fields, duplicate ids, file names
            that are not bare names, categories outside the 80-class map (or named
            differently), annotations of images not in ``images``, annotation category ids
            not in the map.
    """
    if not isinstance(data, dict):
        raise CocoFormatError(f'{json_name}: top level is not a JSON object')
    missing = [key for key in ('images', 'annotations', 'categories') if key not in data]
    if missing:
        raise CocoFormatError(
            f'{json_name}: missing top-level field(s) {missing}; expected a COCO '
            'instances file such as annotations/instances_train2014.json')

    # Categories: a subset of the 80 standard ones, with the standard names.
    bad_cats = []
    for i, cat in enumerate(data['categories']):
        _require(cat, ('id', 'name'), 'category', json_name, i)
        class_id = CATEGORY_TO_CLASS.get(cat['id'])
        if class_id is None or COCO_CLASSES[class_id - 1] != cat['name']:
            bad_cats.append(f"{cat['id']} ({cat['name']!r})")
    if bad_cats:
        raise CocoFormatError(
            f'{json_name}: categories outside the 80-class COCO map (id (name)): '
            f'{_quote(bad_cats)}')
    declared_cats = {cat['id'] for cat in data['categories']}

    images: Dict[int, dict] = {}
    stems = set()
    for i, img in enumerate(data['images']):
        _require(img, ('id', 'file_name', 'width', 'height'), 'image', json_name, i)
        if img['id'] in images:
            raise CocoFormatError(f"{json_name}: duplicate image id {img['id']}")
        name = img['file_name']
        if not isinstance(name, str) or osp.basename(name) != name or '\\' in name:
            raise CocoFormatError(
                f"{json_name}: image {img['id']} file_name {name!r} is not a bare file name")
        for key in ('width', 'height'):
            value = img[key]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise CocoFormatError(
                    f"{json_name}: image {img['id']} has invalid {key} {value!r}")
        stem = osp.splitext(name)[0]
        if stem in stems:
            raise CocoFormatError(f'{json_name}: two images share the file stem {stem!r}')
        stems.add(stem)
        images[img['id']] = dict(img, stem=stem)

    anns_by_image: Dict[int, List[AnnRecord]] = {}
    orphans, bad_class = [], []
    ann_ids = set()
    for i, ann in enumerate(data['annotations']):
        _require(ann, ('id', 'image_id', 'category_id', 'segmentation', 'iscrowd'),
                 'annotation', json_name, i)
        if ann['id'] in ann_ids:
            raise CocoFormatError(f"{json_name}: duplicate annotation id {ann['id']}")
        ann_ids.add(ann['id'])
        if ann['image_id'] not in images:
            orphans.append(f"{ann['id']} -> image {ann['image_id']}")
            continue
        if ann['category_id'] not in declared_cats:  # declared ones are all in the map
            bad_class.append(f"{ann['id']} -> category {ann['category_id']}")
            continue
        if ann['iscrowd'] not in (0, 1):  # True/False compare equal to 1/0
            raise CocoFormatError(
                f"{json_name}: annotation {ann['id']} has iscrowd={ann['iscrowd']!r}")
        anns_by_image.setdefault(ann['image_id'], []).append(
            AnnRecord(ann_id=ann['id'], class_id=CATEGORY_TO_CLASS[ann['category_id']],
                      iscrowd=bool(ann['iscrowd']), segmentation=ann['segmentation']))
    if orphans:
        raise CocoFormatError(
            f"{json_name}: {len(orphans)} annotation(s) refer to image ids not in 'images' "
            f'(annotation -> image): {_quote(orphans)}')
    if bad_class:
        raise CocoFormatError(
            f'{json_name}: {len(bad_class)} annotation(s) have a category id outside the '
            f'80-class map or not declared in categories: {_quote(bad_class)}')
    return images, anns_by_image


def load_instances(json_path: str) -> dict:
    """Read a COCO instances json.

    Raises:
        CocoFormatError: The file is missing or not valid JSON.
    """
    if not osp.isfile(json_path):
        raise CocoFormatError(f'annotation file not found: {json_path}')
    try:
        with open(json_path, encoding='utf-8') as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise CocoFormatError(f'{json_path}: not valid JSON ({err})') from err
