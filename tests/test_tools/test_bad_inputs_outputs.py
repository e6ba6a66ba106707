# Copyright (c) mmseg-sbce contributors.
"""Bad inputs and damaged outputs, end to end through tools/gen_pseudo.py and
tools/eval_pseudo.py on a tiny generated data set (issue 13's table stays true)."""
import json
import os
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import mmseg_sbce  # noqa: F401
from mmseg_sbce.utils.io import read_label_png

FAKES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         'test_apis')
IDS = [f'img_{i:03d}' for i in range(4)]


@pytest.fixture(scope='module')
def fw():
    sys.path.insert(0, FAKES_DIR)  # the configs import the fakes as ``fake_wsss``
    try:
        import fake_wsss
        yield fake_wsss
    finally:
        sys.path.remove(FAKES_DIR)


@pytest.fixture(scope='module')
def setup(fw, tmp_path_factory, load_tool):
    base = tmp_path_factory.mktemp('bad')
    root = str(base / 'data')
    fw.make_dataset(root, num=len(IDS), size=(64, 72))
    config = fw.write_config(str(base / 'cfg.py'), root)
    ckpt = str(base / 'fake.pth')
    torch.save(dict(state_dict=fw.FakeColorClassifier(stride=2).state_dict()), ckpt)
    ref = base / 'ref'  # one complete export, copied by the tests that damage it
    tools = dict(gen=load_tool('gen_pseudo'), eval=load_tool('eval_pseudo'))
    setup = dict(base=base, root=root, config=config, ckpt=ckpt, ref=ref, **tools)
    assert _gen(setup, ref, '--save-probs') == 0
    return setup


def _gen(setup, out, *extra):
    return setup['gen'].main([setup['config'], setup['ckpt'], '--out', str(out),
                              '--workers', '0', '--no-progress', '--no-crf', *extra])


def _eval(setup, pred, *extra):
    return setup['eval'].main([str(pred), '--gt', os.path.join(setup['root'], 'gt'),
                               '--split', os.path.join(setup['root'], 'train.txt'),
                               '--num-classes', '4', '--workers', '1', *extra])


def _copy_ref(setup, tmp_path):
    out = tmp_path / 'out'
    shutil.copytree(setup['ref'], out)
    return out


def _manifest(out):
    with open(out / 'manifest.json') as f:
        return json.load(f)


