# Copyright (c) mmseg-sbce contributors.
import math

import pytest
import torch
from mmengine.structures import PixelData

from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg_sbce.models.heads import SBCEHead
from mmseg_sbce.models.losses import otsu_threshold, spatial_bce_loss

C, IN = 3, 16


def sample(labels, seg=None):
    s = SegDataSample()
    s.gt_labels = torch.tensor(labels, dtype=torch.float32)
    if seg is not None:
        s.gt_sem_seg = PixelData(data=torch.as_tensor(seg).long()[None])
    return s


def batch():
    """Two samples; the second has an all-255 Q map (no Q)."""
    seg = torch.zeros(8, 8, dtype=torch.long)
    seg[:3] = 1  # class 0: 24 / 64
    seg[6:, :4] = 3  # class 2: 8 / 64
    return [sample([1, 0, 1], seg), sample([0, 1, 1], torch.full((8, 8), 255))]


def make_head(**kwargs):
    torch.manual_seed(0)
    head = MODELS.build(dict(type='SBCEHead', in_channels=IN, num_classes=C, **kwargs))
    head.init_weights()
    return head


def feats():
    torch.manual_seed(1)
    return (torch.randn(2, IN, 6, 6).relu() + 0.1).requires_grad_()


def grads(head, x, mode, **loss_kwargs):
    head.set_train_mode(mode)
    head.zero_grad()
    x.grad = None
    losses = head.loss([x], batch())
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    out = {name: p.grad for name, p in head.named_parameters()}
    out['backbone'] = x.grad
    return losses, out


def nonzero(g):
    return g is not None and g.abs().sum().item() > 0


def is_zero(g):
    return g is not None and g.abs().sum().item() == 0


def test_forward_shapes_and_scale_init():
    head = make_head()
    cls_logits, thr_logits = head((torch.randn(2, 8, 5, 5), torch.randn(2, IN, 6, 6)))
    assert cls_logits.shape == (2, C, 6, 6) and thr_logits.shape == (2, C)
    torch.testing.assert_close(head.logit_scale, torch.full((C, ), 10.0))
    torch.testing.assert_close(head.T.detach(), torch.full((C, ), math.log(10)))
    direct = make_head(channels=None)
    assert direct.bottleneck is None and direct.conv_cls.in_channels == IN


def test_targets_fractions_and_validity():
    head = make_head()
    seg = torch.full((4, 5), 255)
    seg[0, :] = 1  # 5 pixels of class 0
    seg[1, :2] = 0
    seg[1, 2] = 7  # a label outside 1..C counts as "not class c"
    labels, fractions, valid = head.get_targets(
        [sample([1, 0, 0], seg), sample([0, 1, 0]), batch()[1]], torch.device('cpu'))
    torch.testing.assert_close(fractions[0], torch.tensor([5 / 8, 0., 0.]))
    assert valid.tolist() == [True, False, False]
    assert (fractions[1:] == 0).all() and labels.shape == (3, C)
    with pytest.raises(KeyError):
        head.get_targets([SegDataSample()], torch.device('cpu'))


@pytest.mark.parametrize('mode, keys', [
    ('bce', {'loss_bce', 'frac_gap', 'mean_scale'}),
    ('sbce-classifier', {'loss_sbce', 'loss_kl', 'mean_thr', 'frac_gap', 'mean_scale'}),
    ('sbce-threshold', {'loss_sbce', 'loss_kl', 'mean_thr', 'frac_gap', 'mean_scale'}),
])
def test_loss_keys_per_mode(mode, keys):
    head = make_head()
    head.set_train_mode(mode)
    losses = head.loss([feats()], batch())
    assert set(losses) == keys
    assert all(torch.isfinite(v) for v in losses.values())
    for key in keys - {'loss_bce', 'loss_sbce', 'loss_kl'}:
        assert 'loss' not in key and not losses[key].requires_grad


def test_gradient_flow_bce():
    _, g = grads(make_head(), feats(), 'bce')
    assert nonzero(g['backbone']) and nonzero(g['bottleneck.weight'])
    assert nonzero(g['conv_cls.weight'])
    assert is_zero(g['T']) and is_zero(g['conv_thr.weight'])  # touched, not trained


def test_gradient_flow_sbce_classifier():
    _, g = grads(make_head(), feats(), 'sbce-classifier')
    for name in ('backbone', 'bottleneck.weight', 'conv_cls.weight', 'T'):
        assert nonzero(g[name]), name
    assert is_zero(g['conv_thr.weight'])


