# Copyright (c) mmseg-sbce contributors.
"""The saliency rule on hand-made maps, loading/resizing, and bad input through the tool."""
import json
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mmseg_sbce.apis.label_maps import pseudo_label_from_maps
from mmseg_sbce.apis.pseudo_cfg import resolve_pseudo_cfg
from mmseg_sbce.apis.saliency import (class_scores, load_saliency, resolve_saliency_cfg,
                                      saliency_compact_labels, saliency_for_image)

FAKES_DIR = os.path.dirname(os.path.abspath(__file__))


def _scfg(**kw):
    return resolve_saliency_cfg(dict(dict(dir='unused'), **kw))


def _maps():
    # One row of 5 pixels, two classes with threshold 0.5 each.
    maps = torch.tensor([[[0.9, 0.9, 0.4, 0.2, 0.55]],
                         [[0.1, 0.6, 0.45, 0.2, 0.2]]])
    return maps, torch.tensor([0.5, 0.5])


def test_rule_argmax_and_ignore():
    maps, thr = _maps()
    sal = np.array([[0.9, 0.05, 0.9, 0.1, 0.95]], np.float32)
    # Scores: bg = 1 - s = [.1, .95, .1, .9, .05]; c1 = [.9, .9, 0, 0, .55] (0.4 < t);
    # c2 = [0, .6, 0, 0, 0].
    plain = saliency_compact_labels(maps, thr, sal, _scfg(ignore=False))
    assert plain.tolist() == [[1, 0, 0, 0, 1]]
    # Pixel 2 is salient (0.9 > 0.2) but ends up background: unsure.
    ignored = saliency_compact_labels(maps, thr, sal, _scfg(ignore=True))
    assert ignored.tolist() == [[1, 0, 255, 0, 1]]
    # Binarised: bg = [0, 1, 0, 1, 0]; pixel 1: bg 1 > c1 0.9.
    binar = saliency_compact_labels(maps, thr, sal, _scfg(ignore=False, binarize=True))
    assert binar.tolist() == [[1, 0, 0, 0, 1]]
    # Class thresholds of 0.3 let both classes compete at pixel 2: c2 0.45 > c1 0.4 > bg 0.1.
    low = saliency_compact_labels(maps, torch.tensor([0.3, 0.3]), sal, _scfg(ignore=True))
    assert low.tolist() == [[1, 0, 2, 0, 1]]


def test_rule_correction_with_probs():
    maps, thr = _maps()
    sal = np.array([[0.9, 0.05, 0.9, 0.1, 0.95]], np.float32)
    # Confident: score >= t + 0.1 = 0.6: c1 at pixels 0, 1; c2 at pixel 1 (0.6).
    out = saliency_compact_labels(maps, thr, sal, _scfg(correct_with_probs=True,
                                                         ignore=False))
    # Pixel 1: saliency says background but the net is confident -> best confident (c1).
    # Pixel 2 and 4: salient, no confident class -> 255; pixel 3: background.
    assert out.tolist() == [[1, 1, 255, 0, 255]]
    wide = saliency_compact_labels(maps, thr, sal, _scfg(correct_with_probs=True,
                                                          confident_margin=0.0,
                                                          ignore=False))
    assert wide.tolist() == [[1, 1, 255, 0, 1]]
    # An image without a positive class: salient pixels unsure, the rest background.
    empty = saliency_compact_labels(maps[:0], thr[:0], sal, _scfg(correct_with_probs=True))
    assert empty.tolist() == [[255, 0, 255, 0, 255]]


