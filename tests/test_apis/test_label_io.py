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
