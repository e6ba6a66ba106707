# Copyright (c) mmseg-sbce contributors.
import json
import os
import os.path as osp
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import mmseg_sbce  # noqa: F401
from mmseg_sbce.apis.manifest import check_out_dir, file_sha256, identity_differences
from mmseg_sbce.apis.pseudo_cfg import DEFAULT_PIPELINE, pseudo_dataset_cfg
from process_group import run_group

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FAKES_DIR = osp.join(ROOT, 'tests', 'test_apis')


@pytest.fixture(scope='module')
def fw():
    # The fakes module is imported by the configs' custom_imports as ``fake_wsss``.
    sys.path.insert(0, FAKES_DIR)
    try:
        import fake_wsss
        yield fake_wsss
    finally:
        sys.path.remove(FAKES_DIR)


@pytest.fixture(scope='module')
def setup(fw, tmp_path_factory, load_tool):
    base = tmp_path_factory.mktemp('gen')
    root = str(base / 'data')
    fw.make_dataset(root, num=5, size=(20, 28))
    config = fw.write_config(str(base / 'fake_cfg.py'), root)
    ckpt = str(base / 'fake.pth')
    torch.save(dict(state_dict=fw.FakeColorClassifier(stride=2).state_dict()), ckpt)
    return dict(base=base, root=root, config=config, ckpt=ckpt,
                tool=load_tool('gen_pseudo'))


def _run(setup, out, *extra):
    return setup['tool'].main([setup['config'], setup['ckpt'], '--out', str(out),
                            '--workers', '0', '--no-progress', *extra])


def _pngs(out):
    return sorted(n for n in os.listdir(out) if n.endswith('.png'))


def test_gen_pseudo_writes_manifest_and_resumes(setup, tmp_path, capsys):
    out = tmp_path / 'out'
    assert _run(setup, out, '--save-probs') == 0
    assert _pngs(out) == [f'img_{i:03d}.png' for i in range(5)]
    assert len(os.listdir(out / 'probs')) == 5
    manifest = json.load(open(out / 'manifest.json'))
    assert manifest['status'] == 'complete'
    assert manifest['counts'] == dict(total=5, written=5, skipped=0, failed=0)
    ident = manifest['identity']
    assert ident['checkpoint_sha256'] == gen_pseudo_sha(setup['ckpt'])
    assert ident['pseudo_cfg']['threshold'] == 'adaptive'
    assert ident['pseudo_cfg']['scales'] == [1.0, 0.5]  # from the config's pseudo_cfg
    assert ident['save_probs'] is True and ident['config'] == 'fake_cfg.py'
    assert manifest['time']['elapsed_s'] >= 0 and manifest['failures'] == []
    # Same run again: everything is skipped.
    assert _run(setup, out, '--save-probs') == 0
    manifest = json.load(open(out / 'manifest.json'))
    assert manifest['counts']['skipped'] == 5 and manifest['counts']['written'] == 0


def gen_pseudo_sha(path):
    return file_sha256(path)


def test_gen_pseudo_refuses_other_run(setup, tmp_path, capsys):
    out = tmp_path / 'out'
    assert _run(setup, out, '--no-crf') == 0
    capsys.readouterr()
    assert _run(setup, out, '--threshold', '0.4') == 1
    err = capsys.readouterr().err
    assert 'pseudo_cfg.threshold' in err and 'pseudo_cfg.crf.enabled' in err
    assert 'pseudo_cfg.normalize_cam' in err
    assert _run(setup, out, '--threshold', '0.4', '--overwrite') == 0
    manifest = json.load(open(out / 'manifest.json'))
    assert manifest['identity']['pseudo_cfg']['threshold'] == 0.4
    assert manifest['counts']['written'] == 5
    # PNGs without a manifest are not ours either.
    stray = tmp_path / 'stray'
    stray.mkdir()
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(stray / 'x.png')
    assert _run(setup, stray) == 1
    assert 'no manifest.json' in capsys.readouterr().err


def test_gen_pseudo_from_saved_maps(setup, tmp_path, capsys):
    first = tmp_path / 'first'
    assert _run(setup, first, '--save-probs', '--no-crf') == 0
    out = tmp_path / 'best'
    assert _run(setup, out, '--from-maps', str(first / 'probs'), '--no-crf') == 0
    for name in _pngs(first):  # the same rule on the same maps
        np.testing.assert_array_equal(np.asarray(Image.open(out / name)),
                                      np.asarray(Image.open(first / name)))
    ident = json.load(open(out / 'manifest.json'))['identity']
    assert ident['maps_dir'] == str(first / 'probs')
    assert 'maps_dir' not in json.load(open(first / 'manifest.json'))['identity']
    # Other maps into the same folder are another run.
    capsys.readouterr()
    assert _run(setup, out, '--no-crf') == 1
    assert 'maps_dir' in capsys.readouterr().err
    with pytest.raises(SystemExit, match='--from-maps .*nowhere: no such folder'):
        _run(setup, tmp_path / 'o', '--from-maps', str(tmp_path / 'nowhere'))


