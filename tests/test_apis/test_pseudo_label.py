# Copyright (c) mmseg-sbce contributors.
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import mmseg_sbce  # noqa: F401
from mmseg_sbce.apis import (FUSED_PROB_EPS, PSEUDO_CFG_DEFAULTS, dense_crf,
                             generate_pseudo_labels, label_cam, label_eq9, load_maps_npz,
                             map_threshold, multi_scale_maps, pseudo_label_from_maps,
                             resolve_pseudo_cfg, save_label_png, scatter_compact)
from mmseg_sbce.models.labelling import cam_from_logits
from mmseg_sbce.utils import io as io_utils

import fake_wsss as fw  # noqa: E402  (tests/test_apis is on sys.path under pytest)

FAST = dict(scales=(1.0, 0.5), crf=dict(iterations=2))


# ------------------------------------------------------------------------------ config
def test_resolve_cfg_defaults_and_validation():
    cfg = resolve_pseudo_cfg()
    assert cfg['threshold'] == 'adaptive' and cfg['normalize_cam'] is False
    assert cfg['crf'] == PSEUDO_CFG_DEFAULTS['crf']
    assert cfg['scales'] == (1.0, 0.5, 1.5, 2.0) and cfg['flip'] is True
    cam = resolve_pseudo_cfg(dict(threshold='0.25', crf=dict(iterations=5)))
    assert cam['threshold'] == 0.25 and cam['normalize_cam'] is True
    assert cam['crf']['iterations'] == 5 and cam['crf']['gt_prob'] == 0.7
    with pytest.raises(KeyError, match='thresold'):
        resolve_pseudo_cfg(dict(thresold=0.3))
    with pytest.raises(KeyError, match='crf.sxy'):
        resolve_pseudo_cfg(dict(crf=dict(sxy=3)))
    with pytest.raises(ValueError, match='normalize_cam'):
        resolve_pseudo_cfg(dict(normalize_cam=True))
    with pytest.raises(ValueError):
        resolve_pseudo_cfg(dict(threshold='high'))
    with pytest.raises(ValueError):
        resolve_pseudo_cfg(dict(unsure=dict(margin=-1)))


def test_resolve_cfg_fusion():
    # eq. 9 averages probabilities, the CAM rule logits, unless told otherwise.
    assert resolve_pseudo_cfg()['fusion'] == 'probs'
    assert resolve_pseudo_cfg(dict(threshold=0.3))['fusion'] == 'logits'
    assert resolve_pseudo_cfg(dict(fusion='logits'))['fusion'] == 'logits'
    raw = resolve_pseudo_cfg(dict(threshold=0.3, normalize_cam=False, fusion='probs'))
    assert raw['fusion'] == 'probs'
    with pytest.raises(ValueError, match="fusion must be one of .* got 'mean'"):
        resolve_pseudo_cfg(dict(fusion='mean'))
    with pytest.raises(ValueError, match='normalize_cam'):
        resolve_pseudo_cfg(dict(threshold=0.3, fusion='probs'))


# ------------------------------------------------------------------ threshold and eq. 9
def test_map_threshold():
    t = torch.tensor([0.5, 0.9, 0.1, 0.3])
    s = torch.tensor([10.0, 10.0, 4.0, 1.0])
    mapped = map_threshold(t, s)
    # sigmoid(s * x) = t at x = logit(t'), i.e. t' is t seen in the unscaled space.
    assert torch.allclose(torch.sigmoid(s * torch.logit(mapped)), t, atol=1e-5)
    assert torch.allclose(mapped, torch.sigmoid(torch.logit(t) / s))
    assert mapped[0] == 0.5 and mapped[3] == pytest.approx(0.3)
    assert mapped[1] == pytest.approx(1 / (1 + np.exp(-np.log(9) / 10)), abs=1e-6)