def test_gradient_flow_sbce_threshold():
    _, g = grads(make_head(), feats(), 'sbce-threshold')
    for name in ('backbone', 'conv_thr.weight', 'conv_cls.weight', 'bottleneck.weight', 'T'):
        assert nonzero(g[name]), name
    # Without the KL term, only the branch (and the backbone through it) learns: p is
    # detached in this sub-phase.
    head = make_head(loss_kl=dict(type='ProportionKLLoss', loss_weight=0.0))
    _, g = grads(head, feats(), 'sbce-threshold')
    assert nonzero(g['conv_thr.weight']) and nonzero(g['backbone'])
    for name in ('conv_cls.weight', 'bottleneck.weight', 'T'):
        assert is_zero(g[name]), name
    head = make_head(loss_kl=dict(type='ProportionKLLoss', loss_weight=0.0),
                     detach_thr_feats=True)
    _, g = grads(head, feats(), 'sbce-threshold')
    assert nonzero(g['conv_thr.weight']) and is_zero(g['backbone'])


def test_without_touch_idle_params_grads_stay_none():
    _, g = grads(make_head(touch_idle_params=False), feats(), 'bce')
    assert g['conv_thr.weight'] is None and g['T'] is None


def test_sample_without_q_map():
    head = make_head()
    x = torch.randn(2, C, 6, 6, requires_grad=True)
    thr_logits = torch.zeros(2, C, requires_grad=True)
    labels, fractions, valid = head.get_targets(batch(), torch.device('cpu'))
    assert valid.tolist() == [True, False]
    head.set_train_mode('sbce-classifier')
    losses = head.loss_by_feat((x, thr_logits), labels, fractions, valid)
    (losses['loss_sbce'] + losses['loss_kl']).backward()
    g = x.grad.abs().sum(dim=(2, 3))
    # sample 1 (no Q): positive maps (classes 1, 2) get nothing, its negative map does
    assert g[1, 1] == 0 and g[1, 2] == 0 and g[1, 0] > 0
    assert (g[0] > 0).all()
    head.set_train_mode('sbce-threshold')
    x.grad = None
    losses = head.loss_by_feat((x, thr_logits), labels, fractions, valid)
    (losses['loss_sbce'] + losses['loss_kl']).backward()
    # its threshold is still trained; its maps get no KL (no Q) and no Spatial-BCE (p detached)
    assert (thr_logits.grad[1, 1:] != 0).all() and thr_logits.grad[1, 0] == 0
    assert x.grad[1].abs().sum() == 0 and x.grad[0].abs().sum() > 0


def test_logit_scale_used_in_training_not_in_inference():
    head = make_head()
    x = feats().detach()
    metas = [dict(img_shape=(12, 12), pad_shape=(12, 12))] * 2
    logits, thr = head.predict([x], metas)
    with torch.no_grad():
        head.T.add_(1.0)
    logits2, thr2 = head.predict([x], metas)
    torch.testing.assert_close(logits, logits2)  # no scale in the probability maps...
    assert not torch.allclose(thr, thr2)  # ...the threshold is mapped instead
    assert logits.shape == (2, C, 12, 12)
    _, thr_logits = head([x])
    torch.testing.assert_close(thr2, torch.sigmoid(thr_logits / head.logit_scale))
    # training losses do depend on the scale
    head.set_train_mode('sbce-classifier')
    l1 = head.loss([x], batch())['loss_kl']
    with torch.no_grad():
        head.T.sub_(1.0)
    assert not torch.allclose(l1, head.loss([x], batch())['loss_kl'])


def test_logit_centre_is_subtracted_from_the_logits_everywhere():
    """A set centre c is a fixed per-class bias: the head's logits (training and inference)
    are the uncentred ones minus c; the threshold branch and its mapping do not change,
    and the centre takes no gradient."""
    head = make_head(logit_scale_init=0.5)
    x = feats().detach()
    metas = [dict(img_shape=(6, 6), pad_shape=(6, 6))] * 2
    cls_logits, thr_logits = head([x])
    seg_logits, thr = head.predict([x], metas)
    centre = torch.tensor([3.0, -1.5, 0.25])
    assert not bool(head.logit_centre_set)
    head.set_logit_centre(centre)
    assert bool(head.logit_centre_set)
    cls2, thr_logits2 = head([x])
    torch.testing.assert_close(cls2, cls_logits - centre.view(1, -1, 1, 1))
    torch.testing.assert_close(thr_logits2, thr_logits)
    seg2, thr2 = head.predict([x], metas)
    torch.testing.assert_close(seg2, seg_logits - centre.view(1, -1, 1, 1))
    torch.testing.assert_close(thr2, thr)
    assert 'logit_centre' not in dict(head.named_parameters())
    # the losses read the centred logits: equal to an uncentred head's on shifted logits
    head.set_train_mode('sbce-classifier')
    plain = make_head(logit_scale_init=0.5)
    plain.set_train_mode('sbce-classifier')
    labels, fractions, valid = head.get_targets(batch(), x.device)
    ours = head.loss([x], batch())
    theirs = plain.loss_by_feat((cls_logits - centre.view(1, -1, 1, 1), thr_logits), labels,
                                fractions, valid)
    for key in ('loss_sbce', 'loss_kl', 'frac_gap'):
        torch.testing.assert_close(ours[key], theirs[key], msg=key)