def test_gen_pseudo_checkpoint_mismatch(setup, fw, tmp_path):
    bad = str(tmp_path / 'bad.pth')
    torch.save(dict(state_dict=fw.FakeColorClassifier(num_classes=4).state_dict()), bad)
    with pytest.raises(SystemExit, match='does not match the model of'):
        setup['tool'].main([setup['config'], bad, '--out', str(tmp_path / 'o')])


def test_gen_pseudo_corrupt_image_exit_code(setup, fw, tmp_path, capsys):
    root = str(tmp_path / 'data')
    shutil.copytree(setup['root'], root)
    with open(osp.join(root, 'img', 'img_001.png'), 'wb') as f:
        f.write(b'not an image')
    config = fw.write_config(str(tmp_path / 'cfg.py'), root)
    out = tmp_path / 'out'
    code = setup['tool'].main([config, setup['ckpt'], '--out', str(out), '--workers', '2',
                            '--no-progress'])
    assert code == 1
    assert 'img_001' in capsys.readouterr().err
    assert len(_pngs(out)) == 4
    manifest = json.load(open(out / 'manifest.json'))
    assert manifest['status'] == 'complete_with_failures'
    assert [f['img_id'] for f in manifest['failures']] == ['img_001']


def test_pseudo_dataset_cfg_keys():
    train = dict(type='RepeatDataset', times=3,
                 dataset=dict(type='VOCClsDataset', data_root='d',
                              ann_file='ImageSets/Segmentation/train_aug.txt',
                              pipeline=[dict(type='RandomCrop')]))
    cfg = dict(train_dataloader=dict(dataset=train))
    ds = pseudo_dataset_cfg(cfg)
    assert ds['type'] == 'VOCClsDataset' and ds['pipeline'] == DEFAULT_PIPELINE
    assert pseudo_dataset_cfg(cfg, 'train')['ann_file'] == 'ImageSets/Segmentation/train.txt'
    assert pseudo_dataset_cfg(cfg, 'lists/x.txt')['ann_file'] == 'lists/x.txt'
    assert train['dataset']['pipeline'] == [dict(type='RandomCrop')]  # not modified
    own = dict(type='Other', pipeline=[dict(type='LoadImageFromFile')])
    cfg['pseudo_dataloader'] = dict(dataset=own)
    assert pseudo_dataset_cfg(cfg) == own
    with pytest.raises(KeyError):
        pseudo_dataset_cfg(dict())


def test_identity_differences(tmp_path):
    a = dict(x=1, pseudo_cfg=dict(threshold='adaptive', crf=dict(enabled=True)))
    b = dict(x=1, pseudo_cfg=dict(threshold=0.3, crf=dict(enabled=False)))
    assert identity_differences(a, b) == ['pseudo_cfg.crf.enabled', 'pseudo_cfg.threshold']
    assert identity_differences(a, a) == []
    assert check_out_dir(str(tmp_path / 'none'), a, False) is None


def test_dist_gen_pseudo_two_cpu_ranks(setup, tmp_path):
    """torchrun with 2 gloo ranks: each labels its shard; same files as one process."""
    single = tmp_path / 'single'
    assert _run(setup, single) == 0
    out = tmp_path / 'dist'
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(29650 + os.getpid() % 200),
               PYTHONPATH=os.pathsep.join([FAKES_DIR, os.environ.get('PYTHONPATH', '')]))
    env.pop('CUDA_VISIBLE_DEVICES', None)
    proc = run_group(
        ['bash', osp.join(ROOT, 'tools', 'dist_gen_pseudo.sh'), setup['config'], setup['ckpt'],
         '2', '--out', str(out), '--workers', '1', '--no-progress'],
        env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _pngs(out) == _pngs(single)
    for name in _pngs(single):
        np.testing.assert_array_equal(np.asarray(Image.open(out / name)),
                                      np.asarray(Image.open(single / name)))
    manifest = json.load(open(out / 'manifest.json'))
    assert manifest['options']['world_size'] == 2
    assert manifest['counts'] == dict(total=5, written=5, skipped=0, failed=0)
