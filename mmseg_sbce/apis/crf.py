# Copyright (c) mmseg-sbce contributors.
"""Dense CRF (Krahenbuhl & Koltun, 2011) through pydensecrf, as pseudo-labels use it."""
from typing import Optional

import numpy as np

from ..utils.io import IGNORE_INDEX
from .pseudo_cfg import PSEUDO_CFG_DEFAULTS


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
            ``gaussian``, ``bilateral``, ``iterations``); defaults from
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
    crf.addPairwiseGaussian(sxy=p['gaussian']['sxy'], compat=p['gaussian']['compat'])
    if not img.flags.c_contiguous:
        img = np.ascontiguousarray(img)
    crf.addPairwiseBilateral(
        sxy=p['bilateral']['sxy'], srgb=p['bilateral']['srgb'], rgbim=img,
        compat=p['bilateral']['compat'])
    q = crf.inference(p['iterations'])
    return np.asarray(q).reshape(n_labels, height, width).argmax(axis=0)
