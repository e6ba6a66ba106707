# Copyright (c) mmseg-sbce contributors.
"""Pseudo-label quality: confusion-matrix mIoU, background-threshold sweep, reports.

Counting rules (the only definition in this project; the pseudo-label runner follows it):

* Classes: ``N = C + 1`` ids, ``0`` background and ``1..C`` the foreground classes.
* Ground truth 255 is ignored: such pixels are not counted at all.
* Prediction 255 ("unsure") on a pixel whose ground truth is ``g`` counts as a **miss**
  of ``g``: it enlarges ``g``'s union (a false negative) and is a false positive of no
  class. The confusion matrix therefore has ``N + 1`` columns; the last one holds these
  pixels. A prediction file that is missing (``allow_missing=True``) counts as all-255.
* ``IoU_c = TP_c / (GT_c + Pred_c - TP_c)`` with ``GT_c`` the row sum (unsure column
  included) and ``Pred_c`` the column sum. A class absent from both ground truth and
  prediction has no IoU (NaN) and is left out of the mean; mIoU is the mean over the
  remaining classes.

Ground truth is read only to evaluate. The threshold sweep reports the best background
threshold next to the adaptive result; nothing here writes a threshold anywhere that
training reads (choosing it with ground truth is the paper's "best threshold" mode and must
be an explicit user decision).
"""
import json
import os
import os.path as osp
from functools import partial
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

# read_split is part of this module's interface (eval_pseudo reads the ids with it).
from ..utils.io import (IGNORE_INDEX, check_not_symlink, read_label_png,  # noqa: F401
                        read_split, write_text_atomic)
from ..utils.parallel import worker_pool

VOC_CLASSES = ('background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
               'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person',
               'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')

IGNORE_RULE = ('ground-truth 255 ignored; predicted 255 on a labelled pixel counts as a miss '
               'of its ground-truth class (false negative, no false positive); classes '
               'absent from ground truth and prediction are left out of the mean')


# ------------------------------------------------------------------------- core counting
def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """Confusion matrix of one label map, by ``np.bincount``.

    Args:
        pred (np.ndarray): predicted ids ``0..N-1`` or 255.
        gt (np.ndarray): ground-truth ids ``0..N-1`` or 255, same shape.
        num_classes (int): ``N`` (background included).

    Returns:
        np.ndarray: ``[N, N + 1]`` int64, rows ground truth, columns prediction, the last
        column predicted 255.
    """
    if pred.shape != gt.shape:
        raise ValueError(f'prediction {pred.shape} and ground truth {gt.shape} differ in shape')
    n = int(num_classes)
    gt = gt.ravel()
    pred = pred.ravel()
    valid = gt != IGNORE_INDEX
    if not valid.all():
        gt = gt[valid]
        pred = pred[valid]
    gt = gt.astype(np.int64, copy=False)
    pred = pred.astype(np.int64, copy=True)
    pred[pred == IGNORE_INDEX] = n
    if gt.size and (gt.max() >= n or gt.min() < 0):
        raise ValueError(f'ground truth holds ids outside 0..{n - 1} and 255: '
                         f'{np.unique(gt[(gt >= n) | (gt < 0)]).tolist()}')
    if pred.size and (pred.max() > n or pred.min() < 0):
        raise ValueError(f'prediction holds ids outside 0..{n - 1} and 255: '
                         f'{np.unique(pred[(pred > n) | (pred < 0)]).tolist()}')
    return np.bincount(gt * (n + 1) + pred, minlength=n * (n + 1)).reshape(n, n + 1)


def metrics_from_confusion(cm: np.ndarray) -> Dict[str, Any]:
    """IoU per class, mIoU, pixel accuracy and unsure rate of a ``[N, N + 1]`` matrix.

    Returns:
        dict: ``iou`` (``[N]`` float, NaN where undefined), ``miou`` (NaN-mean),
        ``pixel_acc`` (correct / labelled pixels), ``unsure_fraction`` (predicted 255 /
        labelled pixels), ``num_pixels``.
    """
    cm = np.asarray(cm, dtype=np.float64)
    n = cm.shape[0]
    tp = np.diag(cm[:, :n])
    gt_count = cm.sum(axis=1)
    pred_count = cm[:, :n].sum(axis=0)
    union = gt_count + pred_count - tp
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = np.where(union > 0, tp / union, np.nan)
    total = cm.sum()
    return dict(
        iou=iou,
        miou=float(np.nanmean(iou)) if np.isfinite(iou).any() else float('nan'),
        pixel_acc=float(tp.sum() / total) if total else float('nan'),
        unsure_fraction=float(cm[:, n].sum() / total) if total else 0.0,
        num_pixels=int(total))