def test_label_eq9_hand_made():
    # Classes 0..2; image labels {0, 2}; class 1 is absent however high its map.
    probs = np.array([
        [[0.9, 0.6, 0.2], [0.5, 0.10, 0.0]],  # class 0, t' = 0.5
        [[1.0, 1.0, 1.0], [1.0, 1.00, 1.0]],  # class 1, absent
        [[0.8, 0.9, 0.3], [0.5, 0.35, 0.0]],  # class 2, t' = 0.3
    ], np.float32)
    thr = np.array([0.5, 0.1, 0.3], np.float32)
    # S0 = [.4 .1 -.3 | 0 -.4 -.5]; S2 = [.5 .6 0 | .2 .05 -.3]
    expected = np.array([[3, 3, 0], [3, 3, 0]], np.uint8)
    out = label_eq9(probs, thr, gt_labels=[0, 2])
    np.testing.assert_array_equal(out, expected)
    multi_hot = np.array([1.0, 0.0, 1.0], np.float32)
    np.testing.assert_array_equal(label_eq9(probs, thr, multi_hot), expected)
    # S <= 0 everywhere -> background (eq. 9 uses a strict > 0).
    np.testing.assert_array_equal(label_eq9(probs, np.ones(3, np.float32), [0, 2]),
                                  np.zeros((2, 3), np.uint8))
    # Unsure rule: |max S| <= 0.1 -> 255 (pixels with max S 0.0 and 0.05).
    unsure = label_eq9(probs, thr, [0, 2], unsure_margin=0.1)
    np.testing.assert_array_equal(unsure, [[3, 3, 255], [3, 255, 0]])
    # No positive class -> all background.
    assert not label_eq9(probs, thr, []).any()


def test_label_cam_normalisation():
    logits = np.zeros((2, 1, 4), np.float32)
    logits[0, 0] = [-2.0, 1.0, 4.0, 0.5]  # p = [.12 .73 .98 .62], CAM [0 .25 1 .125]
    logits[1, 0] = [5.0, 0.8, -3.0, 4.5]  # p = [.99 .69 .05 .99], CAM [1 .16 0 .9]
    raw = label_cam(logits, 0.3, [0, 1], normalize_cam=False)
    np.testing.assert_array_equal(raw, [[2, 1, 1, 2]])
    norm = label_cam(logits, 0.3, [0, 1], normalize_cam=True)
    np.testing.assert_array_equal(norm, [[2, 0, 1, 2]])
    np.testing.assert_array_equal(label_cam(logits, 0.95, [0, 1]), [[2, 0, 1, 0]])


def test_cam_comes_from_logits_not_saturated_probabilities():
    # A GAP-BCE classifier's logits reach tens: sigmoid rounds them all to 1 (float32), so a
    # max-normalised probability would call every pixel foreground; the CAM keeps the order.
    logits = torch.tensor([[[40.0, 20.0, 5.0, -3.0]]])
    np.testing.assert_allclose(cam_from_logits(logits)[0, 0], [1.0, 0.5, 0.125, 0.0])
    np.testing.assert_array_equal(label_cam(logits, 0.3, [0]), [[1, 1, 0, 0]])
    assert (torch.sigmoid(logits[0, 0, :3]) == 1.0).sum() >= 2  # what normalising p loses
    assert cam_from_logits(torch.zeros(0, 3, 3)).shape == (0, 3, 3)
    assert (cam_from_logits(-torch.ones(1, 2, 2)) == 0).all()  # no positive logit: all 0


# ------------------------------------------------------------------ multi-scale inference
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


# --------------------------------------------------------------------------- dense CRF
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


