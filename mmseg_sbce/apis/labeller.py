# Copyright (c) mmseg-sbce contributors.
"""What runs per image in the export: the labelling rule and the worker step.

:class:`PseudoLabeller` is the plug for labelling rules other than the classifier's
(e.g. IRN's random walk, ``mmseg_sbce.models.irn.labeller``); :func:`label_and_write` is
the job the export's worker pool runs for one image (label, then write its files, the PNG
last). Both are used by :mod:`~.export`.
"""
import os
import os.path as osp
import time
from typing import Any, Callable, Dict

import numpy as np
import torch

from .label_io import output_paths, save_label_png, save_maps_npz
from .label_maps import pseudo_label_from_maps
from .saliency import saliency_for_image


class PseudoLabeller:
    """A labelling rule other than the classifier's, plugged into the export.

    :func:`export_pseudo_labels` / :func:`generate_pseudo_labels` label every image with
    the classifier's rule (eq. 9 / CAM threshold + dCRF,
    :func:`~.label_maps.pseudo_label_from_maps`) unless a labeller is given. A labeller works on the saved maps of an earlier export
    (``maps_dir``, the ``probs/`` of ``gen_pseudo --save-probs``) in two steps:

    * :meth:`prepare` runs in the export's process, once per image, with the model passed
      to the export (e.g. a network on the image); what it returns is sent to a worker;
    * :meth:`worker` returns a picklable callable ``fn(img_rgb, logits, thr, pos, payload)
      -> uint8 [H, W] label map`` (ids ``0..C``, 255) that runs in the worker pool (e.g.
      a random walk), where ``img_rgb`` is ``[H, W, 3]`` uint8, ``logits`` ``[K, H, W]``
      float the saved maps of the positive classes ``pos``, ``thr`` their saved thresholds.

    Subclasses set :attr:`num_classes` (``C``, for the image labels) and return what decides
    their output from :meth:`identity` (recorded in the manifest; a folder is reused only
    by a run with the same identity).
    """

    #: Number of foreground classes ``C``.
    num_classes: int = 0

    def identity(self) -> Dict[str, Any]:
        """What decides the labels besides the maps and ``pseudo_cfg`` (JSON-able)."""
        return {}

    def prepare(self, model: torch.nn.Module, inputs: torch.Tensor, data: dict) -> Any:
        """Main-process step for one image: ``inputs`` is the packed uint8 ``[3, H, W]``
        image of ``data`` (the pipeline's output); returns the worker's ``payload``."""
        return None

    def worker(self) -> Callable[..., np.ndarray]:
        """The picklable worker step (see the class docstring)."""
        raise NotImplementedError


def label_and_write(job: tuple) -> tuple:
    """Worker step of the export: label (+ dCRF) one image and write its files.

    Returns:
        tuple: ``(img_id, ok, error message or None, seconds, fallback)``; ``fallback`` is
        why the image was labelled without its saliency map (``on_missing='fallback'``),
        else None.
    """
    (img_id, img_chw, is_bgr, logits, thr, pos, cfg, out_dir, save_probs, label_fn,
     payload) = job
    start = time.perf_counter()
    fallback = None
    try:
        img = img_chw.transpose(1, 2, 0)
        img = np.ascontiguousarray(img[..., ::-1] if is_bgr else img)
        if label_fn is not None:
            label = label_fn(img, logits, thr, pos, payload)
        else:
            saliency = None
            if cfg['saliency'] is not None:
                saliency, fallback = saliency_for_image(cfg['saliency'], img_id,
                                                        img.shape[:2])
            label = pseudo_label_from_maps(img, logits, thr, pos, cfg, saliency)
        png_path, npz_path = output_paths(out_dir, img_id)
        os.makedirs(osp.dirname(png_path) or '.', exist_ok=True)
        if save_probs:
            os.makedirs(osp.dirname(npz_path), exist_ok=True)
            save_maps_npz(npz_path, logits, pos, thr)
        save_label_png(label, png_path)  # last: a PNG means this image is complete
    except Exception as exc:  # reported by the main process, the run goes on
        return (img_id, False, f'{type(exc).__name__}: {exc}', time.perf_counter() - start,
                None)
    return img_id, True, None, time.perf_counter() - start, fallback
