# Copyright (c) mmseg-sbce contributors.
"""export_pseudo_labels (manifest, out-dir check, clean, failures) and its labelling loop
generate_pseudo_labels, in one process."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

import mmseg_sbce  # noqa: F401
from mmseg_sbce.apis import (MANIFEST_FORMAT, OutDirRefused, check_complete,
                             export_pseudo_labels, generate_pseudo_labels, label_cam,
                             load_maps_npz, scatter_compact, write_manifest)
from mmseg_sbce.apis import export as export_mod

import fake_wsss as fw  # noqa: E402  (tests/test_apis is on sys.path under pytest)

# The fake images are 24 x 36 px: the dCRF kernels in absolute pixels (the released code's)
# snap the stride-2 maps to the colour edges; scaled to that size they would be < 3 px.
FAST = dict(scales=(1.0, 0.5), crf=dict(iterations=2, size_reference=None))
QUICK = dict(scales=(1.0, ), crf=dict(enabled=False))


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


# ------------------------------------------------------------------- the whole export
def _export(data_root, out, **kwargs):
    return export_pseudo_labels(fw.FakeColorClassifier(stride=2), fw.build_dataset(data_root),
                                str(out), kwargs.pop('cfg', QUICK), workers=0, progress=False,
                                **kwargs)


def test_manifest_running_then_complete(data_root, tmp_path, monkeypatch):
    out = tmp_path / 'out'
    seen = []
    shard = export_mod.generate_pseudo_labels

    def spy(*args, **kwargs):  # the manifest says 'running' while the labels are written
        seen.append(json.load(open(out / 'manifest.json'))['status'])
        return shard(*args, **kwargs)

    monkeypatch.setattr(export_mod, 'generate_pseudo_labels', spy)
    s = _export(data_root, out, identity=dict(checkpoint_sha256='abc'), run_info=dict(x=1))
    assert seen == ['running']
    assert s['status'] == 'complete' and s['written'] == 6 and s['failures'] == []
    assert 'failed' not in s and 'fractions' not in s  # one key for failures
    m = check_complete(str(out))
    assert m['format'] == MANIFEST_FORMAT and m['run'] == dict(x=1)
    assert m['identity']['checkpoint_sha256'] == 'abc' and m['identity']['save_probs'] is False
    assert m['identity']['pseudo_cfg']['scales'] == [1.0]
    assert m['counts'] == dict(total=6, written=6, skipped=0, failed=0)
    assert m['options']['world_size'] == 1 and m['time']['elapsed_s'] >= 0
    # Same identity again: finished images are skipped.
    s = _export(data_root, out, identity=dict(checkpoint_sha256='abc'))
    assert s['skipped'] == 6 and s['written'] == 0


def test_other_run_is_refused_unless_overwrite_or_clean(data_root, tmp_path):
    out = tmp_path / 'out'
    _export(data_root, out, identity=dict(checkpoint_sha256='abc'))
    with pytest.raises(OutDirRefused, match='checkpoint_sha256'):
        _export(data_root, out, identity=dict(checkpoint_sha256='def'))
    s = _export(data_root, out, identity=dict(checkpoint_sha256='def'), overwrite=True)
    assert s['written'] == 6 and s['skipped'] == 0
    (out / 'stray.txt').write_text('from an interrupted run')
    s = _export(data_root, out, identity=dict(checkpoint_sha256='ghi'), clean=True)
    assert s['written'] == 6 and not (out / 'stray.txt').exists()
    assert check_complete(str(out))['identity']['checkpoint_sha256'] == 'ghi'


def test_failures_make_the_export_incomplete(data_root, tmp_path):
    root = str(tmp_path / 'data')
    shutil.copytree(data_root, root)
    with open(osp.join(root, 'img', 'img_001.png'), 'wb') as f:
        f.write(b'not an image')
    out = tmp_path / 'out'
    s = _export(root, out)
    assert s['status'] == 'complete_with_failures' and s['written'] == 5
    assert [f['img_id'] for f in s['failures']] == ['img_001'] and s['failures'][0]['error']
    with pytest.raises(ValueError, match="status 'complete_with_failures'"):
        check_complete(str(out))


def test_check_complete_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='has no manifest.json'):
        check_complete(str(tmp_path))
    write_manifest(str(tmp_path), dict(format=MANIFEST_FORMAT, status='running'))
    with pytest.raises(ValueError, match="status 'running'"):
        check_complete(str(tmp_path))
    write_manifest(str(tmp_path), dict(phase=2, images=4))  # the Q store's old format
    with pytest.raises(ValueError, match='another mmseg-sbce version'):
        check_complete(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ['manifest.json']