def class_names_for(num_classes: int) -> List[str]:
    """VOC names for 21 classes, else ``background, class_1, ...``."""
    if num_classes == len(VOC_CLASSES):
        return list(VOC_CLASSES)
    return ['background'] + [f'class_{i}' for i in range(1, num_classes)]


# ---------------------------------------------------------------------- parallel helpers
def _map(func, items: Sequence, workers: Optional[int]) -> Iterable:
    """Map over files, in a process pool when it pays off. Order is not preserved."""
    if workers is None:
        workers = min(len(items) // 16, os.cpu_count() or 1)
    if workers <= 1 or len(items) < 2:
        return map(func, items)
    return _pool_imap(func, items, workers)


def _pool_imap(func, items, workers):
    with worker_pool(workers) as pool:  # single-threaded workers: they run torch ops
        yield from pool.imap_unordered(func, items, chunksize=max(1, len(items) //
                                                                   (workers * 8)))


def _find_missing(pred_dir: str, ids: Sequence[str], suffix: str) -> List[str]:
    return [i for i in ids if not osp.isfile(osp.join(pred_dir, i + suffix))]


def _missing_error(kind: str, pred_dir: str, missing: List[str], total: int) -> ValueError:
    shown = ', '.join(missing[:20]) + (' ...' if len(missing) > 20 else '')
    if kind == 'ground truth':
        what = 'leave them out of the evaluation (they are counted in the report)'
        return ValueError(f'{len(missing)} of {total} ids of the split have no ground truth '
                          f'in {pred_dir}: {shown} (pass allow_missing / --allow-missing to '
                          f'{what})')
    return ValueError(f'{len(missing)} of {total} ground-truth ids have no {kind} in '
                      f'{pred_dir}: {shown} (pass allow_missing / --allow-missing to count '
                      'them as misses)')


def _split_missing_gt(gt_dir: str, ids: List[str],
                      allow_missing: bool) -> Tuple[List[str], List[str]]:
    """``(ids with ground truth, ids without)``; without ``allow_missing`` a missing
    ground-truth file raises (a split that does not match its ground truth is a mistake)."""
    gt_missing = _find_missing(gt_dir, ids, '.png')
    if gt_missing and not allow_missing:
        raise _missing_error('ground truth', gt_dir, gt_missing, len(ids))
    gone = set(gt_missing)
    return [i for i in ids if i not in gone], gt_missing


# ------------------------------------------------------------------ label-map evaluation
def _cm_one(img_id: str, pred_dir: str, gt_dir: str, num_classes: int) -> np.ndarray:
    gt = read_label_png(osp.join(gt_dir, img_id + '.png'))
    pred_path = osp.join(pred_dir, img_id + '.png')
    if osp.isfile(pred_path):
        pred = read_label_png(pred_path)
        if pred.shape != gt.shape:
            raise ValueError(f'{img_id}: prediction {pred.shape} and ground truth '
                             f'{gt.shape} differ in size')
    else:  # allowed missing: every labelled pixel is a miss
        pred = np.full(gt.shape, IGNORE_INDEX, np.uint8)
    try:
        return confusion_matrix(pred, gt, num_classes)
    except ValueError as exc:
        raise ValueError(f'{img_id}: {exc}') from None


def evaluate_label_dir(pred_dir: str,
                       gt_dir: str,
                       ids: Sequence[str],
                       num_classes: int = 21,
                       *,
                       allow_missing: bool = False,
                       workers: Optional[int] = None) -> Dict[str, Any]:
    """Confusion-matrix evaluation of ``{pred_dir}/{id}.png`` against ``{gt_dir}/{id}.png``.

    Args:
        pred_dir (str): predicted label PNGs.
        gt_dir (str): ground-truth label PNGs (e.g. VOC ``SegmentationClass``).
        ids (Sequence[str]): image ids to evaluate.
        num_classes (int): ``N`` including background.
        allow_missing (bool): count a missing prediction as all-255 (a miss of every
            labelled pixel) and leave ids without ground truth out of the evaluation,
            instead of raising ``ValueError`` listing the missing ids.
        workers (int, optional): processes reading files; None picks by file count.

    Returns:
        dict: :func:`metrics_from_confusion` plus ``confusion`` ``[N, N + 1]``,
        ``num_images`` (evaluated), ``missing`` (ids with ground truth but without a
        prediction) and ``gt_missing`` (ids of the split without ground truth, skipped).
    """
    ids, gt_missing = _split_missing_gt(gt_dir, list(ids), allow_missing)
    missing = _find_missing(pred_dir, ids, '.png')
    if missing and not allow_missing:
        raise _missing_error('prediction', pred_dir, missing, len(ids))
    cm = np.zeros((num_classes, num_classes + 1), np.int64)
    func = partial(_cm_one, pred_dir=pred_dir, gt_dir=gt_dir, num_classes=num_classes)
    for part in _map(func, ids, workers):
        cm += part
    result = metrics_from_confusion(cm)
    result.update(confusion=cm, num_images=len(ids), missing=missing, gt_missing=gt_missing)
    return result


# ------------------------------------------------------------------- threshold sweep
#: ``(start, stop, step)`` of the sweep when none is given: the whole open interval (0, 1)
#: on a 0.01 grid (a threshold of 0 or 1 labels every pixel alike); cheap, since every
#: threshold of an image is counted by one ``bincount``.
DEFAULT_SWEEP = (0.01, 0.99, 0.01)


def sweep_values(start: float, stop: float, step: float) -> np.ndarray:
    """Thresholds ``start, start + step, ..., stop`` (``stop`` included), rounded to 1e-6."""
    if step <= 0 or stop < start:
        raise ValueError(f'bad sweep range {start}:{stop}:{step}')
    return np.round(np.arange(start, stop + step / 2, step), 6)


def _sweep_one(img_id: str, probs_dir: str, gt_dir: str, num_classes: int,
               thresholds: np.ndarray,
               normalize_cam: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Confusion matrices of one image for every threshold ``[T, N, N + 1]`` in a single
    ``bincount``, plus the adaptive (eq. 9, no dCRF) matrix when thresholds were saved."""
    from mmseg_sbce.apis.label_io import load_maps_npz
    from mmseg_sbce.apis.label_maps import as_float32, as_uint8, scatter_compact
    from mmseg_sbce.models.labelling import fixed_threshold_maps, label_eq9
    gt = read_label_png(osp.join(gt_dir, img_id + '.png'))
    npz_path = osp.join(probs_dir, img_id + '.npz')
    n, t = num_classes, len(thresholds)
    if osp.isfile(npz_path):
        logits, classes, thr = load_maps_npz(npz_path)
        if logits.shape[1:] != gt.shape:
            raise ValueError(f'{img_id}: score maps {logits.shape[1:]} and ground truth '
                             f'{gt.shape} differ in size')
    else:  # allowed missing: counted as misses at every threshold
        logits, classes, thr = None, None, None
    valid = gt != IGNORE_INDEX
    g = gt[valid].astype(np.int64)
    if logits is None:
        cms = np.zeros((t, n, n + 1), np.int64)
        cms[:, :, n] = np.bincount(g, minlength=n)[None]
        return cms, cms[0].copy()
    if len(classes) == 0:
        arg = np.zeros(g.shape, np.int64)
        best = np.zeros(g.shape, np.float32)
    else:
        maps = as_float32(logits)
        cam = fixed_threshold_maps(maps, normalize_cam).numpy()
        arg = (classes[cam.argmax(axis=0)] + 1)[valid]
        best = cam.max(axis=0)[valid]
    # bucket b = number of thresholds strictly below the pixel's best score; the pixel is
    # foreground at threshold j exactly when j < b.
    # Compared in float32, exactly like the labelling functions (``p - thr > 0``).
    bucket = np.searchsorted(thresholds.astype(np.float32), best, side='left')
    counts = np.bincount((g * n + arg) * (t + 1) + bucket,
                         minlength=n * n * (t + 1)).reshape(n, n, t + 1)
    fg = np.flip(np.cumsum(np.flip(counts, -1), -1), -1)[:, :, 1:]  # [n, n, t]: b > j
    fg = np.moveaxis(fg, -1, 0)  # [t, n, n]
    cms = np.zeros((t, n, n + 1), np.int64)
    cms[:, :, :n] = fg
    cms[:, :, 0] += np.bincount(g, minlength=n)[None] - fg.sum(axis=2)
    adaptive = None
    if len(classes) == 0 or np.isfinite(thr).all():
        # All saved classes are the image's positive ones: compact labels need no mask.
        pred = scatter_compact(
            as_uint8(label_eq9(as_float32(logits).sigmoid(), as_float32(thr))), classes)
        adaptive = confusion_matrix(pred, gt, n)
    return cms, adaptive


def threshold_sweep(probs_dir: str,
                    gt_dir: str,
                    ids: Sequence[str],
                    thresholds: Sequence[float],
                    num_classes: int = 21,
                    *,
                    normalize_cam: bool = True,
                    allow_missing: bool = False,
                    workers: Optional[int] = None) -> Dict[str, Any]:
    """CAM-style background-threshold sweep over saved probability maps (no dCRF).

    For every threshold ``b`` the label is ``argmax_c p_c`` over the image's positive classes
    (the CAM ``relu(x) / max relu(x)`` with ``normalize_cam``, else ``sigmoid(x)``),
    background where ``max_c m_c <= b``.
    Where the npz files hold the adaptive thresholds, the eq. 9 labelling of the same maps
    (no dCRF) is evaluated too, for a like-for-like comparison.

    Args:
        probs_dir (str): ``{id}.npz`` files of an export with ``save_probs=True``.
        gt_dir (str): ground-truth PNGs.
        ids (Sequence[str]): image ids.
        thresholds (Sequence[float]): background thresholds (sorted here).
        num_classes (int): ``N`` including background.
        normalize_cam (bool): threshold CAMs (max-normalised ReLU of the saved logits)
            rather than probabilities.
        allow_missing (bool): count missing npz files as all-255 and skip ids without
            ground truth instead of raising.
        workers (int, optional): processes reading files.

    Returns:
        dict: ``thresholds``, ``miou`` (one per threshold), ``best_threshold``,
        ``best_miou``, ``best`` (metrics and ``confusion`` at the best threshold),
        ``best_on_edge`` (the best is the first or last threshold swept, so a wider range
        may do better; False with a single threshold), ``adaptive`` (metrics and
        ``confusion`` of eq. 9 without dCRF, or None), ``normalize_cam``, ``missing``,
        ``gt_missing``.
    """
    ids, gt_missing = _split_missing_gt(gt_dir, list(ids), allow_missing)
    thresholds = np.sort(np.asarray(thresholds, np.float64))
    missing = _find_missing(probs_dir, ids, '.npz')
    if missing and not allow_missing:
        raise _missing_error('probability map', probs_dir, missing, len(ids))
    n = num_classes
    cms = np.zeros((len(thresholds), n, n + 1), np.int64)
    adaptive = np.zeros((n, n + 1), np.int64)
    has_adaptive = True
    func = partial(_sweep_one, probs_dir=probs_dir, gt_dir=gt_dir, num_classes=n,
                   thresholds=thresholds, normalize_cam=normalize_cam)
    for part, part_adaptive in _map(func, ids, workers):
        cms += part
        if part_adaptive is None:
            has_adaptive = False
        else:
            adaptive += part_adaptive
    mious = [metrics_from_confusion(cm)['miou'] for cm in cms]
    best = int(np.nanargmax(mious))
    return dict(
        thresholds=thresholds.tolist(),
        miou=mious,
        best_threshold=float(thresholds[best]),
        best_miou=mious[best],
        best=dict(metrics_from_confusion(cms[best]), confusion=cms[best]),
        best_on_edge=len(thresholds) > 1 and best in (0, len(thresholds) - 1),
        adaptive=dict(metrics_from_confusion(adaptive), confusion=adaptive)
        if has_adaptive else None,
        normalize_cam=normalize_cam,
        missing=missing,
        gt_missing=gt_missing)


# --------------------------------------------------------------------------- reporting
def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _pct(x: Optional[float]) -> str:
    return '-' if x is None or not np.isfinite(x) else f'{100 * x:.2f}'


def format_markdown(report: Dict[str, Any]) -> str:
    """The Markdown form of a report built by :func:`build_report`."""
    names = report['class_names']
    lines = ['# Pseudo-label evaluation', '']
    lines.append(f'- predictions: `{report["pred_dir"]}`')
    lines.append(f'- ground truth: `{report["gt_dir"]}`, {report["num_images"]} images')
    lines.append(f'- classes: {len(names)} (background included)')
    lines.append(f'- 255 rule: {IGNORE_RULE}')
    if report.get('missing'):
        lines.append(f'- missing predictions counted as misses: {len(report["missing"])}')
    if report.get('gt_missing'):
        shown = ', '.join(report['gt_missing'][:20])
        lines.append(f'- ids without ground truth, left out: {len(report["gt_missing"])} '
                     f'({shown}{" ..." if len(report["gt_missing"]) > 20 else ""})')
    lines += ['', '| labels | mIoU (%) | pixel acc. (%) | unsure (%) |',
              '| --- | --- | --- | --- |']
    pred = report['prediction']
    lines.append(f'| {report.get("label", "predictions")} | {_pct(pred["miou"])} | '
                 f'{_pct(pred["pixel_acc"])} | {_pct(pred["unsure_fraction"])} |')
    sweep = report.get('sweep')
    columns = [('predictions', pred['iou'])]
    if sweep:
        if sweep.get('adaptive'):
            a = sweep['adaptive']
            lines.append(f'| adaptive eq. 9, no dCRF (from probs) | {_pct(a["miou"])} | '
                         f'{_pct(a["pixel_acc"])} | {_pct(a["unsure_fraction"])} |')
            columns.append(('adaptive, no dCRF', a['iou']))
        b = sweep['best']
        lines.append(f'| best background threshold {sweep["best_threshold"]:g}, no dCRF '
                     f'(chosen with ground truth) | {_pct(b["miou"])} | '
                     f'{_pct(b["pixel_acc"])} | {_pct(b["unsure_fraction"])} |')
        columns.append((f'bg thr {sweep["best_threshold"]:g}', b['iou']))
    lines += ['', '## IoU per class (%)', '',
              '| class | ' + ' | '.join(c for c, _ in columns) + ' |',
              '| --- |' + ' --- |' * len(columns)]
    for i, name in enumerate(names):
        lines.append(f'| {name} | ' + ' | '.join(_pct(iou[i]) for _, iou in columns) + ' |')
    if sweep:
        start, stop, step = sweep['range']
        lines += ['', f'## Background-threshold sweep ({start:g} to {stop:g} step {step:g}, '
                  f'normalize_cam={sweep["normalize_cam"]})', '',
                  'Evaluation only: the best threshold is chosen with ground truth and is '
                  'not written anywhere training reads.', '']
        if sweep.get('best_on_edge'):
            lines += [f'**The best threshold {sweep["best_threshold"]:g} lies on an edge of '
                      'the swept range**: a threshold outside it may do better; widen '
                      '`--sweep`.', '']
        lines += ['| threshold | mIoU (%) |', '| --- | --- |']
        for thr, miou in zip(sweep['thresholds'], sweep['miou']):
            mark = ' **best**' if thr == sweep['best_threshold'] else ''
            lines.append(f'| {thr:g} | {_pct(miou)}{mark} |')
    return '\n'.join(lines) + '\n'


def build_report(pred_dir: str, gt_dir: str, result: Dict[str, Any],
                 sweep: Optional[Dict[str, Any]] = None,
                 sweep_range: Optional[Sequence[float]] = None,
                 class_names: Optional[Sequence[str]] = None,
                 label: str = 'predictions') -> Dict[str, Any]:
    """Assemble the report dict (what the JSON holds) from evaluation results."""
    n = result['confusion'].shape[0]
    names = list(class_names) if class_names else class_names_for(n)
    if len(names) != n:
        raise ValueError(f'{len(names)} class names for {n} classes: {names}')
    report = dict(pred_dir=pred_dir, gt_dir=gt_dir, label=label, class_names=names,
                  num_images=result['num_images'], missing=result['missing'],
                  gt_missing=result.get('gt_missing', []),
                  ignore_rule=IGNORE_RULE,
                  prediction=dict(miou=result['miou'], iou=result['iou'],
                                  iou_by_class=dict(zip(names, result['iou'].tolist())),
                                  pixel_acc=result['pixel_acc'],
                                  unsure_fraction=result['unsure_fraction'],
                                  num_pixels=result['num_pixels'],
                                  confusion=result['confusion']))
    if sweep is not None:
        thr = sweep['thresholds']
        default_range = [thr[0], thr[-1], thr[1] - thr[0] if len(thr) > 1 else 0.0]
        report['sweep'] = dict(sweep, range=list(sweep_range or default_range))
    return report


def write_report(report: Dict[str, Any], basename: str) -> Tuple[str, str]:
    """Write ``{basename}.md`` and ``{basename}.json`` atomically; returns both paths.

    Raises:
        mmseg_sbce.utils.io.SymlinkRefused: either path is a symbolic link (never written
            through: its target may be any file), before anything is written.
    """
    os.makedirs(osp.dirname(osp.abspath(basename)), exist_ok=True)
    md_path, json_path = basename + '.md', basename + '.json'
    for path in (md_path, json_path):
        check_not_symlink(path)
    write_text_atomic(md_path, format_markdown(_jsonable(report)))
    write_text_atomic(json_path, json.dumps(_jsonable(report), indent=2))
    return md_path, json_path