def test_pseudo_label_from_maps_crf_and_unsure():
    img, _ = _crf_inputs(size=(16, 20))
    probs = np.full((2, 16, 20), 0.0025, np.float32)
    probs[0, :, :8] = 0.9
    probs[1, :, 12:] = 0.8
    probs[1, :, 10:12] = 0.52
    probs = np.log(probs / (1 - probs))  # the maps are logits
    cfg = resolve_pseudo_cfg(dict(unsure=dict(margin=0.05)))
    pos = np.array([1, 4])
    out = pseudo_label_from_maps(img, probs, np.array([0.5, 0.5]), pos, cfg)
    assert set(np.unique(out)) <= {0, 2, 5, 255}
    assert (out[:, 10:12] == 255).all() and (out[:, :8] == 2).all()
    no_crf = resolve_pseudo_cfg(dict(crf=dict(enabled=False)))
    expected = np.zeros((16, 20), np.uint8)
    expected[:, :8], expected[:, 10:] = 2, 5  # ids c + 1 of the positive classes 1 and 4
    np.testing.assert_array_equal(
        pseudo_label_from_maps(img, probs, np.array([0.5, 0.5]), pos, no_crf), expected)
    cam = resolve_pseudo_cfg(dict(threshold=0.6, crf=dict(unary='probs')))
    out = pseudo_label_from_maps(img, probs, None, pos, cam)
    assert (out[:, :8] == 2).all() and (out[:, 13:] == 5).all()


# ------------------------------------------------------------------------- file writing
def test_atomic_write_leaves_no_partial_png(tmp_path, monkeypatch):
    path = str(tmp_path / 'a.png')
    label = np.arange(12, dtype=np.uint8).reshape(3, 4)
    save_label_png(label, path)
    old = open(path, 'rb').read()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt('killed between write and rename')

    monkeypatch.setattr(io_utils.os, 'replace', crash)
    with pytest.raises(KeyboardInterrupt):
        save_label_png(label[::-1].copy(), path)
    with pytest.raises(KeyboardInterrupt):
        save_label_png(label, str(tmp_path / 'b.png'))
    monkeypatch.undo()
    assert open(path, 'rb').read() == old  # the old file is untouched
    assert sorted(os.listdir(tmp_path)) == ['a.png']  # no b.png, no temp file
    with Image.open(path) as im:
        assert im.mode == 'P' and im.size == (4, 3)
        np.testing.assert_array_equal(np.asarray(im), label)


# --------------------------------------------------------------------------- the runner
@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('fake_voc'))
    fw.make_dataset(root, num=6, size=(24, 36))
    return root


def _read_all(out_dir):
    return {
        n: np.asarray(Image.open(osp.join(out_dir, n)))
        for n in sorted(os.listdir(out_dir)) if n.endswith('.png')
    }


def test_runner_writes_labels_and_probs(data_root, tmp_path):
    model = fw.FakeColorClassifier(stride=2)
    out = str(tmp_path / 'out')
    summary = generate_pseudo_labels(model, fw.build_dataset(data_root), out, FAST,
                                     workers=0, save_probs=True, progress=False)
    assert summary['written'] == 6 and summary['failures'] == [] and summary['total'] == 6
    labels = _read_all(out)
    assert len(labels) == 6
    for name, label in labels.items():
        img_id = name[:-4]
        gt = np.asarray(Image.open(osp.join(data_root, 'gt', name)))
        assert label.shape == gt.shape and label.dtype == np.uint8
        valid = gt != 255
        assert (label[valid] == gt[valid]).mean() > 0.95  # colours are easy
        with np.load(osp.join(out, 'probs', img_id + '.npz')) as z:
            assert z['logits'].dtype == np.float16
            assert z['logits'].shape == (len(z['classes']), ) + gt.shape
            np.testing.assert_allclose(z['thr'], 0.5)
        logits, classes, thr = load_maps_npz(osp.join(out, 'probs', img_id + '.npz'))
        assert logits.dtype == np.float32 and len(classes) == len(thr)


