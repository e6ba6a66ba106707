# Copyright (c) mmseg-sbce contributors.
"""Pseudo-label export: the one function every stage calls, and its labelling loop.

:func:`export_pseudo_labels` is the whole export, shared by ``tools/gen_pseudo.py`` and
``QUpdateHook`` (the Q store of every phase): it checks the output folder, writes the
manifest (:mod:`~.manifest`), labels this rank's shard (:func:`generate_pseudo_labels`:
the network in this process, labelling + dense CRF + file writing in a pool of forked
workers), gathers the failures of every rank and returns one summary.

Label ids everywhere: ``0`` background, ``c + 1`` for foreground class index ``c``, ``255``
unsure / ignore.
"""
import os
import os.path as osp
import shutil
import time
from collections import deque
from typing import Any, Dict, Optional

import numpy as np
import torch
from mmengine.logging import print_log

from ..utils.parallel import default_workers, unwrap_model, worker_pool
from .inference import EvalMode, device_of, infer_maps, num_classes_of
from .label_io import is_complete_output, load_saved_maps, output_paths, remove_export_files
from .label_maps import positive_classes
from .labeller import PseudoLabeller, label_and_write
from .manifest import (COMPLETE, COMPLETE_WITH_FAILURES, MANIFEST, MANIFEST_FORMAT, RUNNING,
                       canonical, check_out_dir, now_iso, versions, write_manifest)
from .pseudo_cfg import resolve_pseudo_cfg


class OutDirRefused(RuntimeError):
    """The output folder holds the files of another run (see :func:`export_pseudo_labels`)."""


def _img_id(info: dict, index: int) -> str:
    if info.get('img_id') is not None:
        return str(info['img_id'])
    if info.get('img_path'):
        return osp.splitext(osp.basename(info['img_path']))[0]
    return f'{index:08d}'


def _image_labels(data: dict, info: dict) -> Any:
    sample = data.get('data_samples')
    labels = getattr(sample, 'gt_labels', None) if sample is not None else None
    if labels is None and sample is not None:
        labels = sample.metainfo.get('gt_labels')
    if labels is None:
        labels = info.get('gt_labels')
    if labels is None:
        raise KeyError('no image labels: expected data_samples.gt_labels (PackWSSSInputs) '
                       'or data_info["gt_labels"]')
    return labels


def _check_not_resized(data: dict, img: torch.Tensor) -> None:
    sample = data.get('data_samples')
    ori = sample.metainfo.get('ori_shape') if sample is not None else None
    if ori is not None and tuple(ori[:2]) != tuple(img.shape[-2:]):
        raise ValueError(
            f'the pseudo-label pipeline resized the image ({tuple(ori[:2])} -> '
            f'{tuple(img.shape[-2:])}); labels must have the image size: use a pipeline '
            'without resizing, e.g. [LoadImageFromFile, PackWSSSInputs]')


