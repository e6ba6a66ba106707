# Copyright (c) mmseg-sbce contributors.
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

import mmseg_sbce  # noqa: F401  (registers the plugin, installs the mmcv-lite stub)
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

C = 4


def build(test_cfg=None, test_pad=None):
    init_default_scope('mmseg')
    torch.manual_seed(0)
    preproc = dict(
        type='SegDataPreProcessor',
        mean=[120.0, 115.0, 100.0],
        std=[60.0, 60.0, 60.0],
        size_divisor=8,
        pad_val=0,
        seg_pad_val=255,
        test_cfg=test_pad)
    model = MODELS.build(
        dict(
            type='SBCEClassifier',
            backbone=dict(
                type='ResNet38d',
                widen_factor=1 / 16,
                frozen_stages=-1,
                norm_eval=False,
                norm_cfg=dict(type='BN', requires_grad=True)),
            decode_head=dict(type='SBCEHead', in_channels=256, num_classes=C),
            data_preprocessor=preproc,
            test_cfg=test_cfg))
    model.init_weights()
    return model


def samples(shape=(60, 52), flip=False):
    out = []
    for b in range(2):
        s = SegDataSample(metainfo=dict(ori_shape=shape, img_shape=shape, flip=flip,
                                        flip_direction='horizontal'))
        s.gt_labels = torch.tensor([1., 0., 1., 0.]) if b == 0 else torch.tensor(
            [0., 1., 0., 0.])
        seg = torch.zeros(1, *shape, dtype=torch.long)
        seg[:, :20] = 1
        seg[:, 40:] = 3
        if b == 1:
            seg[:] = 255  # no Q yet
        s.gt_sem_seg = PixelData(data=seg)
        out.append(s)
    return out


def images(shape=(60, 52)):
    torch.manual_seed(3)
    return [torch.randint(0, 255, (3, ) + shape, dtype=torch.uint8) for _ in range(2)]


@pytest.fixture(scope='module')
def model():
    return build()


@pytest.mark.parametrize('mode', ['bce', 'sbce-classifier', 'sbce-threshold'])
def test_loss_every_mode(model, mode):
    model.set_train_mode(mode)
    assert model.train_mode == mode and model.decode_head.train_mode == mode
    model.train()
    data = model.data_preprocessor(dict(inputs=images(), data_samples=samples()), True)
    losses = model(**data, mode='loss')
    expected = {'loss_bce'} if mode == 'bce' else {'loss_sbce', 'loss_kl', 'mean_thr'}
    assert expected <= set(losses)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    model.zero_grad()
    total.backward()
    assert model.backbone.b7.conv_branch2b2.weight.grad.abs().sum() > 0
    model.set_train_mode('bce')


def test_extract_maps_and_tensor_mode(model):
    model.eval()
    x = torch.randn(2, 3, 64, 48)
    cls_logits, thr_logits = model.extract_maps(x)
    assert cls_logits.shape == (2, C, 8, 6) and thr_logits.shape == (2, C)
    out = model(x, mode='tensor')
    torch.testing.assert_close(out[0], cls_logits)