def test_runner_labels_saved_maps_without_the_network(data_root, tmp_path):
    model = fw.FakeColorClassifier(stride=2)
    dataset = fw.build_dataset(data_root)
    first = str(tmp_path / 'first')
    generate_pseudo_labels(model, dataset, first, FAST, workers=0, save_probs=True,
                           progress=False)
    maps = osp.join(first, 'probs')
    # The same rule on the saved maps gives the same labels, with no forward pass.
    calls = model.forward_calls
    again = str(tmp_path / 'again')
    s = generate_pseudo_labels(model, dataset, again, FAST, workers=0, progress=False,
                               maps_dir=maps)
    assert s['written'] == 6 and model.forward_calls == calls
    for name, label in _read_all(first).items():
        np.testing.assert_array_equal(_read_all(again)[name], label)
    # Another rule (a CAM threshold, no dCRF) on the same maps: what label_cam gives.
    cam_cfg = dict(FAST, threshold=0.4, crf=dict(enabled=False))
    cam_dir = str(tmp_path / 'cam')
    generate_pseudo_labels(model, dataset, cam_dir, cam_cfg, workers=0, progress=False,
                           maps_dir=maps)
    logits, classes, _ = load_maps_npz(osp.join(maps, 'img_000.npz'))
    np.testing.assert_array_equal(
        _read_all(cam_dir)['img_000.png'],
        scatter_compact(label_cam(logits, 0.4, None), classes))
    # Missing, foreign and wrongly sized maps fail their image with the file's name.
    bad = tmp_path / 'bad'
    bad.mkdir()
    z = dict(np.load(osp.join(maps, 'img_001.npz')))
    np.savez(bad / 'img_001.npz', **dict(z, classes=z['classes'] + 1 if len(z['classes'])
                                          else np.array([0])))
    z2 = dict(np.load(osp.join(maps, 'img_002.npz')))
    np.savez(bad / 'img_002.npz', **dict(z2, logits=z2['logits'][:, :-1]))
    for name in ('img_000', 'img_003', 'img_004', 'img_005'):
        shutil.copy(osp.join(maps, name + '.npz'), bad / (name + '.npz'))
    s = generate_pseudo_labels(model, dataset, str(tmp_path / 'out_bad'), FAST, workers=0,
                               progress=False, maps_dir=str(bad))
    errors = {f['img_id']: f['error'] for f in s['failures']}
    assert sorted(errors) == ['img_001', 'img_002'] and s['written'] == 4
    assert 'img_001.npz holds the maps of classes' in errors['img_001']
    assert 'img_002.npz holds maps of size' in errors['img_002']
    os.remove(bad / 'img_000.npz')
    s = generate_pseudo_labels(model, dataset, str(tmp_path / 'out_missing'), FAST,
                               workers=0, progress=False, maps_dir=str(bad))
    assert 'no saved maps for img_000' in {f['img_id']: f['error']
                                           for f in s['failures']}['img_000']


# Run in a child process: a hang must fail the test, not stall the whole suite.
_FORKED_WORKERS_SCRIPT = textwrap.dedent("""
    import sys
    import torch
    import mmseg_sbce  # noqa: F401
    from mmseg_sbce.apis import generate_pseudo_labels
    sys.path.insert(0, sys.argv[1])
    import fake_wsss as fw
    fw.make_dataset(sys.argv[2], num=2, size=(240, 320))
    torch.set_num_threads(2)
    x = torch.rand(1500, 1500)
    (x @ x + 1).sum()  # the parent has used its OpenMP thread pool, as during training
    s = generate_pseudo_labels(
        fw.FakeColorClassifier(stride=8), fw.build_dataset(sys.argv[2]), sys.argv[3],
        dict(scales=(1.0, ), crf=dict(unary='probs', iterations=1)), workers=2,
        net_threads=2, progress=False)
    assert s['written'] == 2, s
""")


