# Copyright (c) mmseg-sbce contributors.
"""tools/refine_irn.py on a tiny generated data set: output, manifest, resume, bad input."""
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import mmseg_sbce  # noqa: F401
from mmseg_sbce.apis import save_maps_npz
from mmseg_sbce.datasets.demo_data import generate_demo_dataset
from mmseg_sbce.models.irn import refine_labels
from mmseg_sbce.models.irn.labeller import IRNLabeller

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'irn', 'irn_r18-scratch_1xb8-300_demo-96x96.py')


@pytest.fixture(scope='module')
def setup(tmp_path_factory, load_tool):
    """Demo images, stand-in saved maps (logits from the masks), an untrained network."""
    from mmseg.registry import MODELS
    base = tmp_path_factory.mktemp('refine')
    root = str(base / 'data')
    generate_demo_dataset(root, num_train=4, num_val=1, img_size=40, num_classes=3, seed=2)
    maps = str(base / 'maps')
    os.makedirs(maps)
    with open(osp.join(root, 'ImageSets', 'Segmentation', 'train.txt')) as f:
        ids = f.read().split()
    for img_id in ids:
        mask = np.array(Image.open(osp.join(root, 'SegmentationClass', img_id + '.png')))
        classes = np.array(sorted(set(np.unique(mask).tolist()) - {0, 255}), np.int64) - 1
        logits = np.stack([np.where(mask == c + 1, 4.0, -4.0) for c in classes]) \
            if len(classes) else np.zeros((0, ) + mask.shape)
        save_maps_npz(osp.join(maps, img_id + '.npz'), logits.astype(np.float32), classes,
                      np.full(len(classes), 0.5, np.float32))
    init_default_scope('mmseg')
    cfg = Config.fromfile(CONFIG)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = str(base / 'irn.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    return dict(root=root, maps=maps, ids=ids, ckpt=ckpt, model=model,
                tool=load_tool('refine_irn'))


def _run(setup, out, *extra, options=()):
    return setup['tool'].main([
        CONFIG, setup['ckpt'], '--maps', setup['maps'], '--out', str(out), '--no-progress',
        *extra, '--cfg-options', f'train_dataloader.dataset.data_root={setup["root"]}',
        *options])


def _pngs(out):
    return sorted(n[:-4] for n in os.listdir(out) if n.endswith('.png'))


def _expected(setup, img_id):
    """The labels of one image computed directly: boundary network + refine_labels."""
    model = setup['model'].eval()
    img = np.array(Image.open(osp.join(setup['root'], 'JPEGImages', img_id + '.jpg')))
    inputs = torch.from_numpy(np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1)))
    boundary = IRNLabeller(3).prepare(model, inputs, {})
    with np.load(osp.join(setup['maps'], img_id + '.npz')) as data:
        logits, classes = data['logits'].astype(np.float32), data['classes']
    return refine_labels(torch.from_numpy(logits), classes, torch.from_numpy(boundary))


def test_refine_irn_writes_resumes_and_matches(setup, tmp_path, capsys):
    out = tmp_path / 'out'
    assert _run(setup, out, '--workers', '1') == 0
    assert _pngs(out) == sorted(setup['ids'])
    manifest = json.load(open(out / 'manifest.json'))
    assert manifest['status'] == 'complete'
    assert manifest['counts'] == dict(total=4, written=4, skipped=0, failed=0)
    ident = manifest['identity']
    assert ident['labeller'] == dict(type='IRNLabeller', refine_cfg=dict(
        radius=10, beta=10.0, exp_times=8, bg_threshold=0.25))
    assert ident['maps_dir'] == setup['maps']
    for img_id in setup['ids']:
        with Image.open(out / f'{img_id}.png') as png:
            assert png.mode == 'P'
            label = np.array(png)
        np.testing.assert_array_equal(label, _expected(setup, img_id))
    # A rerun skips every finished image.
    assert _run(setup, out, '--workers', '0') == 0
    assert json.load(open(out / 'manifest.json'))['counts']['skipped'] == 4


def test_refine_irn_resumes_a_killed_run(setup, tmp_path, capsys):
    out = tmp_path / 'out'
    assert _run(setup, out, '--workers', '0') == 0
    done = {i: (out / f'{i}.png').read_bytes() for i in setup['ids']}
    # What a killed run leaves: a 'running' manifest, some PNGs missing, one truncated.
    manifest = json.load(open(out / 'manifest.json'))
    manifest['status'] = 'running'
    for key in ('counts', 'failures'):
        manifest.pop(key)
    (out / 'manifest.json').write_text(json.dumps(manifest))
    os.remove(out / f'{setup["ids"][0]}.png')
    (out / f'{setup["ids"][1]}.png').write_bytes(done[setup['ids'][1]][:20])
    assert _run(setup, out, '--workers', '0') == 0
    manifest = json.load(open(out / 'manifest.json'))
    assert manifest['status'] == 'complete'
    assert manifest['counts'] == dict(total=4, written=2, skipped=2, failed=0)
    assert {i: (out / f'{i}.png').read_bytes() for i in setup['ids']} == done


