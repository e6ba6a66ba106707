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
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence

import numpy as np

from ...utils.io import TEMP_SUFFIX, atomic_write, write_text_atomic
# The json and mask halves live in their own modules; their public names stay importable
# from here (the converter's one entry point).
from .coco_json import (BACKGROUND_INDEX, CATEGORY_TO_CLASS, COCO_CATEGORY_IDS,
                        COCO_CLASSES, SPLIT_DIRS, AnnRecord, CocoFormatError,
                        index_instances, load_instances)
from .coco_masks import ImageProblem, annotation_to_rle, build_label_map, image_labels

__all__ = [
    'AnnRecord', 'BACKGROUND_INDEX', 'CATEGORY_TO_CLASS', 'COCO_CATEGORY_IDS', 'COCO_CLASSES',
    'CocoFormatError', 'ImageProblem', 'ImageResult', 'ImageTask', 'SPLIT_DIRS',
    'SplitReport', 'annotation_to_rle', 'build_label_map', 'convert_coco2014',
    'convert_image', 'convert_split', 'image_labels', 'index_instances',
    'link_image_folder', 'load_instances', 'remove_stale_temporaries', 'write_png_atomic'
]



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
        raise ImageProblem(f'image file not found: {path}')
    try:
        with Image.open(path) as img:  # reads the header only
            real_w, real_h = img.size
    except OSError as err:
        raise ImageProblem(f'cannot read image {path}: {err}') from err
    if (real_w, real_h) != (width, height):
        raise ImageProblem(f'image {path} is {real_w}x{real_h} (WxH) but the json '
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
    except ImageProblem as err:
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