def test_a_checkpoint_from_before_the_logit_centre_loads_strictly():
    """State dicts written before the centre existed load (also strictly) with the
    paper's centre: 0, not set."""
    head = make_head()
    head.set_logit_centre(torch.tensor([1.0, 2.0, 3.0]))
    old = {k: v for k, v in make_head().state_dict().items() if 'logit_centre' not in k}
    head.load_state_dict(old, strict=True)
    assert head.logit_centre.tolist() == [0.0, 0.0, 0.0] and not bool(head.logit_centre_set)
    # and a checkpoint with a centre restores it
    saved = make_head()
    saved.set_logit_centre(torch.tensor([1.0, 2.0, 3.0]))
    head.load_state_dict(saved.state_dict(), strict=True)
    assert head.logit_centre.tolist() == [1.0, 2.0, 3.0] and bool(head.logit_centre_set)


def test_bce_mode_ignores_the_scale():
    head = make_head()
    x = feats().detach()
    l1 = head.loss([x], batch())['loss_bce']
    with torch.no_grad():
        head.T.add_(2.0)
    torch.testing.assert_close(l1, head.loss([x], batch())['loss_bce'])


def test_bad_mode():
    head = make_head()
    with pytest.raises(ValueError):
        head.set_train_mode('cam')
    with pytest.raises(ValueError):
        make_head(train_mode='x')


BACKBONES = [
    (dict(type='ResNet38d', widen_factor=1 / 16), 256),
    (dict(type='ResNetV1c', depth=18, stem_channels=8, base_channels=8,
          norm_cfg=dict(type='BN')), 64),
    (dict(type='VGG16OS8', base_channels=4, fc_channels=16, fc6_dilation=2), 16),
]


@pytest.mark.parametrize('backbone, channels', BACKBONES)
def test_head_on_any_backbone(backbone, channels):
    model = MODELS.build(backbone)
    head = MODELS.build(dict(type='SBCEHead', in_channels=channels, num_classes=C))
    outs = model(torch.randn(2, 3, 32, 32))
    head.set_train_mode('sbce-classifier')
    seg = torch.ones(8, 8)
    losses = head.loss(outs, [sample([1, 0, 0], seg), sample([0, 0, 1], seg * 3)])
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert head.conv_cls.weight.grad is not None


def test_head_on_mmpretrain_vgg():
    try:
        from mmpretrain.models.backbones import VGG
    except Exception as exc:  # mmpretrain.models imports torchvision
        pytest.skip(f'mmpretrain VGG unavailable here: {exc}')
    outs = VGG(depth=11, out_indices=(3, ))(torch.randn(1, 3, 32, 32))
    head = SBCEHead(in_channels=512, num_classes=C)
    assert head(outs)[0].shape[:2] == (1, C)


@pytest.mark.parametrize('mode', ['sbce-classifier', 'sbce-threshold'])
@pytest.mark.parametrize('case', ['absent', 'whole', 'all_background'])
def test_q_edge_cases_are_finite(mode, case):
    """A positive class absent from its Q map (Q = 0, e.g. dCRF lost it), covering the whole
    image (Q = 1), or a map where dCRF kept no foreground at all: finite loss and gradients.
    With Q = 0 the percentile threshold is the map's maximum (every pixel is pushed down),
    which may round to 1.0 in float32; the loss clamps it."""
    seg = {
        'absent': torch.where(torch.arange(64).view(8, 8) < 32, 1, 0),  # class 2 absent
        'whole': torch.full((8, 8), 1),  # class 0 covers the image
        'all_background': torch.zeros(8, 8, dtype=torch.long),
    }[case]
    head = make_head()
    head.set_train_mode(mode)
    x = (torch.randn(1, IN, 6, 6) * 5).requires_grad_()
    losses = head.loss([x], [sample([1, 0, 1], seg)])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)
    if 'mean_thr' in losses:
        assert 0 < float(losses['mean_thr']) <= 1