def test_refine_irn_bad_input(setup, tmp_path, capsys):
    out = tmp_path / 'out'
    assert _run(setup, out, '--workers', '0', options=['refine_cfg.beta=5.0']) == 0
    # Another walk setting into the same folder: refused, naming the field.
    assert _run(setup, out, '--workers', '0') == 1
    assert 'labeller.refine_cfg.beta' in capsys.readouterr().err
    with pytest.raises(SystemExit, match='--maps .*nowhere: no such folder'):
        setup['tool'].main([CONFIG, setup['ckpt'], '--maps', str(tmp_path / 'nowhere'),
                            '--out', str(out)])
    # A missing map file fails that image only, naming the file.
    maps = tmp_path / 'maps'
    maps.mkdir()
    for img_id in setup['ids'][1:]:
        os.link(osp.join(setup['maps'], img_id + '.npz'), maps / f'{img_id}.npz')
    assert setup['tool'].main([
        CONFIG, setup['ckpt'], '--maps', str(maps), '--out', str(tmp_path / 'part'),
        '--no-progress', '--workers', '0', '--cfg-options',
        f'train_dataloader.dataset.data_root={setup["root"]}']) == 1
    err = capsys.readouterr().err
    assert setup['ids'][0] in err and '.npz' in err
    assert _pngs(tmp_path / 'part') == sorted(setup['ids'][1:])


NAMES = ('cat', 'kite', 'boat')


def _user_folder(setup, dest, labels='label_file') -> str:
    """The fixture's images in a user's folder: no generator ``meta.json`` (the demo data
    set class cannot read it), and (``labels='masks'``) no label file either."""
    root = str(dest)
    shutil.copytree(setup['root'], root)
    os.remove(osp.join(root, 'meta.json'))
    if labels == 'masks':
        os.remove(osp.join(root, 'cls_labels.json'))
    return root


def _check_user_run(setup, out, root):
    """Every image of the user's folder labelled as the network and walk label it, the data
    set labelled being the user's, under the user's class names."""
    assert _pngs(out) == sorted(setup['ids'])
    for img_id in setup['ids']:
        np.testing.assert_array_equal(np.array(Image.open(out / f'{img_id}.png')),
                                      _expected(setup, img_id))
    dataset = json.load(open(out / 'manifest.json'))['identity']['dataset']
    assert dataset['type'] == 'BaseWSSSDataset'
    assert dataset['data_root'] == root
    assert dataset['metainfo']['classes'] == ['background', *NAMES]


def test_refine_irn_reads_the_data_set_description(setup, tmp_path, monkeypatch, capsys):
    """The config is read as tools/train.py reads it: ``data_root`` and ``class_names``
    given as options reach the data set to label (the config's own root, relative to the
    working directory, does not exist there)."""
    root = _user_folder(setup, tmp_path / 'pets')
    monkeypatch.chdir(tmp_path)
    out = tmp_path / 'out'
    assert setup['tool'].main([
        CONFIG, setup['ckpt'], '--maps', setup['maps'], '--out', str(out), '--no-progress',
        '--workers', '0', '--cfg-options', f'data_root={root}',
        f'class_names=[{",".join(NAMES)}]']) == 0
    _check_user_run(setup, out, root)


def test_refine_irn_on_a_dataset_child_config(setup, tmp_path, monkeypatch, capsys):
    """The IRN config as run_pipeline.py --dataset writes it (a child config setting the
    user's description): labels from the masks (``label_file = None``) reach the IRN data
    set too, which would otherwise look for the demo's ``cls_labels.json``."""
    from mmseg_sbce.utils.runner_config import write_dataset_config
    root = _user_folder(setup, tmp_path / 'pets', labels='masks')
    monkeypatch.chdir(tmp_path)
    child = write_dataset_config(CONFIG, dict(
        data_root=root, class_names=NAMES, num_classes=3,
        train_split='ImageSets/Segmentation/train.txt', label_file=None,
        train_mask_dir='SegmentationClass'), str(tmp_path / 'configs' / 'irn.py'))
    out = tmp_path / 'out'
    assert setup['tool'].main([child, setup['ckpt'], '--maps', setup['maps'], '--out',
                               str(out), '--no-progress', '--workers', '0']) == 0
    _check_user_run(setup, out, root)
    assert json.load(open(out / 'manifest.json'))['identity']['dataset']['label_file'] is None
