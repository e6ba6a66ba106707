# Copyright (c) mmseg-sbce contributors.
"""MS-COCO 2014 instance annotations -> per-image semantic label maps and image-level labels.

Output layout under ``out_dir`` (read by the COCO data set class)::

    SegmentationClass/train2014/<stem>.png   uint8, PIL mode 'L': 0 background, 1..80, 255
    SegmentationClass/val2014/<stem>.png
    ImageSets/train.txt, ImageSets/val.txt   one stem a line, e.g. COCO_train2014_000000000009
    cls_labels_train.json, cls_labels_val.json   {stem: sorted class ids in 1..80}
    coco2014_train_report.json, ...          counts, excluded and skipped images
    train2014 -> COCO_ROOT/train2014         symlink (optional); images are not copied

Rules (one of each, documented in ``docs/data.md``):

* Class ids: the 80 COCO categories sorted by category id map to 1..80
  (:data:`COCO_CATEGORY_IDS`, :data:`COCO_CLASSES`); 0 is background.
* Overlap: instances are painted from the largest to the smallest rasterised area, so a
  smaller instance is drawn over a larger one; equal areas are painted by annotation id,
  the higher id on top.
* Crowd regions (``iscrowd=1``) become 255 (ignore) unless a non-crowd instance covers
  the pixel, in which case that instance's class wins.
* Image-level labels are the classes of all annotations of the image, crowd included (a
  crowd of people is visibly "person"; a negative label there would be wrong).
* Images without any non-crowd annotation are excluded from the split lists, the labels
  and the masks (``keep_crowd_only=True`` keeps crowd-only images); their counts are
  reported.

Structural problems of the json (missing fields, annotations of unknown images, category
ids outside the 80-class map) raise :class:`CocoFormatError` before anything is written.
Problems local to one image (a segmentation pycocotools cannot decode, an RLE of the wrong
size, with ``check_images`` a missing image file or one whose real size differs from the
declared one) skip that image and are listed in the report: never a silently wrong mask.
"""
import gc
import json
import multiprocessing
import os
import os.path as osp
import warnings
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence,
                    Tuple)

import numpy as np

from ...utils.io import IGNORE_INDEX, TEMP_SUFFIX, atomic_write, write_text_atomic
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


class _ImageProblem(Exception):
    """A problem local to one image: the image is skipped and reported."""


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


@dataclass
class ImageTask:
    """Everything needed to write one label PNG (sent to a worker, nothing more).

    Attributes:
        stem (str): File stem of the image, also the id in the split lists.
        height (int): Declared image height.
        width (int): Declared image width.
        anns (list[AnnRecord]): The annotations of this image only.
        out_path (str): Path of the label PNG to write.
        img_path (str, optional): Image file to check against the declared size.
        overwrite (bool): Rewrite an existing PNG instead of keeping it.
    """
    stem: str
    height: int
    width: int
    anns: List[AnnRecord]
    out_path: str
    img_path: Optional[str] = None
    overwrite: bool = False


@dataclass
class ImageResult:
    """What a worker reports for one image.

    Attributes:
        stem (str): Image stem.
        status (str): ``'written'``, ``'exists'`` (kept from an earlier run) or ``'skipped'``.
        reason (str): Why the image was skipped (empty otherwise).
        degenerate_polygons (int): Polygons with fewer than 3 points that were dropped.
    """
    stem: str
    status: str
    reason: str = ''
    degenerate_polygons: int = 0