def generate_pseudo_labels(model: torch.nn.Module,
                           dataset: Any,
                           out_dir: str,
                           cfg: Optional[dict] = None,
                           *,
                           rank: Optional[int] = None,
                           world_size: Optional[int] = None,
                           workers: Optional[int] = None,
                           skip_existing: bool = True,
                           save_probs: bool = False,
                           progress: bool = True,
                           logger: Any = None,
                           max_in_flight: Optional[int] = None,
                           net_threads: Optional[int] = None,
                           maps_dir: Optional[str] = None,
                           labeller: Optional[PseudoLabeller] = None) -> Dict[str, Any]:
    """Label one shard of ``dataset`` into ``out_dir``: the labelling loop of an export.

    Writes the label files only: no manifest, no check of ``out_dir``, nothing gathered
    across ranks. :func:`export_pseudo_labels` (the export of ``tools/gen_pseudo.py`` and
    the Q update) runs it on every rank between those steps; call it directly only for a
    quick labelling into a scratch folder.

    The network runs in the calling process (on the model's device); labelling, dense CRF
    and file writing run in a pool of ``workers`` processes with at most ``max_in_flight``
    images queued, so memory stays flat however long the data set is. Safe to call from an
    mmengine hook during training: nothing global is changed, the model's (and every
    submodule's) training flags are restored, gradients are not tracked, no CUDA is assumed.

    Output layout: ``{out_dir}/{img_id}.png`` (mode 'P', VOC palette, ids ``0..C`` and 255,
    the size of the packed image) and with ``save_probs``
    ``{out_dir}/probs/{img_id}.npz`` (``logits`` float16 ``[K, H, W]`` for the image's K
    positive classes before the threshold, ``classes`` their indices, ``thr`` the mapped
    thresholds). Every file is written under a temporary name and renamed.

    Args:
        model (nn.Module): the classifier (see :mod:`~.inference`).
        dataset: an mmengine ``BaseDataset`` (``get_data_info`` + ``pipeline``) whose
            pipeline loads the image without resizing and packs it with its labels
            (e.g. ``[LoadImageFromFile, PackWSSSInputs]``). Items are fetched with
            ``pipeline(get_data_info(i))``, never ``dataset[i]`` (which would silently
            substitute another image for an unreadable one).
        out_dir (str): output folder (created).
        cfg (dict, optional): ``pseudo_cfg``, see :data:`~.pseudo_cfg.PSEUDO_CFG_DEFAULTS`.
        rank (int, optional): this process's shard is ``index % world_size == rank``.
            None: from ``mmengine.dist.get_dist_info()``.
        world_size (int, optional): number of shards; None: from mmengine.dist.
        workers (int, optional): dCRF worker processes; 0 runs everything in this process;
            None uses every core available to this process (divided by
            ``LOCAL_WORLD_SIZE`` under torchrun).
        skip_existing (bool): skip images whose PNG (and npz, with ``save_probs``) exists
            and is complete (:func:`~.label_io.is_complete_output`: a file that does not
            decode is relabelled).
        save_probs (bool): also write the compressed score maps (:func:`~.label_io.save_maps_npz`:
            logits, from which probabilities and CAMs follow).
        progress (bool): show an mmengine progress bar (rate, ETA) on rank 0.
        logger: an mmengine logger or its name for :func:`print_log`; None = current.
        max_in_flight (int, optional): images queued for the workers; default
            ``2 * workers``.
        net_threads (int, optional): torch CPU threads for the forward passes during the
            run (restored afterwards). None: with a pool and a CPU model, the cores left
            over by the workers (at least 1); otherwise unchanged.
        maps_dir (str, optional): label the maps an earlier run saved there
            (``{maps_dir}/{img_id}.npz``, see ``save_probs``) instead of running the network,
            e.g. at the best threshold of a sweep over exactly those maps. Each file must
            hold the image's positive classes at the image's size; the thresholds it holds
            are used by ``'adaptive'``. ``scales``, ``flip`` and ``fusion`` of ``cfg`` are
            then the saved run's, not this one's.
        labeller (PseudoLabeller, optional): label with this rule instead of the
            classifier's (needs ``maps_dir``; ``model`` is then the labeller's network,
            run by :meth:`PseudoLabeller.prepare`). ``cfg`` then only matters for its
            ``saliency`` key, which must be None.

    Returns:
        dict: ``total`` (images in this shard), ``written`` and ``skipped`` (counts),
        ``failures`` (list of dicts ``index``, ``img_id``, ``error``), ``elapsed_s``,
        ``images_per_s`` (written / elapsed), ``net_s`` (time in the network),
        ``crf_s`` (summed worker time), ``rank``, ``world_size``; with
        ``cfg['saliency']`` also ``saliency_fallbacks`` (dicts ``img_id``, ``reason``: the
        images labelled without their saliency map).
    """
    from mmengine.dist import get_dist_info
    from mmengine.utils import ProgressBar

    pcfg = resolve_pseudo_cfg(cfg)
    dist_rank, dist_world = get_dist_info()
    rank = dist_rank if rank is None else int(rank)
    world_size = dist_world if world_size is None else int(world_size)
    if not 0 <= rank < world_size:
        raise ValueError(f'rank {rank} outside world_size {world_size}')
    if labeller is not None and maps_dir is None:
        raise ValueError(f'{type(labeller).__name__} labels saved maps: give maps_dir')
    if labeller is not None and pcfg['saliency'] is not None:
        raise ValueError(f'pseudo_cfg.saliency cannot be combined with '
                         f'{type(labeller).__name__}')
    workers = default_workers() if workers is None else int(workers)
    max_in_flight = max(1, 2 * workers if max_in_flight is None else int(max_in_flight))
    logger = logger if logger is not None else 'current'
    os.makedirs(out_dir, exist_ok=True)
    if save_probs:
        os.makedirs(osp.join(out_dir, 'probs'), exist_ok=True)

    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    indices = list(range(rank, len(dataset), world_size))
    net = unwrap_model(model)
    preproc = getattr(net, 'data_preprocessor', None)
    # The packed image is BGR exactly when the model's preprocessor converts BGR -> RGB.
    is_bgr = bool(getattr(preproc, 'channel_conversion', True))
    num_classes = num_classes_of(net) if labeller is None else int(labeller.num_classes)
    label_fn = None if labeller is None else labeller.worker()

    summary: Dict[str, Any] = dict(
        total=len(indices), written=0, skipped=0, failures=[], elapsed_s=0.0,
        images_per_s=0.0, net_s=0.0, crf_s=0.0, rank=rank, world_size=world_size)
    if pcfg['saliency'] is not None:
        summary['saliency_fallbacks'] = []
    bar = ProgressBar(len(indices)) if progress and rank == 0 and indices else None
    index_of: Dict[str, int] = {}

    def collect(result: tuple) -> None:
        img_id, ok, payload, seconds, fallback = result
        summary['crf_s'] += seconds
        if fallback is not None:
            summary['saliency_fallbacks'].append(dict(img_id=img_id, reason=fallback))
            print_log(f'pseudo-labels: {img_id} labelled without saliency: {fallback}',
                      logger=logger, level=30)
        if ok:
            summary['written'] += 1
        else:
            summary['failures'].append(dict(index=index_of.get(img_id), img_id=img_id,
                                            error=payload))
            print_log(f'pseudo-labels: {img_id} failed: {payload}', logger=logger,
                      level=30)
        if bar is not None:
            bar.update()

    start = time.perf_counter()
    pool = worker_pool(workers) if workers > 0 else None
    pending: deque = deque()
    # While the workers keep the cores busy, a multi-threaded CPU forward pass in this
    # process oversubscribes them (OpenMP threads wait on descheduled siblings: measured
    # 3x slower on 2 cores). The thread count is lowered for the run and restored after.
    threads = torch.get_num_threads()
    if net_threads is None and pool is not None and device_of(net).type == 'cpu':
        net_threads = max(1, default_workers() - workers)
    if net_threads is not None:
        torch.set_num_threads(int(net_threads))
    try:
        with EvalMode(net):
            for index in indices:
                info = dataset.get_data_info(index)
                img_id = _img_id(info, index)
                index_of[img_id] = index
                png_path, npz_path = output_paths(out_dir, img_id)
                if skip_existing and is_complete_output(png_path,
                                                        npz_path if save_probs else None):
                    summary['skipped'] += 1
                    if bar is not None:
                        bar.update()
                    continue
                try:
                    data = dataset.pipeline(info)
                    if data is None:
                        raise ValueError('the pipeline returned None (unreadable image?)')
                    img = data['inputs']
                    _check_not_resized(data, img)
                    pos = positive_classes(_image_labels(data, info), num_classes)
                    t0 = time.perf_counter()
                    if maps_dir is not None:
                        logits, thr_pos = load_saved_maps(maps_dir, img_id, pos,
                                                      tuple(img.shape[-2:]))
                    elif len(pos):
                        logits, thr = infer_maps(net, img, pos, pcfg['scales'], pcfg['flip'],
                                             None, pcfg['fusion'], pcfg['min_side'],
                                             pcfg['max_pixels'], pcfg['amp'])
                        thr_pos = None if thr is None else thr[torch.as_tensor(
                            pos, dtype=torch.long)].numpy()
                    else:  # no foreground label: all background, no forward pass needed
                        logits = torch.zeros((0, ) + tuple(img.shape[-2:]))
                        thr_pos = np.zeros(0, np.float32)
                    payload = None if labeller is None else labeller.prepare(net, img, data)
                    summary['net_s'] += time.perf_counter() - t0
                except Exception as exc:
                    collect((img_id, False, f'{type(exc).__name__}: {exc}', 0.0, None))
                    continue
                job = (img_id, np.asarray(img.cpu().numpy(), dtype=np.uint8), is_bgr,
                       logits.numpy(), thr_pos, pos, pcfg, out_dir, save_probs, label_fn,
                       payload)
                if pool is None:
                    collect(label_and_write(job))
                    continue
                pending.append(pool.apply_async(label_and_write, (job, )))
                while len(pending) >= max_in_flight:
                    collect(pending.popleft().get())
                while pending and pending[0].ready():
                    collect(pending.popleft().get())
            while pending:
                collect(pending.popleft().get())
    finally:
        torch.set_num_threads(threads)
        if pool is not None:
            pool.terminate() if pending else pool.close()
            pool.join()
    if bar is not None:
        bar.file.write('\n')
    summary['elapsed_s'] = time.perf_counter() - start
    summary['images_per_s'] = summary['written'] / max(summary['elapsed_s'], 1e-9)
    print_log(
        f'pseudo-labels (rank {rank}/{world_size}): {summary["written"]} written, '
        f'{summary["skipped"]} skipped, {len(summary["failures"])} failed of {len(indices)} in '
        f'{summary["elapsed_s"]:.1f}s ({summary["images_per_s"]:.2f} img/s; network '
        f'{summary["net_s"]:.1f}s, labelling+dCRF {summary["crf_s"]:.1f}s on {workers} '
        f'worker(s)) -> {out_dir}', logger=logger)
    return summary


