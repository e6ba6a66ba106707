# Copyright (c) mmseg-sbce contributors.
"""Multi-scale + flip inference against a loop-by-loop reference."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mmseg_sbce  # noqa: F401
from mmseg_sbce.apis import FUSED_PROB_EPS, map_threshold, multi_scale_maps

import fake_wsss as fw  # noqa: E402  (tests/test_apis is on sys.path under pytest)


def _image(seed=0, size=(21, 30)):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (3, ) + size, dtype=np.uint8))


def _reference_maps(model, img, scales, flip, fusion='logits'):
    """Loop-by-loop reference: one pass per (scale, flip), logits (or probabilities)
    upsampled and averaged; returns the probabilities and the mean threshold logits."""
    x = model.data_preprocessor(dict(inputs=[img]), training=False)['inputs']
    height, width = x.shape[-2:]
    acc, thr, n = 0, 0, 0
    for s in scales:
        for f in ([False, True] if flip else [False]):
            xs = F.interpolate(x, size=(round(height * s), round(width * s)), mode='bilinear',
                               align_corners=False) if s != 1 else x
            xs = xs.flip(-1) if f else xs
            logits, t = model.extract_maps(xs)
            maps = logits.sigmoid() if fusion == 'probs' else logits
            up = F.interpolate(maps, size=(height, width), mode='bilinear',
                               align_corners=False)
            acc = acc + (up.flip(-1) if f else up)[0]
            thr = thr + t[0]
            n += 1
    return (acc / n if fusion == 'probs' else torch.sigmoid(acc / n)), thr / n


def test_multi_scale_flip_equivariant_model():
    model = fw.FakeColorClassifier(stride=1)  # pointwise: flip-equivariant
    img = _image(size=(20, 30))
    with_flip, _ = multi_scale_maps(model, img, None, scales=(1.0, 0.5, 1.5), flip=True)
    no_flip, _ = multi_scale_maps(model, img, None, scales=(1.0, 0.5, 1.5), flip=False)
    assert with_flip.shape == (3, 20, 30)
    torch.testing.assert_close(with_flip, no_flip, atol=1e-6, rtol=0)


def test_multi_scale_matches_reference_and_maps_threshold():
    model = fw.FakeColorClassifier(stride=4, thr_logit=2.0, scale=10.0)
    img = _image(size=(21, 30))  # odd size, stride 4: flip and scales both matter
    scales = (1.0, 0.5, 1.5, 2.0)
    calls = model.forward_calls
    probs, thr = multi_scale_maps(model, img, None, scales=scales, flip=True)
    assert model.forward_calls - calls == len(scales)  # the flip rides in the same batch
    with torch.no_grad():
        ref_probs, ref_thr_logit = _reference_maps(model, img, scales, True)
    torch.testing.assert_close(probs, ref_probs, atol=1e-5, rtol=0)
    torch.testing.assert_close(thr, map_threshold(torch.sigmoid(ref_thr_logit),
                                                  model.decode_head.logit_scale.detach()))
    assert thr[0].item() == pytest.approx(1 / (1 + np.exp(-0.2)), abs=1e-6)
    # Flip passes change a non-equivariant model's maps (so they are really used).
    no_flip, _ = multi_scale_maps(model, img, None, scales=scales, flip=False)
    assert not torch.allclose(no_flip, probs)
    # Preprocessed input gives the same maps; absent classes are zeroed.
    x = model.data_preprocessor(dict(inputs=[img]), training=False)['inputs']
    pre, _ = multi_scale_maps(model, x, torch.tensor([1.0, 0.0, 1.0]), scales=scales)
    torch.testing.assert_close(pre[[0, 2]], probs[[0, 2]])
    assert not pre[1].any()


def test_multi_scale_probability_fusion():
    model = fw.FakeColorClassifier(stride=4, thr_logit=2.0, scale=10.0)
    img = _image(size=(21, 30))
    scales = (1.0, 0.5, 1.5, 2.0)
    probs, thr = multi_scale_maps(model, img, None, scales=scales, fusion='probs')
    with torch.no_grad():
        ref_probs, _ = _reference_maps(model, img, scales, True, fusion='probs')
    torch.testing.assert_close(probs, ref_probs, atol=1e-5, rtol=0)
    by_logits, thr_logits = multi_scale_maps(model, img, None, scales=scales)
    torch.testing.assert_close(thr, thr_logits)  # the threshold does not depend on it
    assert not torch.allclose(probs, by_logits, atol=1e-3)
    # logits=True gives logit(mean p), clamped so that saturated maps stay finite.
    logits, _ = multi_scale_maps(model, img, None, scales=scales, fusion='probs', logits=True)
    torch.testing.assert_close(logits.sigmoid(), probs.clamp(FUSED_PROB_EPS,
                                                             1 - FUSED_PROB_EPS),
                               atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match='fusion'):
        multi_scale_maps(model, img, None, scales=scales, fusion='max')


def test_probability_fusion_is_a_vote():
    """Two passes, one confident (+25) and one not (-4): the logit average says
    foreground with p ~ 1, the probability average is one vote of two (p ~ 0.5)."""

    class TwoScales(torch.nn.Module):
        def extract_maps(self, x):
            value = 25.0 if x.shape[-1] == 8 else -4.0
            return torch.full((x.shape[0], 1) + x.shape[-2:], value), None

    img = torch.zeros(1, 3, 8, 8)
    by_logits, _ = multi_scale_maps(TwoScales(), img, None, scales=(1.0, 0.5), flip=False,
                                    preprocess=False)
    by_probs, _ = multi_scale_maps(TwoScales(), img, None, scales=(1.0, 0.5), flip=False,
                                   preprocess=False, fusion='probs')
    assert by_logits.min() > 0.99  # sigmoid(10.5)
    torch.testing.assert_close(by_probs, torch.full_like(by_probs, (1 + 1 / (1 + np.e**4)) / 2))


def test_multi_scale_restores_modes_and_grad():
    model = fw.FakeColorClassifier()
    model.train()
    model.decode_head.eval()  # a submodule kept in eval mode (e.g. frozen BN)
    probs, _ = multi_scale_maps(model, _image(), [0], scales=(1.0, ))
    assert model.training and not model.decode_head.training and model.conv.training
    assert not probs.requires_grad and torch.is_grad_enabled()


class _SizeSpy(torch.nn.Module):
    """Wraps a classifier and records the input size of every forward pass."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.num_classes = model.num_classes
        self.data_preprocessor = model.data_preprocessor
        self.sizes = []

    def extract_maps(self, inputs):
        self.sizes.append(tuple(inputs.shape[-2:]))
        return self.model.extract_maps(inputs)

    def map_threshold_logits(self, thr_logits):
        return self.model.map_threshold_logits(thr_logits)