def test_predict_shapes_labels_and_scores(model):
    model.eval()
    data = model.data_preprocessor(dict(inputs=images(), data_samples=samples()), False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    for result, allowed in zip(results, ([0, 1, 3], [0, 2])):
        pred = result.pred_sem_seg.data
        assert pred.shape == (1, 60, 52)
        assert set(pred.unique().tolist()) <= set(allowed)
        assert result.seg_logits.data.shape == (C + 1, 60, 52)
        torch.testing.assert_close(result.seg_logits.data.argmax(0, keepdim=True), pred)


def test_predict_without_samples_uses_all_classes(model):
    model.eval()
    with torch.no_grad():
        results = model.predict(torch.randn(1, 3, 32, 40))
    assert results[0].pred_sem_seg.data.shape == (1, 32, 40)


def test_postprocess_is_eq9_with_padding_and_flip(model):
    # logits at a padded 8x8 input; the image is the top-left 6x5
    logits = torch.full((1, C, 8, 8), -5.0)
    logits[0, 0, :, :2] = 2.0  # class 0 strong in the two left columns
    logits[0, 2, :3, :] = 0.0  # class 2: p = 0.5 in the top rows
    thr = torch.tensor([[0.6, 0.6, 0.4, 0.6]])
    meta = dict(ori_shape=(6, 5), img_shape=(6, 5), padding_size=[0, 3, 0, 2])
    s = SegDataSample(metainfo=meta)
    s.gt_labels = torch.tensor([1., 0., 1., 0.])
    pred = model.postprocess_eq9(logits, thr, [s])[0].pred_sem_seg.data[0]
    # p0 = sigmoid(2) = .88 -> .28 over t; p2 = .5 -> .1 over t; elsewhere background
    expected = torch.zeros(6, 5, dtype=torch.long)
    expected[:3] = 3
    expected[:, :2] = 1
    assert torch.equal(pred, expected)
    flipped = SegDataSample(metainfo=dict(meta, flip=True, flip_direction='horizontal',
                                          padding_size=[3, 0, 0, 2]))
    flipped.gt_labels = s.gt_labels
    pred_f = model.postprocess_eq9(logits.flip(3), thr, [flipped])[0].pred_sem_seg.data[0]
    assert torch.equal(pred_f, expected)


def test_fixed_threshold_and_normalize_cam():
    model = build(test_cfg=dict(threshold=0.5, normalize_cam=True))
    # Logits as large as a GAP-BCE classifier's: sigmoid saturates, the CAM does not.
    logits = torch.zeros(1, C, 4, 4) - 3
    logits[0, 1, :2] = 40.0  # class 1: CAM 1 on top, .25 below
    logits[0, 1, 2:] = 10.0
    logits[0, 0, :2] = 2.0  # class 0: CAM .25 on top, 1 at its peak (3, 3), 0 elsewhere
    logits[0, 0, 3, 3] = 8.0
    s = SegDataSample(metainfo=dict(ori_shape=(4, 4), img_shape=(4, 4)))
    s.gt_labels = torch.tensor([1., 1., 0., 0.])
    pred = model.postprocess_eq9(logits, torch.zeros(1, C), [s])[0].pred_sem_seg.data[0]
    expected = torch.zeros(4, 4, dtype=torch.long)
    expected[:2] = 2  # class 1 (CAM 1)
    expected[3, 3] = 1  # class 0 (CAM 1; class 1 only .25)
    assert torch.equal(pred, expected)  # the rest: best CAM .25 <= .5 -> background
    model.test_cfg['normalize_cam'] = False  # p = sigmoid(x) > .5 wherever x > 0
    pred = model.postprocess_eq9(logits, torch.zeros(1, C), [s])[0].pred_sem_seg.data[0]
    assert (pred == 2).all()  # saturated probabilities: the whole map is foreground
    with pytest.raises(ValueError):
        build(test_cfg=dict(threshold='adaptive', normalize_cam=True))
    with pytest.raises(ValueError):
        build(test_cfg=dict(threshold='best'))
    with pytest.raises(ValueError, match='normalize_cam'):
        build(test_cfg=dict(threshold=0.5, max_normalize=True))


def test_adaptive_uses_mapped_threshold(model):
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        cls_logits, thr_logits = model.extract_maps(x)
        mapped = torch.sigmoid(thr_logits / model.decode_head.logit_scale)
        _, thr = model.decode_head.predict(model.extract_feat(x), [dict(img_shape=(32, 32))])
    torch.testing.assert_close(thr, mapped)
    # The one mapping the multi-scale inference uses too: bit-identical to the head's.
    assert torch.equal(model.map_threshold_logits(thr_logits), thr)
