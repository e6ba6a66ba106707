# Copyright (c) mmseg-sbce contributors.
"""dense_crf against bare pydensecrf, and the kernels' scaling with the image size."""
import copy
import math

import numpy as np
import pytest

import mmseg_sbce  # noqa: F401
from mmseg_sbce.apis import PSEUDO_CFG_DEFAULTS, dense_crf, resolve_pseudo_cfg
from mmseg_sbce.apis.crf import kernel_widths


def _crf_inputs(seed=0, size=(24, 32), n=3):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size + (3, ), dtype=np.uint8)
    labels = rng.integers(0, n, size).astype(np.uint8)
    labels[:, :size[1] // 2] = 1
    return img, labels


def _bare_crf(img, unary, n, gaussian_sxy=3, bilateral_sxy=40):
    """pydensecrf with the published kernels (absolute pixels unless widths are given)."""
    import pydensecrf.densecrf as dcrf
    h, w = img.shape[:2]
    d = dcrf.DenseCRF2D(w, h, n)
    d.setUnaryEnergy(unary)
    d.addPairwiseGaussian(sxy=gaussian_sxy, compat=3)
    d.addPairwiseBilateral(sxy=bilateral_sxy, srgb=5, rgbim=np.ascontiguousarray(img),
                           compat=10)
    return np.argmax(np.array(d.inference(10)).reshape(n, h, w), axis=0)


def test_kernel_widths_scale_with_the_image_size():
    crf = resolve_pseudo_cfg(dict(crf=dict(size_reference=(500, 375))))['crf']
    # At VOC's size (the reference) the published widths, unchanged.
    assert kernel_widths(crf, 375, 500) == pytest.approx((3.0, 40.0))
    # A 128 x 128 image: sqrt(128 * 128 / 187500) = 0.29560...
    assert kernel_widths(crf, 128, 128) == pytest.approx((0.886810, 11.824134), abs=1e-6)
    # COCO's 640 x 480: 1.28x the reference side.
    assert kernel_widths(crf, 480, 640) == pytest.approx((3.84, 51.2))
    # The default: VOC's size is the reference.
    assert resolve_pseudo_cfg()['crf']['size_reference'] == (500.0, 375.0)
    # Off: absolute pixels at every size (the reference code's behaviour).
    off = resolve_pseudo_cfg(dict(crf=dict(size_reference=None)))['crf']
    assert kernel_widths(off, 128, 128) == (3, 40)
    own = resolve_pseudo_cfg(dict(crf=dict(size_reference=[128, 128])))['crf']
    assert own['size_reference'] == (128.0, 128.0)
    assert kernel_widths(own, 256, 256) == pytest.approx((6.0, 80.0))


@pytest.mark.parametrize('bad', [0, (500, ), (500, 0), (500, -1), ('500', 375), 'voc',
                                 (True, 375)])
def test_bad_size_reference_is_refused(bad):
    with pytest.raises(ValueError, match='crf.size_reference'):
        resolve_pseudo_cfg(dict(crf=dict(size_reference=bad)))


def test_dense_crf_scales_the_kernels():
    """With size_reference (the default's VOC size) a small image gets the scaled widths,
    which label it differently from the absolute ones (size_reference=None)."""
    from pydensecrf.utils import unary_from_labels
    img, labels = _crf_inputs(seed=3, size=(48, 64))
    unary = unary_from_labels(labels, 3, gt_prob=0.7, zero_unsure=False)
    params = copy.deepcopy(PSEUDO_CFG_DEFAULTS['crf'])
    params['size_reference'] = (500, 375)
    scaled = dense_crf(img, labels, 3, params)
    factor = math.sqrt(48 * 64 / (500 * 375))
    np.testing.assert_array_equal(
        scaled, _bare_crf(img, unary, 3, gaussian_sxy=3 * factor, bilateral_sxy=40 * factor))
    absolute = _bare_crf(img, unary, 3)
    assert (scaled != absolute).any()
    np.testing.assert_array_equal(dense_crf(img, labels, 3), scaled)
    params['size_reference'] = None
    np.testing.assert_array_equal(dense_crf(img, labels, 3, params), absolute)


def test_dense_crf_equals_bare_pydensecrf():
    """The published parameters in absolute pixels (size_reference=None, the released code)
    are exactly bare pydensecrf."""
    from pydensecrf.utils import unary_from_labels, unary_from_softmax
    img, labels = _crf_inputs()
    absolute = resolve_pseudo_cfg(dict(crf=dict(size_reference=None)))['crf']
    ours = dense_crf(img, labels, 3, absolute)
    bare = _bare_crf(img, unary_from_labels(labels, 3, gt_prob=0.7, zero_unsure=False), 3)
    np.testing.assert_array_equal(ours, bare)
    assert ours.shape == labels.shape
    # From probabilities.
    rng = np.random.default_rng(1)
    probs = rng.random((3, ) + labels.shape).astype(np.float32)
    probs /= probs.sum(0, keepdims=True)
    np.testing.assert_array_equal(dense_crf(img, probs, 3, absolute),
                                  _bare_crf(img, unary_from_softmax(probs), 3))
    # 255 -> uniform unary: pydensecrf's own "zero = unsure" convention on shifted labels.
    unsure = labels.copy()
    unsure[5:10, 5:20] = 255
    shifted = np.where(unsure == 255, 0, unsure.astype(np.int64) + 1)
    np.testing.assert_array_equal(
        dense_crf(img, unsure, 3, absolute),
        _bare_crf(img, unary_from_labels(shifted, 3, gt_prob=0.7, zero_unsure=True), 3))