def test_truncated_png_is_regenerated(setup, tmp_path):
    out = _copy_ref(setup, tmp_path)
    png = out / f'{IDS[1]}.png'
    good = png.read_bytes()
    png.write_bytes(good[:len(good) // 2])  # e.g. a copy interrupted by a full disk
    assert _gen(setup, out, '--save-probs') == 0
    assert png.read_bytes() == good
    assert _manifest(out)['counts'] == dict(total=4, written=1, skipped=3, failed=0)
    # A truncated npz makes the image not done either.
    npz = out / 'probs' / f'{IDS[2]}.npz'
    npz.write_bytes(npz.read_bytes()[:40])
    assert _gen(setup, out, '--save-probs') == 0
    assert _manifest(out)['counts']['written'] == 1
    assert np.load(npz)['logits'].shape[1:] == (64, 72)


def test_corrupt_manifest_is_a_one_line_error(setup, tmp_path, capsys):
    out = _copy_ref(setup, tmp_path)
    (out / 'manifest.json').write_text('{"format": "mmseg-sbce-pse')
    assert _gen(setup, out, '--save-probs') == 1
    err = capsys.readouterr().err
    assert str(out / 'manifest.json') in err and '--overwrite' in err
    assert 'Traceback' not in err and len(err.strip().splitlines()) == 1
    assert _gen(setup, out, '--save-probs', '--overwrite') == 0
    assert _manifest(out)['status'] == 'complete'


def test_overwrite_with_smaller_split_removes_stale_files(setup, tmp_path):
    out = _copy_ref(setup, tmp_path)
    (out / 'notes.txt').write_text('mine')
    split = tmp_path / 'small.txt'
    split.write_text('\n'.join(IDS[:2]) + '\n')
    assert _gen(setup, out, '--split', str(split), '--overwrite') == 0
    assert sorted(n for n in os.listdir(out) if n.endswith('.png')) == \
        [f'{i}.png' for i in IDS[:2]]
    assert not os.listdir(out / 'probs')  # this run saves no maps: the old ones are gone
    assert (out / 'notes.txt').read_text() == 'mine'  # not the tool's: kept
    assert _manifest(out)['counts']['total'] == 2


def test_label_png_symlink_is_not_followed(setup, tmp_path, capsys):
    out = _copy_ref(setup, tmp_path)
    victim = tmp_path / 'victim.png'
    victim.write_bytes(b'not yours')
    png = out / f'{IDS[0]}.png'
    png.unlink()
    png.symlink_to(victim)
    assert _gen(setup, out, '--save-probs') == 1
    err = capsys.readouterr().err
    assert str(png) in err and 'symbolic link' in err
    assert victim.read_bytes() == b'not yours' and png.is_symlink()
    assert _manifest(out)['counts']['failed'] == 1


def test_manifest_symlink_is_refused(setup, tmp_path, capsys):
    out = _copy_ref(setup, tmp_path)
    victim = tmp_path / 'victim.json'
    victim.write_text('{}')
    (out / 'manifest.json').unlink()
    (out / 'manifest.json').symlink_to(victim)
    assert _gen(setup, out, '--save-probs', '--overwrite') == 1
    assert 'symbolic link' in capsys.readouterr().err
    assert victim.read_text() == '{}'


def test_eval_report_symlink_is_not_followed(setup, tmp_path, capsys):
    victim = tmp_path / 'victim.md'
    victim.write_text('keep me')
    report = tmp_path / 'rep'
    (tmp_path / 'rep.md').symlink_to(victim)
    assert _eval(setup, setup['ref'], '--out', str(report)) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / 'rep.md') in err and 'symbolic link' in err
    assert victim.read_text() == 'keep me' and not (tmp_path / 'rep.json').exists()


def test_eval_missing_ground_truth_allow_missing(setup, tmp_path, capsys):
    gt = tmp_path / 'gt'
    shutil.copytree(os.path.join(setup['root'], 'gt'), gt)
    (gt / f'{IDS[3]}.png').unlink()
    args = ['--out', str(tmp_path / 'rep')]
    assert setup['eval'].main([str(setup['ref']), '--gt', str(gt), '--split',
                               os.path.join(setup['root'], 'train.txt'), '--num-classes',
                               '4', *args]) == 1
    err = capsys.readouterr().err
    assert IDS[3] in err and '--allow-missing' in err
    assert setup['eval'].main([str(setup['ref']), '--gt', str(gt), '--split',
                               os.path.join(setup['root'], 'train.txt'), '--num-classes',
                               '4', '--allow-missing', '--probs-dir',
                               str(setup['ref'] / 'probs'), *args]) == 0
    with open(tmp_path / 'rep.json') as f:
        report = json.load(f)
    assert report['gt_missing'] == [IDS[3]] and report['num_images'] == 3
    assert report['sweep']['gt_missing'] == [IDS[3]]
    assert 'without ground truth' in (tmp_path / 'rep.md').read_text()


def test_eval_default_sweep_covers_the_range(setup, tmp_path):
    report = tmp_path / 'rep'
    assert _eval(setup, setup['ref'], '--probs-dir', str(setup['ref'] / 'probs'), '--out',
                 str(report)) == 0
    with open(str(report) + '.json') as f:
        sweep = json.load(f)['sweep']
    assert sweep['thresholds'][0] == 0.01 and sweep['thresholds'][-1] == 0.99
    assert len(sweep['thresholds']) == 99 and isinstance(sweep['best_on_edge'], bool)
    # With two thresholds the best is always on an edge: the report says so.
    assert _eval(setup, setup['ref'], '--probs-dir', str(setup['ref'] / 'probs'), '--out',
                 str(report), '--sweep', '0.01', '0.02', '0.01') == 0
    with open(str(report) + '.json') as f:
        sweep = json.load(f)['sweep']
    assert sweep['best_on_edge'] is True
    assert 'lies on an edge' in open(str(report) + '.md').read()


def test_image_without_foreground_gets_a_background_label(setup, tmp_path):
    # A real WSSS data set (labels from the masks) skips such images for training; the
    # export must still write one label file per image of the split.
    root = tmp_path / 'data'
    shutil.copytree(setup['root'], root)
    img = np.full((64, 72, 3), 110, np.uint8)
    Image.fromarray(img).save(root / 'img' / 'empty.png')
    gt = np.zeros((64, 72), np.uint8)
    gt[0] = 255
    Image.fromarray(gt, mode='L').save(root / 'gt' / 'empty.png')
    with open(root / 'train.txt', 'a') as f:
        f.write('empty\n')
    dataset = dict(type='BaseWSSSDataset', data_root=str(root), ann_file='train.txt',
                   data_prefix=dict(img_path='img', seg_map_path='gt'), img_suffix='.png',
                   metainfo=dict(classes=('background', 'red', 'green', 'blue'),
                                 palette=[[0, 0, 0], [128, 0, 0], [0, 128, 0], [0, 0, 128]]),
                   pipeline=[dict(type='LoadImageFromFile'), dict(type='PackWSSSInputs')])
    config = str(tmp_path / 'cfg.py')
    with open(setup['config']) as f:
        text = f.read()
    with open(config, 'w') as f:
        f.write(text + f'\npseudo_dataloader = dict(dataset={dataset!r})\n')
    out = tmp_path / 'out'
    assert setup['gen'].main([config, setup['ckpt'], '--out', str(out), '--workers', '0',
                              '--no-progress', '--no-crf']) == 0
    assert sorted(n for n in os.listdir(out) if n.endswith('.png')) == \
        sorted(f'{i}.png' for i in IDS + ['empty'])
    assert (read_label_png(str(out / 'empty.png')) == 0).all()
    assert _manifest(out)['counts'] == dict(total=5, written=5, skipped=0, failed=0)
    assert _manifest(out)['identity']['dataset']['keep_unlabelled'] is True


def test_eval_truncated_prediction_names_the_file(setup, tmp_path, capsys):
    pred = _copy_ref(setup, tmp_path)
    png = pred / f'{IDS[2]}.png'
    png.write_bytes(png.read_bytes()[:200])
    assert _eval(setup, pred, '--out', str(tmp_path / 'rep')) == 1
    err = capsys.readouterr().err
    assert str(png) in err and 'Traceback' not in err