def export_pseudo_labels(model: torch.nn.Module,
                         dataset: Any,
                         out_dir: str,
                         pseudo_cfg: Optional[dict] = None,
                         *,
                         identity: Optional[Dict[str, Any]] = None,
                         run_info: Optional[Dict[str, Any]] = None,
                         overwrite: bool = False,
                         clean: bool = False,
                         workers: Optional[int] = None,
                         save_probs: bool = False,
                         maps_dir: Optional[str] = None,
                         progress: bool = True,
                         logger: Any = None,
                         labeller: Optional[PseudoLabeller] = None) -> Dict[str, Any]:
    """Export the pseudo-labels of ``dataset`` into ``out_dir``, with its manifest.

    Call it on every rank (or in a single process). Steps:

    1. the main process checks ``out_dir`` (:func:`~.manifest.check_out_dir`): a folder
       holding another run's files (another ``identity``, or label PNGs without a manifest)
       is refused unless ``overwrite``; with ``clean`` it is deleted first;
    2. it writes ``manifest.json`` with status ``'running'`` (atomically);
    3. every rank labels its shard (images ``index % world_size == rank``) with
       :func:`generate_pseudo_labels`, skipping finished images unless ``overwrite``;
    4. the failures of every rank are gathered (``mmengine.dist``) and the main process
       rewrites the manifest with status ``'complete'`` or ``'complete_with_failures'``,
       the counts and the failures; every rank waits for it.

    The manifest format is documented in docs/pseudo_labels.md.

    Args:
        model (nn.Module): the classifier (see :mod:`~.inference`), wrappers unwrapped.
        dataset: the data set to label (see :func:`generate_pseudo_labels`).
        out_dir (str): output folder (created).
        pseudo_cfg (dict, optional): labelling options (see
            :func:`~.pseudo_cfg.resolve_pseudo_cfg`).
        identity (dict, optional): what else decides the files besides the labelling
            options, e.g. the checkpoint's hash and the data set config. The manifest's
            ``identity`` is this plus ``pseudo_cfg`` (resolved), ``save_probs`` and
            ``maps_dir``; a folder is reused only by a run of the same identity.
        run_info (dict, optional): recorded as the manifest's ``run`` (who ran it: the
            command, the config path, the training phase); not compared.
        overwrite (bool): write into a folder of another run and relabel every image; the
            files an export writes that are already there (label PNGs, ``probs/*.npz``,
            temporary files; :func:`~.label_io.remove_export_files`) are deleted first,
            other files are kept.
        clean (bool): delete ``out_dir`` before writing (an output that must hold exactly
            this run, e.g. a Q store whose earlier attempt was interrupted).
        workers (int, optional): labelling worker processes per rank (see
            :func:`generate_pseudo_labels`).
        save_probs (bool): also write the score maps ``probs/{img_id}.npz``.
        maps_dir (str, optional): label the maps a ``save_probs`` run saved there instead
            of running the network.
        progress (bool): progress bar on the main process.
        logger: an mmengine logger or its name; None = current.
        labeller (PseudoLabeller, optional): another labelling rule on the maps of
            ``maps_dir`` (see :class:`PseudoLabeller`); its ``identity()`` is the manifest's
            ``identity.labeller``.

    Returns:
        dict: the same on every rank: ``status``, ``total``, ``written``, ``skipped``
        (summed over ranks), ``failures`` (dicts ``index``, ``img_id``, ``error`` of every
        rank, sorted by ``img_id``), ``elapsed_s`` (wall time of the export), ``net_s`` and
        ``crf_s`` (summed over ranks), ``world_size``, ``manifest`` (its path); with
        ``pseudo_cfg.saliency`` also ``saliency_fallbacks`` (every rank's images labelled
        without their saliency map, also counted in the manifest as
        ``counts.saliency_fallback`` and listed as ``saliency_fallbacks``).

    Raises:
        OutDirRefused: on every rank, when ``out_dir`` holds another run's files.
    """
    from mmengine.dist import (all_gather_object, barrier, broadcast_object_list,
                               get_dist_info)

    pcfg = resolve_pseudo_cfg(pseudo_cfg)
    rank, world_size = get_dist_info()
    out_dir = osp.abspath(out_dir)
    full_identity = dict(identity or {}, pseudo_cfg=pcfg, save_probs=bool(save_probs))
    if maps_dir is not None:
        full_identity['maps_dir'] = osp.abspath(maps_dir)
    if labeller is not None:
        full_identity['labeller'] = dict(type=type(labeller).__name__,
                                         **labeller.identity())
    if pcfg['saliency'] is not None and not osp.isdir(pcfg['saliency']['dir']):
        # Checked before anything is written: with on_missing='fallback' a wrong folder
        # would otherwise quietly label every image without saliency.
        raise FileNotFoundError(f'pseudo_cfg.saliency.dir {pcfg["saliency"]["dir"]}: no such '
                                'folder')
    full_identity = canonical(full_identity)
    started, start = now_iso(), time.perf_counter()
    manifest: Dict[str, Any] = {}
    refusal = [None]
    if rank == 0:
        if clean and osp.isdir(out_dir):
            shutil.rmtree(out_dir)
        refusal[0] = check_out_dir(out_dir, full_identity, overwrite)
        if refusal[0] is None:
            if overwrite and osp.isdir(out_dir):
                # Every image is relabelled: files of the old run that this one would not
                # rewrite (a smaller split) must not stay under the new manifest.
                removed = remove_export_files(out_dir)
                if removed:
                    print_log(f'pseudo-labels: --overwrite removed {removed} files of the '
                              f'previous export in {out_dir}', logger=logger or 'current')
            os.makedirs(out_dir, exist_ok=True)
            manifest = dict(
                format=MANIFEST_FORMAT, status=RUNNING, identity=full_identity,
                run=dict(run_info or {}),
                options=dict(workers=workers, overwrite=bool(overwrite),
                             world_size=world_size),
                versions=versions(), time=dict(started=started))
            write_manifest(out_dir, manifest)
    if world_size > 1:
        broadcast_object_list(refusal)
    if refusal[0] is not None:
        raise OutDirRefused(refusal[0])

    shard = generate_pseudo_labels(
        model, dataset, out_dir, pcfg, rank=rank, world_size=world_size, workers=workers,
        skip_existing=not overwrite and not clean, save_probs=save_probs,
        progress=progress, logger=logger, maps_dir=maps_dir, labeller=labeller)
    parts = all_gather_object(shard) if world_size > 1 else [shard]
    failures = sorted((f for p in parts for f in p['failures']), key=lambda f: f['img_id'])
    counts = {k: sum(p[k] for p in parts) for k in ('total', 'written', 'skipped')}
    counts['failed'] = len(failures)
    fallbacks = None
    if pcfg['saliency'] is not None:
        fallbacks = sorted((f for p in parts for f in p['saliency_fallbacks']),
                           key=lambda f: f['img_id'])
        counts['saliency_fallback'] = len(fallbacks)
    status = COMPLETE_WITH_FAILURES if failures else COMPLETE
    elapsed = time.perf_counter() - start
    if rank == 0:
        manifest.update(status=status, counts=counts, failures=failures,
                        time=dict(started=started, finished=now_iso(),
                                  elapsed_s=round(elapsed, 3)))
        if fallbacks is not None:
            manifest['saliency_fallbacks'] = fallbacks
        write_manifest(out_dir, manifest)
    if world_size > 1:
        barrier()  # nobody reads the folder before its manifest is final
    result = dict(status=status, total=counts['total'], written=counts['written'],
                  skipped=counts['skipped'], failures=failures, elapsed_s=elapsed,
                  net_s=sum(p['net_s'] for p in parts), crf_s=sum(p['crf_s'] for p in parts),
                  world_size=world_size, manifest=osp.join(out_dir, MANIFEST))
    if fallbacks is not None:
        result['saliency_fallbacks'] = fallbacks
    return result