@dataclass
class SplitReport:
    """Summary of converting one split.

    Attributes:
        split (str): ``'train'`` or ``'val'``.
        num_images (int): Images listed in the json.
        kept (list[str]): Stems written to the split list (sorted).
        no_annotations (list[str]): Images without any annotation (excluded).
        crowd_only (list[str]): Images whose only annotations are crowd regions
            (excluded unless ``keep_crowd_only``).
        skipped (dict[str, str]): Images skipped for a local problem, with the reason.
        num_written (int): PNGs written by this run.
        num_existing (int): PNGs kept from an earlier run (resume).
        degenerate_polygons (int): Polygons with fewer than 3 points dropped.
    """
    split: str
    num_images: int = 0
    kept: List[str] = field(default_factory=list)
    no_annotations: List[str] = field(default_factory=list)
    crowd_only: List[str] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)
    num_written: int = 0
    num_existing: int = 0
    degenerate_polygons: int = 0

    def summary(self) -> str:
        """One human-readable paragraph with the counts."""
        lines = [
            f'[{self.split}] {self.num_images} images in the json, {len(self.kept)} kept '
            f'({self.num_written} PNGs written, {self.num_existing} already present)',
            f'[{self.split}] excluded: {len(self.no_annotations)} without annotations, '
            f'{len(self.crowd_only)} with crowd annotations only',
        ]
        if self.degenerate_polygons:
            lines.append(f'[{self.split}] dropped {self.degenerate_polygons} degenerate '
                         'polygons (fewer than 3 points, no area)')
        if self.skipped:
            lines.append(f'[{self.split}] WARNING: skipped {len(self.skipped)} images:')
            lines += [f'  {stem}: {reason}' for stem, reason in sorted(self.skipped.items())]
        return '\n'.join(lines)

    def to_dict(self) -> dict:
        """JSON-serialisable form (written as ``coco2014_{split}_report.json``)."""
        return dict(
            split=self.split, num_images=self.num_images, num_kept=len(self.kept),
            num_written=self.num_written, num_existing=self.num_existing,
            degenerate_polygons=self.degenerate_polygons,
            no_annotations=self.no_annotations, crowd_only=self.crowd_only,
            skipped=self.skipped)


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