def test_pass_sizes_leave_voc_coco_and_demo_sizes_alone():
    from mmseg_sbce.apis.inference import pass_sizes
    scales = (1.0, 0.5, 1.5, 2.0)
    for h, w in [(500, 375), (375, 500), (640, 640), (480, 640), (128, 128), (20, 28)]:
        assert pass_sizes(h, w, scales) == [(round(h * s), round(w * s)) for s in scales]


def test_pass_sizes_upsample_tiny_and_cap_large_images():
    from mmseg_sbce.apis.inference import pass_sizes
    scales = (1.0, 0.5, 1.5, 2.0)
    assert pass_sizes(1, 1, scales) == [(16, 16), (8, 8), (24, 24), (32, 32)]
    assert pass_sizes(8, 4, scales)[0] == (32, 16)  # shorter side to min_side, aspect kept
    sizes = pass_sizes(2000, 3000, scales, max_pixels=1280 * 1280)
    assert max(h * w for h, w in sizes) <= 1280 * 1280 * 1.01
    assert sizes[3] == (1045, 1568)  # aspect kept: sqrt(1280^2 / (4000 * 6000)) * 4000
    assert pass_sizes(2000, 3000, scales, max_pixels=None)[3] == (4000, 6000)
    assert pass_sizes(1, 1, scales, min_side=0)[0] == (1, 1)


@pytest.mark.parametrize('size', [(1, 1), (8, 8), (6, 120), (130, 90)])
def test_multi_scale_maps_at_the_image_size(size):
    """Tiny and extreme-aspect images: labelled at their own size; a capped large image
    (a low max_pixels stands for a 3000 x 2000 photo) too, with no pass over the cap."""
    spy = _SizeSpy(fw.FakeColorClassifier(stride=2))
    cap = 64 * 64 if size == (130, 90) else PSEUDO_MAX
    maps, thr = multi_scale_maps(spy, _image(size=size), None, scales=(1.0, 0.5, 2.0),
                                 flip=True, max_pixels=cap)
    assert maps.shape == (fw.NUM_CLASSES, ) + size
    assert torch.isfinite(maps).all() and thr is not None
    assert min(min(s) for s in spy.sizes) >= 8  # 16 at scale 1.0, 8 at 0.5
    assert max(h * w for h, w in spy.sizes) <= cap * 1.01


PSEUDO_MAX = 1280 * 1280