def _capture_loss_sbce_calls(head):
    """Record the arguments every call of ``head.loss_sbce`` receives."""
    calls = []

    def hook(module, args, kwargs):
        calls.append((args, kwargs))

    head.loss_sbce.register_forward_pre_hook(hook, with_kwargs=True)
    return calls


def test_classifier_threshold_is_percentile_of_scaled_logits_by_hand():
    """One positive 1x4 map, scale 10, target fraction 1/2: the threshold is the 3rd largest
    SCALED logit (index floor(0.5 * 4) = 2 of the descending sort), i.e. 5, not the 3rd
    largest unscaled logit 0.5 (which the same map would give without the scale)."""
    head = make_head()  # logit scale initialised to 10
    x = torch.tensor([-1., 0.5, 1., 2.], dtype=torch.float64).view(1, 1, 1, 4)
    cls_logits = torch.cat([x, -x, x], dim=1)  # class 0 positive, 1 and 2 negative
    labels = torch.tensor([[1., 0., 0.]], dtype=torch.float64)
    fractions = torch.tensor([[0.5, 0., 0.]], dtype=torch.float64)
    valid = torch.tensor([True])
    calls = _capture_loss_sbce_calls(head)
    head.set_train_mode('sbce-classifier')
    losses = head.loss_by_feat((cls_logits, torch.zeros(1, C)), labels, fractions, valid)
    (scaled, _, thr_logit), _ = calls[-1]
    torch.testing.assert_close(scaled, cls_logits * 10)
    assert thr_logit[0, 0].item() == pytest.approx(5.0)
    assert losses['mean_thr'].item() == pytest.approx(1 / (1 + math.exp(-5.0)))
    expected = spatial_bce_loss(cls_logits * 10, labels,
                                torch.tensor([[5., 0., 0.]], dtype=torch.float64))
    assert losses['loss_sbce'].item() == pytest.approx(expected.item(), rel=1e-6)


def test_classifier_threshold_splits_scaled_maps_at_target_fraction():
    """Random maps, per-class scales: exactly floor(f * N) scaled logits of every positive
    map with a Q lie above its threshold (the values are distinct)."""
    head = make_head()
    with torch.no_grad():
        head.T.copy_(torch.log(torch.tensor([3., 10., 25.])))
    torch.manual_seed(3)
    cls_logits = torch.randn(2, C, 6, 6, dtype=torch.float64) + 0.5
    labels, fractions, valid = head.get_targets(batch(), torch.device('cpu'))
    calls = _capture_loss_sbce_calls(head)
    head.set_train_mode('sbce-classifier')
    head.loss_by_feat((cls_logits, torch.zeros(2, C)), labels, fractions, valid)
    (scaled, _, thr_logit), _ = calls[-1]
    with_q = (labels > 0.5) & valid[:, None]
    assert with_q.sum() == 2
    for b, c in with_q.nonzero().tolist():
        above = (scaled[b, c] > thr_logit[b, c]).sum().item()
        assert above == math.floor(fractions[b, c].item() * 36), (b, c)


def test_threshold_sub_phase_uses_side_mean_by_hand():
    """Scale 1, two positive 1x2 maps with t = 0.4 and a negative one: the threshold
    sub-phase's Spatial-BCE is mean(R below t) + mean(R above t) over positive pixels, not
    the mean of all terms (which would also count the negative map)."""
    head = make_head()
    with torch.no_grad():
        head.T.zero_()
    probs = torch.tensor([[[[0.1, 0.7]], [[0.2, 0.5]], [[0.3, 0.9]]]], dtype=torch.float64)
    labels = torch.tensor([[1., 0., 1.]], dtype=torch.float64)
    thr_logits = torch.logit(torch.full((1, C), 0.4, dtype=torch.float64))
    head.set_train_mode('sbce-threshold')
    losses = head.loss_by_feat((torch.logit(probs), thr_logits), labels,
                               torch.tensor([[0.5, 0., 0.5]]), torch.tensor([True]))

    def below(p):
        return 1 - (1 - p / 0.4)**2

    def above(p):
        return 1 - ((p - 0.4) / 0.6)**2

    expected = (below(0.1) + below(0.3)) / 2 + (above(0.7) + above(0.9)) / 2
    assert losses['loss_sbce'].item() == pytest.approx(expected, rel=1e-6)
    all_terms = (below(0.1) + above(0.7) + below(0.3) + above(0.9) - math.log(0.8) -
                 math.log(0.5)) / 6
    assert abs(expected - all_terms) > 0.1  # the two reductions are far apart here


