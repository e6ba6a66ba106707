# Copyright (c) mmseg-sbce contributors.
"""Dense CRF (Krahenbuhl & Koltun, 2011) through pydensecrf, as pseudo-labels use it.

The pairwise kernels' spatial widths (``gaussian.sxy``, ``bilateral.sxy``) are in pixels. The
published values (3 and 40, the reference code's) were chosen for PASCAL VOC images, about
500 x 375 pixels; on a 128-pixel image a 40-pixel bilateral kernel spans a third of the image
and merges neighbouring objects and their surroundings. With ``size_reference=(W0, H0)``
(e.g. VOC's ``(500, 375)``) the widths are given at that size and scaled by
``sqrt(H * W / (W0 * H0))`` for each image, so that they cover the same share of any image;
at that size they are the published values. That is the default, with VOC's size as the
reference; ``size_reference=None`` uses them as absolute pixels (the reference code's
behaviour at every size).
"""
import math
from typing import Optional, Tuple

import numpy as np

from ..utils.io import IGNORE_INDEX
from .pseudo_cfg import PSEUDO_CFG_DEFAULTS


def kernel_widths(params: dict, height: int, width: int) -> Tuple[float, float]:
    """The Gaussian and bilateral kernels' spatial widths (pixels) for an image of
    ``height x width``: the configured ones scaled by ``sqrt(H * W / (W0 * H0))`` when
    ``params['size_reference']`` is ``(W0, H0)``, unchanged when it is None or absent."""
    gaussian, bilateral = params['gaussian']['sxy'], params['bilateral']['sxy']
    reference = params.get('size_reference')
    if reference is None:
        return gaussian, bilateral
    factor = math.sqrt(height * width / (reference[0] * reference[1]))
    return gaussian * factor, bilateral * factor


def dense_crf(img: np.ndarray,
              labels_or_probs: np.ndarray,
              n_labels: int,
              params: Optional[dict] = None) -> np.ndarray:
    """Dense CRF through pydensecrf (Krahenbuhl & Koltun, 2011).

    Args:
        img (np.ndarray): ``[H, W, 3]`` uint8 RGB image (C-contiguous avoids a copy).
        labels_or_probs (np.ndarray): either a ``[H, W]`` integer label map with values
            ``0..n_labels-1`` (255 = unsure: uniform unary), turned into a unary by
            ``unary_from_labels(..., gt_prob)``; or ``[n_labels, H, W]`` float
            probabilities (``unary_from_softmax``, clipped at 1e-5).
        n_labels (int): number of labels (>= 2).
        params (dict, optional): the ``crf`` part of ``pseudo_cfg`` (``gt_prob``,
            ``gaussian``, ``bilateral``, ``iterations``, ``size_reference``); defaults from
            :data:`PSEUDO_CFG_DEFAULTS`.

    Returns:
        np.ndarray: ``[H, W]`` int64 labels ``0..n_labels-1`` (the argmax of the marginals).
    """
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_labels, unary_from_softmax

    p = PSEUDO_CFG_DEFAULTS['crf'] if params is None else params
    height, width = img.shape[:2]
    if labels_or_probs.ndim == 2:
        labels = labels_or_probs
        unsure = labels == IGNORE_INDEX
        any_unsure = bool(unsure.any())
        if any_unsure:
            labels = np.where(unsure, 0, labels)
        unary = unary_from_labels(labels, n_labels, p['gt_prob'], zero_unsure=False)
        if any_unsure:
            unary[:, unsure.ravel()] = -np.log(1.0 / n_labels)
    else:
        unary = unary_from_softmax(labels_or_probs)
    crf = dcrf.DenseCRF2D(width, height, n_labels)
    crf.setUnaryEnergy(unary)  # float32, C-contiguous by construction: no copy
    gaussian_sxy, bilateral_sxy = kernel_widths(p, height, width)
    crf.addPairwiseGaussian(sxy=gaussian_sxy, compat=p['gaussian']['compat'])
    if not img.flags.c_contiguous:
        img = np.ascontiguousarray(img)
    crf.addPairwiseBilateral(
        sxy=bilateral_sxy, srgb=p['bilateral']['srgb'], rgbim=img,
        compat=p['bilateral']['compat'])
    q = crf.inference(p['iterations'])
    return np.asarray(q).reshape(n_labels, height, width).argmax(axis=0)
