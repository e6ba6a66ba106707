# Copyright (c) mmseg-sbce contributors.
"""export_pseudo_labels: the manifest, the out-dir check, clean, failures (one process)."""
import json
import os
import os.path as osp
import shutil

import pytest

import mmseg_sbce  # noqa: F401
from mmseg_sbce.apis import (MANIFEST_FORMAT, OutDirRefused, check_complete,
                             export_pseudo_labels, write_manifest)
from mmseg_sbce.apis import export as export_mod

import fake_wsss as fw  # noqa: E402  (tests/test_apis is on sys.path under pytest)

FAST = dict(scales=(1.0, ), crf=dict(enabled=False))


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('fake_voc'))
    fw.make_dataset(root, num=4, size=(16, 20))
    return root


def _export(data_root, out, **kwargs):
    return export_pseudo_labels(fw.FakeColorClassifier(stride=2), fw.build_dataset(data_root),
                                str(out), kwargs.pop('cfg', FAST), workers=0, progress=False,
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
    assert s['status'] == 'complete' and s['written'] == 4 and s['failures'] == []
    assert 'failed' not in s and 'fractions' not in s  # one key for failures
    m = check_complete(str(out))
    assert m['format'] == MANIFEST_FORMAT and m['run'] == dict(x=1)
    assert m['identity']['checkpoint_sha256'] == 'abc' and m['identity']['save_probs'] is False
    assert m['identity']['pseudo_cfg']['scales'] == [1.0]
    assert m['counts'] == dict(total=4, written=4, skipped=0, failed=0)
    assert m['options']['world_size'] == 1 and m['time']['elapsed_s'] >= 0
    # Same identity again: finished images are skipped.
    s = _export(data_root, out, identity=dict(checkpoint_sha256='abc'))
    assert s['skipped'] == 4 and s['written'] == 0


def test_other_run_is_refused_unless_overwrite_or_clean(data_root, tmp_path):
    out = tmp_path / 'out'
    _export(data_root, out, identity=dict(checkpoint_sha256='abc'))
    with pytest.raises(OutDirRefused, match='checkpoint_sha256'):
        _export(data_root, out, identity=dict(checkpoint_sha256='def'))
    s = _export(data_root, out, identity=dict(checkpoint_sha256='def'), overwrite=True)
    assert s['written'] == 4 and s['skipped'] == 0
    (out / 'stray.txt').write_text('from an interrupted run')
    s = _export(data_root, out, identity=dict(checkpoint_sha256='ghi'), clean=True)
    assert s['written'] == 4 and not (out / 'stray.txt').exists()
    assert check_complete(str(out))['identity']['checkpoint_sha256'] == 'ghi'


def test_failures_make_the_export_incomplete(data_root, tmp_path):
    root = str(tmp_path / 'data')
    shutil.copytree(data_root, root)
    with open(osp.join(root, 'img', 'img_001.png'), 'wb') as f:
        f.write(b'not an image')
    out = tmp_path / 'out'
    s = _export(root, out)
    assert s['status'] == 'complete_with_failures' and s['written'] == 3
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