def padded_sample(labels, seg, img_shape, padding_size):
    s = sample(labels, seg)
    s.set_metainfo(dict(img_shape=img_shape, padding_size=padding_size))
    return s


def test_valid_pixels_rule_by_hand():
    """A 20 x 12 crop padded to 32 x 24 (bottom 12, right 12), logits at stride 8 (4 x 3):
    rows 0-1 lie on the image (row 2 spans input rows 16-24, partly padding), column 0."""
    seg = torch.zeros(32, 24, dtype=torch.long)
    padded = padded_sample([1, 0, 0], seg, (20, 12), (0, 12, 0, 12))
    whole = padded_sample([1, 0, 0], seg, (32, 24), (0, 0, 0, 0))
    mask = SBCEHead.get_valid_pixels([padded, whole], (4, 3), torch.device('cpu'))
    expected = torch.zeros(4, 3, dtype=torch.bool)
    expected[:2, :1] = True
    assert torch.equal(mask[0], expected) and mask[1].all()
    # No sample padded (or no padding recorded): None, every cell counts.
    assert SBCEHead.get_valid_pixels([whole, sample([1, 0, 0], seg)], (4, 3), 'cpu') is None
    # An image smaller than one cell keeps one cell.
    tiny = padded_sample([1, 0, 0], seg, (3, 3), (0, 21, 0, 29))
    assert SBCEHead.get_valid_pixels([tiny], (4, 3), 'cpu').sum() == 1


def test_padded_crop_has_the_targets_of_the_unpadded_crop():
    """A 16 x 16 crop (2 x 2 logit cells at stride 8) and the same crop padded to 32 x 32
    (4 x 4 cells, the padding's cells at logit 5): same KL predicted fraction, same
    percentile threshold, same frac_gap. By hand, with scale 1 and target fraction 1/4 for
    class 0: the threshold is the 2nd largest of [1, 3, -2, 0.5] (index floor(4 / 4) = 1),
    i.e. 1; counting the padding it would be 5 (index 4 of 16 values, 12 of them 5)."""
    head = make_head()
    with torch.no_grad():
        head.T.zero_()
    crop = torch.tensor([[1., 3.], [-2., 0.5]])
    small = torch.zeros(1, C, 2, 2)
    small[0, 0] = crop
    big = torch.full((1, C, 4, 4), 5.)
    big[0, :, :2, :2] = small[0]
    seg = torch.zeros(16, 16, dtype=torch.long)
    seg[:8, :8] = 1  # class 0: 64 / 256
    seg_pad = torch.full((32, 32), 255)
    seg_pad[:16, :16] = seg
    unpadded = padded_sample([1, 0, 0], seg, (16, 16), (0, 0, 0, 0))
    padded = padded_sample([1, 0, 0], seg_pad, (16, 16), (0, 16, 0, 16))

    def losses_for(logits, data_sample):
        head._forward_feats = lambda feats, detach_thr=False: (logits, torch.zeros(1, C))
        return head.loss([torch.zeros(1, IN, 1, 1)], [data_sample])

    head.set_train_mode('sbce-classifier')
    ref, out = losses_for(small, unpadded), losses_for(big, padded)
    assert ref['mean_thr'].item() == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert out['mean_thr'].item() == ref['mean_thr'].item()
    p = torch.sigmoid(crop).mean().item()
    expected_kl = p * math.log(p / 0.25) + (1 - p) * math.log((1 - p) / 0.75)
    assert ref['loss_kl'].item() == pytest.approx(expected_kl, rel=1e-5)
    torch.testing.assert_close(out['loss_kl'], ref['loss_kl'])
    torch.testing.assert_close(out['frac_gap'], ref['frac_gap'])
    head.set_train_mode('bce')
    torch.testing.assert_close(losses_for(big, padded)['frac_gap'],
                               losses_for(small, unpadded)['frac_gap'])


