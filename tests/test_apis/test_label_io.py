# Copyright (c) mmseg-sbce contributors.
import os

import numpy as np
import pytest
from PIL import Image

import mmseg_sbce  # noqa: F401
from mmseg_sbce.apis import save_label_png
from mmseg_sbce.utils import io as io_utils


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


def test_is_complete_output_decodes_the_files(tmp_path):
    from mmseg_sbce.apis.label_io import is_complete_output, save_maps_npz
    png, npz = str(tmp_path / 'a.png'), str(tmp_path / 'a.npz')
    save_label_png(np.zeros((30, 40), np.uint8), png)
    save_maps_npz(npz, np.zeros((1, 30, 40), np.float32), np.array([0]), [0.5])
    assert is_complete_output(png) and is_complete_output(png, npz)
    data = open(png, 'rb').read()
    open(png, 'wb').write(data[:len(data) - 20])  # cut inside the image data / IEND
    assert not is_complete_output(png)
    open(png, 'wb').write(data)
    open(npz, 'wb').write(open(npz, 'rb').read()[:30])
    assert is_complete_output(png) and not is_complete_output(png, npz)
    os.remove(png)
    os.symlink(npz, png)
    assert not is_complete_output(png)


def test_remove_export_files_keeps_other_files(tmp_path):
    from mmseg_sbce.apis.label_io import remove_export_files
    (tmp_path / 'probs').mkdir()
    for name in ('a.png', 'b.png', '.a.png.12.tmp', 'probs/a.npz', 'notes.txt',
                 'eval.md', 'probs/readme.txt'):
        (tmp_path / name).write_text('x')
    assert remove_export_files(str(tmp_path)) == 4
    assert sorted(os.listdir(tmp_path)) == ['eval.md', 'notes.txt', 'probs']
    assert os.listdir(tmp_path / 'probs') == ['readme.txt']


def test_atomic_write_refuses_a_symlink(tmp_path):
    victim = tmp_path / 'victim.txt'
    victim.write_text('keep')
    link = tmp_path / 'out.png'
    link.symlink_to(victim)
    with pytest.raises(io_utils.SymlinkRefused, match='out.png is a symbolic link'):
        save_label_png(np.zeros((2, 2), np.uint8), str(link))
    assert victim.read_text() == 'keep' and link.is_symlink()


def test_corrupt_manifest_is_refused_by_name(tmp_path):
    from mmseg_sbce.apis.manifest import (ManifestUnreadable, check_complete, check_out_dir,
                                          read_manifest)
    path = tmp_path / 'manifest.json'
    path.write_text('{"status": ')
    with pytest.raises(ManifestUnreadable, match='manifest.json is not a readable manifest'):
        read_manifest(str(tmp_path))
    with pytest.raises(ManifestUnreadable):
        check_complete(str(tmp_path))
    msg = check_out_dir(str(tmp_path), {}, overwrite=False)
    assert str(path) in msg and '--overwrite' in msg and '\n' not in msg
    assert check_out_dir(str(tmp_path), {}, overwrite=True) is None
    path.write_text('[1, 2]')
    assert 'not an object' in check_out_dir(str(tmp_path), {}, overwrite=False)