def test_class_scores_adaptive_and_fixed():
    logits = torch.tensor([[[2.0, -2.0]]])
    pcfg = resolve_pseudo_cfg(dict(saliency=dict(dir='x')))
    maps, thr = class_scores(logits, np.array([0.7], np.float32), pcfg)
    assert torch.allclose(maps, logits.sigmoid()) and thr.tolist() == pytest.approx([0.7])
    pcfg = resolve_pseudo_cfg(dict(threshold=0.3, saliency=dict(dir='x',
                                                                 class_threshold=0.2)))
    maps, thr = class_scores(logits, None, pcfg)
    assert maps.tolist() == [[[1.0, 0.0]]] and thr.tolist() == pytest.approx([0.2])
    with pytest.raises(ValueError, match='threshold branch'):
        class_scores(logits, None, resolve_pseudo_cfg(dict(saliency=dict(dir='x'))))
    # 'otsu': Otsu's split of each map's probabilities, no learned threshold needed.
    two = torch.tensor([[[2.0, 2.0, -2.0, -2.0]]])
    pcfg = resolve_pseudo_cfg(dict(threshold='otsu', saliency=dict(dir='x')))
    maps, thr = class_scores(two, None, pcfg)
    assert torch.allclose(maps, two.sigmoid()) and thr.tolist() == pytest.approx([0.5])


def test_pseudo_label_from_maps_with_saliency_full_ids():
    logits = torch.tensor([[[3.0, 3.0, -3.0]]]).numpy()
    img = np.zeros((1, 3, 3), np.uint8)
    cfg = resolve_pseudo_cfg(dict(crf=dict(enabled=False),
                                  saliency=dict(dir='x', ignore=True)))
    sal = np.array([[0.9, 0.0, 0.9]], np.float32)
    out = pseudo_label_from_maps(img, logits, np.array([0.5]), np.array([4]), cfg, sal)
    # class 4 -> id 5; pixel 1: bg 1 - 0 beats sigmoid(3); pixel 2 salient but background
    # (its class score is below t') -> 255.
    assert out.tolist() == [[5, 0, 255]]
    # No saliency map: the saliency-free rule (eq. 9), identical to a cfg without it.
    plain = resolve_pseudo_cfg(dict(crf=dict(enabled=False)))
    assert np.array_equal(
        pseudo_label_from_maps(img, logits, np.array([0.5]), np.array([4]), cfg),
        pseudo_label_from_maps(img, logits, np.array([0.5]), np.array([4]), plain))


def test_load_resizes_and_reports_files(tmp_path):
    path = tmp_path / 'a.png'
    Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8), mode='L').save(path)
    sal = load_saliency(str(path), (4, 6))
    assert sal.shape == (4, 6) and sal.dtype == np.float32
    assert 0.0 <= sal.min() and sal.max() <= 1.0
    same = load_saliency(str(path), (2, 2))
    assert same.tolist() == [[0.0, 1.0], [1.0, 0.0]]
    Image.fromarray(np.full((2, 2, 3), 255, np.uint8)).save(tmp_path / 'rgb.png')
    assert load_saliency(str(tmp_path / 'rgb.png'), (2, 2)).min() == pytest.approx(1.0)
    with pytest.raises(FileNotFoundError, match='missing.png'):
        load_saliency(str(tmp_path / 'missing.png'), (2, 2))
    (tmp_path / 'bad.png').write_bytes(b'not a png')
    with pytest.raises(ValueError, match='bad.png'):
        load_saliency(str(tmp_path / 'bad.png'), (2, 2))
    fall = resolve_saliency_cfg(dict(dir=str(tmp_path), on_missing='fallback'))
    assert saliency_for_image(fall, 'bad', (2, 2))[0] is None
    assert 'bad.png' in saliency_for_image(fall, 'bad', (2, 2))[1]
    with pytest.raises(FileNotFoundError, match='nope.png'):
        saliency_for_image(resolve_saliency_cfg(dict(dir=str(tmp_path))), 'nope', (2, 2))


def test_cfg_validation():
    assert resolve_pseudo_cfg()['saliency'] is None
    with pytest.raises(KeyError, match='saliency.colour'):
        resolve_pseudo_cfg(dict(saliency=dict(dir='x', colour=1)))
    with pytest.raises(ValueError, match='saliency.dir'):
        resolve_pseudo_cfg(dict(saliency=dict(suffix='.png')))
    with pytest.raises(ValueError, match='on_missing'):
        resolve_pseudo_cfg(dict(saliency=dict(dir='x', on_missing='skip')))
    with pytest.raises(ValueError, match='salient_threshold'):
        resolve_pseudo_cfg(dict(saliency=dict(dir='x', salient_threshold=1.5)))