def test_percentile_threshold_loss_by_hand():
    """threshold_loss='percentile': one positive 1x4 map with a Q (scale 10, fraction 1/2:
    target logit 5, the 3rd largest scaled logit), one positive map without a Q and one
    whose Q fraction is 0 (no term):
    smooth L1 between the branch's logit 4 and 5 is 0.5 (|d| <= 1: d^2 / 2); logged as
    loss_thr, and only the branch (and the backbone through it) gets its gradient."""
    head = make_head(threshold_loss='percentile')
    x = torch.tensor([-1., 0.5, 1., 2.], dtype=torch.float64).view(1, 1, 1, 4)
    cls_logits = torch.cat([x, -x, x], dim=1).repeat(3, 1, 1, 1)
    labels = torch.tensor([[1., 0., 0.], [1., 0., 0.], [1., 0., 0.]], dtype=torch.float64)
    # The third sample's Q gives its class no pixel: its percentile is the map's maximum
    # ("label nothing"), not a target for the branch.
    fractions = torch.tensor([[0.5, 0., 0.], [0., 0., 0.], [0., 0., 0.]], dtype=torch.float64)
    valid = torch.tensor([True, False, True])
    thr_logits = torch.tensor([[4., 0., 0.], [-9., 0., 0.], [-9., 0., 0.]],
                              dtype=torch.float64, requires_grad=True)
    head.set_train_mode('sbce-threshold')
    losses = head.loss_by_feat((cls_logits, thr_logits), labels, fractions, valid)
    assert 'loss_sbce' not in losses and {'loss_thr', 'loss_kl'} <= set(losses)
    assert losses['loss_thr'].item() == pytest.approx(0.5)
    losses['loss_thr'].backward()
    torch.testing.assert_close(thr_logits.grad, torch.tensor(
        [[-1., 0., 0.], [0., 0., 0.], [0., 0., 0.]],
        dtype=torch.float64))  # d(0.5 (t - 5)^2)/dt = -1
    # Far from the target: the linear part of smooth L1 (|d| - 1/2).
    far = thr_logits.detach().clone()
    far[0, 0] = -3.
    losses = head.loss_by_feat((cls_logits, far), labels, fractions, valid)
    assert losses['loss_thr'].item() == pytest.approx(7.5)


def test_percentile_threshold_gradient_flow():
    head = make_head(threshold_loss='percentile',
                     loss_kl=dict(type='ProportionKLLoss', loss_weight=0.0))
    losses, g = grads(head, feats(), 'sbce-threshold')
    assert set(losses) == {'loss_thr', 'loss_kl', 'mean_thr', 'frac_gap', 'mean_scale'}
    assert nonzero(g['conv_thr.weight']) and nonzero(g['backbone'])
    for name in ('conv_cls.weight', 'bottleneck.weight', 'T'):
        assert is_zero(g[name]), name
    # The classifier sub-phase is the paper's either way.
    losses, _ = grads(make_head(threshold_loss='percentile'), feats(), 'sbce-classifier')
    assert 'loss_sbce' in losses and 'loss_thr' not in losses
    with pytest.raises(ValueError, match='threshold_loss'):
        make_head(threshold_loss='side_mean')


def test_otsu_threshold_loss_by_hand():
    """threshold_loss='otsu': the target is Otsu's threshold of the UNSCALED logits
    (256 bins over each map's own range) and the branch is compared in that space,
    thr_logits / s. Map x = [-2, -2, -2, 2]: the tied splits lie after bins 0-254, the
    middle one after bin 127, target -2 + 4 * 128 / 256 = 0. Scale 0.5, branch logit 0.2:
    unscaled 0.4, smooth L1 (d^2 / 2) = 0.08. A map [-2, -2, 1, 3] has a different
    split: after 0 and -2 the groups {-2, -2} / {1, 3} score 2 * 2 * 4^2 = 64 against
    {-2, -2, 1} / {3} 3 * 1 * 4^2 = 48; 1 falls in bin 153 (3 / 5 of the range), so the
    tied splits lie after bins 0-152, the middle one after bin 76, target
    -2 + 5 * 77 / 256 = -0.49609375. Every positive map has a target, with or without a Q."""
    head = make_head(threshold_loss='otsu', logit_scale_init=0.5)
    x = torch.tensor([-2., -2., -2., 2.], dtype=torch.float64).view(1, 1, 1, 4)
    cls_logits = torch.cat([x, -x, x], dim=1).repeat(2, 1, 1, 1)
    cls_logits[1, 0] = torch.tensor([-2., -2., 1., 3.], dtype=torch.float64)
    labels = torch.tensor([[1., 0., 0.], [1., 0., 0.]], dtype=torch.float64)
    fractions = torch.zeros(2, 3, dtype=torch.float64)
    valid = torch.tensor([True, False])  # the second sample has no Q: still a target
    thr_logits = torch.tensor([[0.2, 5., 5.], [0.2, 5., 5.]], dtype=torch.float64,
                              requires_grad=True)
    head.set_train_mode('sbce-threshold')
    losses = head.loss_by_feat((cls_logits, thr_logits), labels, fractions, valid)
    assert 'loss_sbce' not in losses and {'loss_thr', 'loss_kl'} <= set(losses)
    d = torch.tensor([0.4 - 0., 0.4 + 0.49609375], dtype=torch.float64)
    assert losses['loss_thr'].item() == pytest.approx((d * d / 2).mean().item())
    losses['loss_thr'].backward()
    # d/d(thr) of (thr / s - target)^2 / 2, averaged over the two positive maps.
    expected = torch.zeros(2, 3, dtype=torch.float64)
    expected[:, 0] = d / 0.5 / 2
    torch.testing.assert_close(thr_logits.grad, expected)
    # The same target for any logit scale: the scale only converts the branch's output.
    head4 = make_head(threshold_loss='otsu', logit_scale_init=4.0)
    head4.set_train_mode('sbce-threshold')
    losses = head4.loss_by_feat((cls_logits, thr_logits.detach() * 8), labels, fractions,
                                valid)
    assert losses['loss_thr'].item() == pytest.approx((d * d / 2).mean().item())


