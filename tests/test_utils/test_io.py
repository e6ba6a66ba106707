# Copyright (c) mmseg-sbce contributors.
import json
import os

import numpy as np
import pytest
from PIL import Image

from mmseg_sbce.utils import io as io_utils
from mmseg_sbce.utils.io import (IGNORE_INDEX, TEMP_SUFFIX, atomic_write, parse_split,
                                 read_label_png, read_split, temp_path, write_json_atomic)


def test_temp_path_is_hidden_next_to_the_file(tmp_path):
    tmp = temp_path(str(tmp_path / 'a.png'))
    assert os.path.dirname(tmp) == str(tmp_path)
    name = os.path.basename(tmp)
    assert name.startswith('.a.png.') and name.endswith(TEMP_SUFFIX)


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path, monkeypatch):
    path = str(tmp_path / 'x.json')
    write_json_atomic(path, dict(b=1, a=[1, 2]))
    assert json.load(open(path)) == dict(a=[1, 2], b=1)
    assert open(path).read().index('"a"') < open(path).read().index('"b"')  # sorted keys

    def broken(tmp):
        open(tmp, 'w').write('half')
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        atomic_write(path, broken)
    assert json.load(open(path)) == dict(a=[1, 2], b=1)  # the old file is untouched
    assert os.listdir(tmp_path) == ['x.json']  # no temporary left

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(io_utils.os, 'replace', crash)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(str(tmp_path / 'y.json'), {})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ['x.json']


def test_read_label_png_modes(tmp_path):
    label = np.array([[0, 1], [2, IGNORE_INDEX]], np.uint8)
    Image.fromarray(label, mode='L').save(tmp_path / 'l.png')
    pal = Image.fromarray(label, mode='P')
    pal.putpalette([0] * 768)
    pal.save(tmp_path / 'p.png')
    for name in ('l.png', 'p.png'):
        np.testing.assert_array_equal(read_label_png(str(tmp_path / name)), label)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / 'rgb.png')
    with pytest.raises(ValueError, match='rgb.png: a label PNG must be mode P or L'):
        read_label_png(str(tmp_path / 'rgb.png'))


def test_split_files(tmp_path):
    assert parse_split(['a\n', '\n', '  \n', 'b 1 0\n']) == ['a', 'b']
    path = tmp_path / 'split.txt'
    path.write_text('2007_000032\n2007_000039 extra\n\n')
    assert read_split(str(path)) == ['2007_000032', '2007_000039']