@pytest.fixture(scope='module')
def fake_setup(tmp_path_factory, load_tool):
    sys.path.insert(0, FAKES_DIR)
    try:
        import fake_wsss
        base = tmp_path_factory.mktemp('sal')
        root = str(base / 'data')
        labels = fake_wsss.make_dataset(root, num=4, size=(20, 28))
        sal_dir = base / 'sal'
        sal_dir.mkdir()
        for img_id in labels:
            gt = np.array(Image.open(os.path.join(root, 'gt', img_id + '.png')))
            # Half resolution: the tool resizes it to the image.
            sal = Image.fromarray(np.where((gt > 0) & (gt < 255), 255, 0).astype(np.uint8))
            sal.resize((14, 10)).save(sal_dir / f'{img_id}.png')
        ckpt = str(base / 'fake.pth')
        torch.save(dict(state_dict=fake_wsss.FakeColorClassifier(stride=2).state_dict()),
                   ckpt)
        yield dict(base=base, root=root, sal=sal_dir, ckpt=ckpt, fw=fake_wsss,
                   tool=load_tool('gen_pseudo'), ids=sorted(labels))
    finally:
        sys.path.remove(FAKES_DIR)


def _config(setup, name, **saliency):
    extra = f'pseudo_cfg = dict(scales=(1.0, 0.5), saliency={saliency!r})'
    return setup['fw'].write_config(str(setup['base'] / name), setup['root'], extra)


def _run(setup, config, out):
    return setup['tool'].main([config, setup['ckpt'], '--out', str(out), '--workers', '0',
                               '--no-progress'])


def test_gen_pseudo_with_saliency(fake_setup, tmp_path, capsys):
    config = _config(fake_setup, 'ok.py', dir=str(fake_setup['sal']))
    assert _run(fake_setup, config, tmp_path / 'out') == 0
    manifest = json.load(open(tmp_path / 'out' / 'manifest.json'))
    assert manifest['counts']['saliency_fallback'] == 0
    assert manifest['identity']['pseudo_cfg']['saliency']['dir'] == str(fake_setup['sal'])
    for img_id in fake_setup['ids']:
        label = np.array(Image.open(tmp_path / 'out' / f'{img_id}.png'))
        assert label.shape == (20, 28)


def test_gen_pseudo_missing_and_unreadable_saliency(fake_setup, tmp_path, capsys):
    sal = tmp_path / 'sal'
    sal.mkdir()
    ids = fake_setup['ids']
    for img_id in ids[2:]:
        os.link(fake_setup['sal'] / f'{img_id}.png', sal / f'{img_id}.png')
    (sal / f'{ids[1]}.png').write_bytes(b'truncated')
    config = _config(fake_setup, 'err.py', dir=str(sal))
    assert _run(fake_setup, config, tmp_path / 'err') == 1
    err = capsys.readouterr().err
    assert f'{ids[0]}.png not found' in err and f'{ids[1]}.png is unreadable' in err
    manifest = json.load(open(tmp_path / 'err' / 'manifest.json'))
    assert manifest['status'] == 'complete_with_failures'
    assert manifest['counts']['failed'] == 2
    # Fallback: the two images are labelled without saliency, counted and listed.
    config = _config(fake_setup, 'fall.py', dir=str(sal), on_missing='fallback')
    assert _run(fake_setup, config, tmp_path / 'fall') == 0
    manifest = json.load(open(tmp_path / 'fall' / 'manifest.json'))
    assert manifest['status'] == 'complete' and manifest['counts']['written'] == 4
    assert manifest['counts']['saliency_fallback'] == 2
    assert [f['img_id'] for f in manifest['saliency_fallbacks']] == ids[:2]
    assert 'labelled without their saliency map' in capsys.readouterr().out
    # A saliency folder that does not exist: one error naming it, nothing written.
    config = _config(fake_setup, 'nodir.py', dir=str(tmp_path / 'nowhere'))
    with pytest.raises(SystemExit, match='saliency.dir .*nowhere: no such folder'):
        _run(fake_setup, config, tmp_path / 'nodir')
    assert not (tmp_path / 'nodir').exists()