def test_forked_workers_run_torch_labelling_after_parallel_parent(tmp_path):
    """The workers label with torch; GNU OpenMP would hang a forked child of a parent that
    used its thread pool unless the pool initializer makes the workers single-threaded."""
    proc = subprocess.run(
        [sys.executable, '-c', _FORKED_WORKERS_SCRIPT, osp.dirname(fw.__file__),
         str(tmp_path / 'data'), str(tmp_path / 'out')],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_runner_pool_equals_inline_and_sharding(data_root, tmp_path):
    model = fw.FakeColorClassifier(stride=2)
    dataset = fw.build_dataset(data_root)
    generate_pseudo_labels(model, dataset, str(tmp_path / 'single'), FAST, workers=0,
                           progress=False)
    for rank in (0, 1):
        s = generate_pseudo_labels(model, dataset, str(tmp_path / 'sharded'), FAST, rank=rank,
                                   world_size=2, workers=2, max_in_flight=1, progress=False)
        assert s['total'] == 3 and s['written'] == 3
    single, sharded = _read_all(tmp_path / 'single'), _read_all(tmp_path / 'sharded')
    assert single.keys() == sharded.keys() and len(single) == 6
    for name in single:
        np.testing.assert_array_equal(single[name], sharded[name])


def test_runner_resume_skips_done_images(data_root, tmp_path):
    model = fw.FakeColorClassifier(stride=2)
    dataset = fw.build_dataset(data_root)
    out = str(tmp_path / 'out')
    generate_pseudo_labels(model, dataset, out, FAST, workers=0, progress=False)
    os.remove(osp.join(out, 'img_003.png'))
    calls = model.forward_calls
    s = generate_pseudo_labels(model, dataset, out, FAST, workers=0, progress=False)
    assert s['skipped'] == 5 and s['written'] == 1
    assert model.forward_calls - calls == len(FAST['scales'])
    assert osp.exists(osp.join(out, 'img_003.png'))
    s = generate_pseudo_labels(model, dataset, out, FAST, workers=0, progress=False,
                               skip_existing=False)
    assert s['written'] == 6


def test_runner_reports_corrupt_image_and_continues(data_root, tmp_path):
    import shutil
    root = str(tmp_path / 'data')
    shutil.copytree(data_root, root)
    with open(osp.join(root, 'img', 'img_002.png'), 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n truncated')
    model = fw.FakeColorClassifier(stride=2)
    model.train()
    out = str(tmp_path / 'out')
    s = generate_pseudo_labels(model, fw.build_dataset(root), out, FAST, workers=2,
                               progress=False)
    assert [f['img_id'] for f in s['failures']] == ['img_002'] and s['written'] == 5
    assert s['failures'][0]['index'] == 2 and s['failures'][0]['error']
    assert not osp.exists(osp.join(out, 'img_002.png'))
    assert len(_read_all(out)) == 5
    assert model.training  # the runner restores the training mode


def test_runner_image_without_labels_is_background(data_root, tmp_path):
    import json
    import shutil
    root = str(tmp_path / 'data')
    shutil.copytree(data_root, root)
    labels = json.load(open(osp.join(root, 'labels.json')))
    labels['img_004'] = []
    json.dump(labels, open(osp.join(root, 'labels.json'), 'w'))
    out = str(tmp_path / 'out')
    s = generate_pseudo_labels(fw.FakeColorClassifier(stride=2), fw.build_dataset(root), out,
                               FAST, workers=0, progress=False)
    assert s['written'] == 6
    assert not _read_all(out)['img_004.png'].any()


def test_runner_cam_threshold_without_threshold_branch(data_root, tmp_path):

    class NoThreshold(fw.FakeColorClassifier):

        def extract_maps(self, inputs):
            return super().extract_maps(inputs)[0], None

    model = NoThreshold(stride=2)
    s = generate_pseudo_labels(model, fw.build_dataset(data_root), str(tmp_path / 'cam'),
                               dict(FAST, threshold=0.5), workers=0, progress=False)
    assert s['written'] == 6
    s = generate_pseudo_labels(model, fw.build_dataset(data_root), str(tmp_path / 'ada'),
                               FAST, workers=0, progress=False)
    assert len(s['failures']) == 6 and 'threshold branch' in s['failures'][0]['error']
