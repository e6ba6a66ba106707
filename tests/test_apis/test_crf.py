# Copyright (c) mmseg-sbce contributors.
"""dense_crf against bare pydensecrf."""
import numpy as np

import mmseg_sbce  # noqa: F401
from mmseg_sbce.apis import dense_crf


def _crf_inputs(seed=0, size=(24, 32), n=3):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size + (3, ), dtype=np.uint8)
    labels = rng.integers(0, n, size).astype(np.uint8)
    labels[:, :size[1] // 2] = 1
    return img, labels


def _bare_crf(img, unary, n):
    import pydensecrf.densecrf as dcrf
    h, w = img.shape[:2]
    d = dcrf.DenseCRF2D(w, h, n)
    d.setUnaryEnergy(unary)
    d.addPairwiseGaussian(sxy=3, compat=3)
    d.addPairwiseBilateral(sxy=40, srgb=5, rgbim=np.ascontiguousarray(img), compat=10)
    return np.argmax(np.array(d.inference(10)).reshape(n, h, w), axis=0)


def test_dense_crf_equals_bare_pydensecrf():
    from pydensecrf.utils import unary_from_labels, unary_from_softmax
    img, labels = _crf_inputs()
    ours = dense_crf(img, labels, 3)
    bare = _bare_crf(img, unary_from_labels(labels, 3, gt_prob=0.7, zero_unsure=False), 3)
    np.testing.assert_array_equal(ours, bare)
    assert ours.shape == labels.shape
    # From probabilities.
    rng = np.random.default_rng(1)
    probs = rng.random((3, ) + labels.shape).astype(np.float32)
    probs /= probs.sum(0, keepdims=True)
    np.testing.assert_array_equal(dense_crf(img, probs, 3),
                                  _bare_crf(img, unary_from_softmax(probs), 3))
    # 255 -> uniform unary: pydensecrf's own "zero = unsure" convention on shifted labels.
    unsure = labels.copy()
    unsure[5:10, 5:20] = 255
    shifted = np.where(unsure == 255, 0, unsure.astype(np.int64) + 1)
    np.testing.assert_array_equal(
        dense_crf(img, unsure, 3),
        _bare_crf(img, unary_from_labels(shifted, 3, gt_prob=0.7, zero_unsure=True), 3))