# ------------------------------------------------------------------- mask building
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
        _ImageProblem: A segmentation that cannot be decoded into this image's mask.
    """
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        polygons, dropped = [], 0
        for poly in segmentation:
            if not isinstance(poly, list) or len(poly) % 2 or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in poly):
                raise _ImageProblem(f'malformed polygon {str(poly)[:60]}')
            if len(poly) < 6:
                dropped += 1
                continue
            polygons.append([float(v) for v in poly])
        if not polygons:
            if not segmentation:
                raise _ImageProblem('empty segmentation')
            return None, dropped
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width)), dropped
    if isinstance(segmentation, dict) and {'counts', 'size'} <= set(segmentation):
        size = list(segmentation['size'])
        if size != [height, width]:
            raise _ImageProblem(f'RLE size {size} differs from the image size '
                                f'[{height}, {width}]')
        counts = segmentation['counts']
        if isinstance(counts, list):
            if not all(isinstance(c, int) and c >= 0 for c in counts):
                raise _ImageProblem('RLE counts are not non-negative integers')
            if sum(counts) != height * width:
                raise _ImageProblem(
                    f'RLE counts sum to {sum(counts)}, expected {height * width}')
            return mask_utils.frPyObjects(segmentation, height, width), 0
        if isinstance(counts, (str, bytes)):
            return dict(size=size, counts=counts), 0
    raise _ImageProblem(f'unsupported segmentation {str(segmentation)[:60]}')


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
        _ImageProblem: A segmentation that cannot be decoded (see
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
        raise _ImageProblem(f'pycocotools cannot decode a segmentation: {err}') from err
    return label, dropped


def image_labels(anns: Iterable[AnnRecord]) -> List[int]:
    """Sorted class ids (1..80) of all annotations of an image, crowd included."""
    return sorted({ann.class_id for ann in anns})


# ---------------------------------------------------------------------- atomic I/O
def write_png_atomic(path: str, label: np.ndarray) -> None:
    """Write ``label`` as a mode 'L' PNG under a temporary name, then rename it."""
    from PIL import Image
    atomic_write(path, lambda tmp: Image.fromarray(label, mode='L').save(tmp, format='PNG'))


def remove_stale_temporaries(directory: str) -> int:
    """Delete temporary files an interrupted run left in ``directory``; return the count."""
    if not osp.isdir(directory):
        return 0
    removed = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_file() and entry.name.startswith('.') and \
                    entry.name.endswith(TEMP_SUFFIX):
                os.remove(entry.path)
                removed += 1
    return removed


# ------------------------------------------------------------------------- workers
def _check_image_file(path: str, height: int, width: int) -> None:
    from PIL import Image
    if not osp.isfile(path):
        raise _ImageProblem(f'image file not found: {path}')
    try:
        with Image.open(path) as img:  # reads the header only
            real_w, real_h = img.size
    except OSError as err:
        raise _ImageProblem(f'cannot read image {path}: {err}') from err
    if (real_w, real_h) != (width, height):
        raise _ImageProblem(f'image {path} is {real_w}x{real_h} (WxH) but the json '
                            f'declares {width}x{height}')


def convert_image(task: ImageTask) -> ImageResult:
    """Write the label PNG of one image (the worker function; never raises for local
    problems, which come back as ``status='skipped'``)."""
    try:
        if task.img_path is not None:
            _check_image_file(task.img_path, task.height, task.width)
        if not task.overwrite and osp.exists(task.out_path):
            return ImageResult(task.stem, 'exists')
        label, dropped = build_label_map(task.height, task.width, task.anns)
        write_png_atomic(task.out_path, label)
        return ImageResult(task.stem, 'written', degenerate_polygons=dropped)
    except _ImageProblem as err:
        return ImageResult(task.stem, 'skipped', reason=str(err))


def _imap(func: Callable, tasks: Iterable, nproc: int, chunksize: int) -> Iterator:
    if nproc <= 1:
        yield from map(func, tasks)
        return
    # Forked workers share the parent's parsed json copy-on-write; freezing it keeps the
    # workers' garbage collector from touching (and so copying) those pages.
    gc.freeze()
    try:
        with multiprocessing.Pool(nproc) as pool:
            # imap with a small chunk: tasks are generated lazily, results stream back.
            yield from pool.imap(func, tasks, chunksize=chunksize)
    finally:
        gc.unfreeze()


# ------------------------------------------------------------------------ drivers
def convert_split(coco_root: str, out_dir: str, split: str, nproc: int = 1,
                  check_images: bool = False, keep_crowd_only: bool = False,
                  overwrite: bool = False, progress: bool = True,
                  chunksize: int = 16) -> SplitReport:
    """Convert one split (``'train'`` or ``'val'``) of COCO 2014.

    Reads ``{coco_root}/annotations/instances_{train,val}2014.json`` and writes the masks,
    then (only at the end, atomically) the split list, the image-level labels and the
    report. Existing PNGs are kept (resume) unless ``overwrite``.

    Args:
        coco_root (str): Folder holding ``annotations/`` (and the image folders).
        out_dir (str): Output root (the data set's ``data_root``).
        split (str): ``'train'`` or ``'val'``.
        nproc (int): Worker processes (1: no pool).
        check_images (bool): Read each image's header and skip images that are missing
            or whose size differs from the json.
        keep_crowd_only (bool): Keep images whose only annotations are crowd regions.
        overwrite (bool): Rewrite existing PNGs.
        progress (bool): Show a progress bar.
        chunksize (int): Images per task sent to a worker.

    Returns:
        SplitReport: Counts and the excluded and skipped images.

    Raises:
        CocoFormatError: The annotation json is missing or malformed (nothing is written).
    """
    if split not in SPLIT_DIRS:
        raise ValueError(f'unknown split {split!r}; expected one of {sorted(SPLIT_DIRS)}')
    folder = SPLIT_DIRS[split]
    json_path = osp.join(coco_root, 'annotations', f'instances_{folder}.json')
    images, anns_by_image = index_instances(load_instances(json_path), json_path)

    report = SplitReport(split=split, num_images=len(images))
    candidates = []
    for img_id, img in images.items():
        anns = anns_by_image.get(img_id, [])
        if not anns:
            report.no_annotations.append(img['stem'])
        elif all(ann.iscrowd for ann in anns) and not keep_crowd_only:
            report.crowd_only.append(img['stem'])
        else:
            candidates.append(img_id)
    report.no_annotations.sort()
    report.crowd_only.sort()

    mask_dir = osp.join(out_dir, 'SegmentationClass', folder)
    os.makedirs(mask_dir, exist_ok=True)
    os.makedirs(osp.join(out_dir, 'ImageSets'), exist_ok=True)
    remove_stale_temporaries(mask_dir)
    img_dir = osp.join(coco_root, folder)

    def tasks() -> Iterator[ImageTask]:
        for img_id in candidates:
            img = images[img_id]
            yield ImageTask(
                stem=img['stem'], height=img['height'], width=img['width'],
                anns=anns_by_image[img_id],
                out_path=osp.join(mask_dir, img['stem'] + '.png'),
                img_path=osp.join(img_dir, img['file_name']) if check_images else None,
                overwrite=overwrite)

    labels: Dict[str, List[int]] = {}
    stem_to_id = {images[img_id]['stem']: img_id for img_id in candidates}
    from tqdm import tqdm
    bar = tqdm(total=len(candidates), desc=f'COCO {split}', disable=not progress,
               unit='img')
    for result in _imap(convert_image, tasks(), nproc, chunksize):
        bar.update(1)
        report.degenerate_polygons += result.degenerate_polygons
        if result.status == 'skipped':
            report.skipped[result.stem] = result.reason
            continue
        if result.status == 'written':
            report.num_written += 1
        else:
            report.num_existing += 1
        labels[result.stem] = image_labels(anns_by_image[stem_to_id[result.stem]])
    bar.close()

    report.kept = sorted(labels)
    write_text_atomic(osp.join(out_dir, 'ImageSets', f'{split}.txt'),
                      ''.join(stem + '\n' for stem in report.kept))
    write_text_atomic(osp.join(out_dir, f'cls_labels_{split}.json'),
                      json.dumps({stem: labels[stem] for stem in report.kept}))
    write_text_atomic(osp.join(out_dir, f'coco2014_{split}_report.json'),
                      json.dumps(report.to_dict(), indent=1))
    return report


def link_image_folder(coco_root: str, out_dir: str, split: str) -> Optional[str]:
    """Symlink ``{out_dir}/{train,val}2014`` to the COCO image folder if it is absent.

    Returns:
        str, optional: The link created, or None (same folder, already present, no image
        folder in ``coco_root``).
    """
    folder = SPLIT_DIRS[split]
    src, dst = osp.join(coco_root, folder), osp.join(out_dir, folder)
    if osp.lexists(dst) or not osp.isdir(src) or \
            osp.realpath(coco_root) == osp.realpath(out_dir):
        return None
    os.symlink(osp.abspath(src), dst, target_is_directory=True)
    return dst


def convert_coco2014(coco_root: str, out_dir: str,
                     splits: Sequence[str] = ('train', 'val'), nproc: int = 1,
                     check_images: bool = False, keep_crowd_only: bool = False,
                     overwrite: bool = False, link_images: bool = True,
                     progress: bool = True,
                     log: Optional[Callable[[str], None]] = None) -> Dict[str, SplitReport]:
    """Convert the requested splits of COCO 2014 (see the module docstring for the layout).

    Args:
        coco_root (str): Folder with ``annotations/instances_{train,val}2014.json``.
        out_dir (str): Output root, usually ``data/coco2014``.
        splits (Sequence[str]): Any of ``'train'``, ``'val'``.
        nproc (int): Worker processes.
        check_images (bool): Check each image file's size against the json.
        keep_crowd_only (bool): Keep images with only crowd annotations.
        overwrite (bool): Rewrite existing PNGs.
        link_images (bool): Symlink the image folders into ``out_dir`` when absent.
        progress (bool): Show progress bars.
        log (Callable, optional): Called with each summary line (e.g. ``print``).

    Returns:
        dict[str, SplitReport]: One report per split.
    """
    log = log or (lambda message: None)
    os.makedirs(out_dir, exist_ok=True)
    reports = {}
    for split in splits:
        reports[split] = convert_split(
            coco_root, out_dir, split, nproc=nproc, check_images=check_images,
            keep_crowd_only=keep_crowd_only, overwrite=overwrite, progress=progress)
        log(reports[split].summary())
        if link_images:
            link = link_image_folder(coco_root, out_dir, split)
            if link is not None:
                log(f'[{split}] linked {link} -> {osp.realpath(link)}')
    return reports