def test_otsu_threshold_gradient_flow():
    head = make_head(threshold_loss='otsu', loss_kl=dict(type='ProportionKLLoss',
                                                         loss_weight=0.0))
    losses, g = grads(head, feats(), 'sbce-threshold')
    assert set(losses) == {'loss_thr', 'loss_kl', 'mean_thr', 'frac_gap', 'mean_scale'}
    assert nonzero(g['conv_thr.weight']) and nonzero(g['backbone'])
    for name in ('conv_cls.weight', 'bottleneck.weight', 'T'):
        assert is_zero(g[name]), name


@pytest.mark.parametrize('threshold_loss', ['sbce', 'percentile', 'otsu'])
def test_threshold_branch_on_a_weakly_separated_map(threshold_loss):
    """The branch alone (a free threshold logit) trained on one fixed map whose scaled
    probabilities are compressed (90 % of pixels around 0.47, 10 % around 0.57: a small
    logit scale, weakly separated classes), with Q = 10 %. The paper's side-mean objective
    drives t to an edge of the distribution (everything on one side: an empty side costs
    0), labelling the whole map or none of it; the percentile regression lands where Q's
    fraction of the pixels lies above t; Otsu's split lands between the two groups."""
    torch.manual_seed(0)
    probs = torch.cat([0.47 + 0.02 * torch.randn(90), 0.57 + 0.02 * torch.randn(10)])
    scaled = torch.logit(probs).view(1, 1, 10, 10).repeat(1, C, 1, 1)
    head = make_head(threshold_loss=threshold_loss)
    with torch.no_grad():
        head.T.zero_()  # scale 1: the scaled logits are the ones above
    labels = torch.tensor([[1., 0., 0.]])
    fractions = torch.tensor([[0.1, 0., 0.]])
    thr = torch.zeros(1, C, requires_grad=True)  # t = 0.5, inside the distribution
    opt = torch.optim.Adam([thr], lr=0.05)
    head.set_train_mode('sbce-threshold')
    for _ in range(300):
        opt.zero_grad()
        losses = head.loss_by_feat((scaled, thr), labels, fractions, torch.tensor([True]))
        losses['loss_sbce' if threshold_loss == 'sbce' else 'loss_thr'].backward()
        opt.step()
    above = (probs > torch.sigmoid(thr[0, 0].detach())).float().mean().item()
    if threshold_loss == 'sbce':
        assert above in (0.0, 1.0)
    elif threshold_loss == 'percentile':
        assert above == pytest.approx(0.1, abs=0.011)
    else:
        # The branch reaches its target, Otsu's split, which lies between the groups.
        logits = torch.logit(probs).view(1, 1, 10, 10)
        split = (logits > otsu_threshold(logits, value_range=None)).float().mean().item()
        assert 0.05 < split < 0.2
        assert above == pytest.approx(split, abs=0.011)


def test_q_count_threshold_loss_by_hand():
    """threshold_loss='q_count': the branch regresses each sample's ``gt_thr_logits``
    (the split of its fused map at Q's count) in the unscaled space thr_logits / s, on
    the positive maps that have one (NaN: none), smooth L1. Scale 0.5: branch logits
    [0.2, 0.3] -> unscaled [0.4, 0.6]; targets [1.9, NaN] for sample 0's positive classes
    0 and 1, [2.6] for sample 1's class 0 and a target for its absent class 2 (ignored).
    Differences 1.5 (L1 part: 1.5 - 0.5 = 1.0) and 2.0 (1.5): mean 1.25."""
    head = make_head(threshold_loss='q_count', logit_scale_init=0.5)
    cls_logits = torch.zeros(2, C, 2, 2, dtype=torch.float64)
    labels = torch.tensor([[1., 1., 0.], [1., 0., 0.]], dtype=torch.float64)
    thr_logits = torch.tensor([[0.2, 0.3, 9.], [0.3, 9., 9.]], dtype=torch.float64,
                              requires_grad=True)
    nan = float('nan')
    targets = torch.tensor([[1.9, nan, nan], [2.6, nan, -4.]], dtype=torch.float64)
    head.set_train_mode('sbce-threshold')
    losses = head.loss_by_feat((cls_logits, thr_logits), labels, torch.zeros(2, C),
                               torch.tensor([True, True]), thr_targets=targets)
    assert 'loss_sbce' not in losses and {'loss_thr', 'loss_kl'} <= set(losses)
    assert losses['loss_thr'].item() == pytest.approx(1.25)
    losses['loss_thr'].backward()
    # d/d(thr) of smooth L1 (|d| > 1: sign(d)) through thr / s, averaged over the 2 maps.
    expected = torch.zeros(2, C, dtype=torch.float64)
    expected[0, 0] = expected[1, 0] = -1 / 0.5 / 2
    torch.testing.assert_close(thr_logits.grad, expected)
    assert torch.isfinite(thr_logits.grad).all()
    with pytest.raises(ValueError, match='thr_targets'):
        head.loss_by_feat((cls_logits, thr_logits), labels, torch.zeros(2, C),
                          torch.tensor([True, True]))


def test_q_count_targets_from_the_data_samples():
    """q_count: the branch is a regressor on detached features, trained in both SBCE
    sub-phases; in the classifier sub-phase its loss is added to Spatial-BCE and KL and
    reaches nothing else, and those reach nothing of the branch."""
    head = make_head(threshold_loss='q_count')
    samples = batch()
    samples[0].gt_thr_logits = torch.tensor([1.5, float('nan'), -0.5])
    samples[1].gt_thr_logits = torch.tensor([float('nan'), 2., 0.])
    torch.manual_seed(1)
    x = (torch.randn(2, IN, 6, 6).relu() + 0.1).requires_grad_()
    head.set_train_mode('sbce-threshold')
    losses = head.loss([x], samples)
    assert set(losses) == {'loss_thr', 'loss_kl', 'mean_thr', 'frac_gap', 'mean_scale'}
    losses['loss_thr'].backward()
    assert nonzero(head.conv_thr.weight.grad)
    for p in (x, head.conv_cls.weight, head.bottleneck.weight, head.T):
        assert is_zero(p.grad)
    head.conv_thr.weight.grad = None
    head.set_train_mode('sbce-classifier')
    losses = head.loss([x], samples)
    assert {'loss_sbce', 'loss_kl', 'loss_thr'} <= set(losses)
    # the same regression as in the threshold sub-phase (same weights, same targets)
    head.set_train_mode('sbce-threshold')
    assert losses['loss_thr'].item() == pytest.approx(
        head.loss([x], samples)['loss_thr'].item())
    (losses['loss_sbce'] + losses['loss_kl']).backward(retain_graph=True)
    assert is_zero(head.conv_thr.weight.grad) and nonzero(x.grad)
    x.grad = None
    losses['loss_thr'].backward()
    assert nonzero(head.conv_thr.weight.grad) and not nonzero(x.grad)
    # the BCE phase does not need the targets; both SBCE modes do
    head.set_train_mode('bce')
    head.loss([x], batch())
    for mode in ('sbce-classifier', 'sbce-threshold'):
        head.set_train_mode(mode)
        with pytest.raises(KeyError, match=r'with_thresholds=True.*save_maps=True'):
            head.loss([x], batch())
    samples[1].gt_thr_logits = torch.zeros(C + 1)
    with pytest.raises(ValueError, match=r'gt_thr_logits must have shape \(3,\)'):
        head.loss([x], samples)
