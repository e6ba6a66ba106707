# Copyright (c) mmseg-sbce contributors.
import numpy as np
import pytest

from mmseg_sbce.apis import save_maps_npz
from mmseg_sbce.models.irn import LoadIRNSeeds


def test_seeds_from_saved_maps(tmp_path):
    logits = np.array([[[10, 5, 2, 0.2, -1, -1]]], np.float32)
    save_maps_npz(str(tmp_path / 'a.npz'), logits, np.array([2]), None)
    transform = LoadIRNSeeds(str(tmp_path), seed_cfg=dict(crf=dict(enabled=False)))
    out = transform(dict(img=np.zeros((1, 6, 3), np.uint8), img_id='a', seg_fields=[]))
    assert out['gt_seg_map'].tolist() == [[3, 3, 255, 0, 0, 0]]
    assert out['seg_fields'] == ['gt_seg_map']
    assert "mode='fixed'" in repr(transform)


def test_bad_input_names_the_file(tmp_path):
    transform = LoadIRNSeeds(str(tmp_path), seed_cfg=dict(crf=dict(enabled=False)))
    with pytest.raises(FileNotFoundError, match='b.npz'):
        transform(dict(img=np.zeros((1, 6, 3), np.uint8), img_id='b'))
    save_maps_npz(str(tmp_path / 'c.npz'), np.zeros((1, 2, 2), np.float32), np.array([0]),
                  None)
    with pytest.raises(ValueError, match='c.npz holds maps of size'):
        transform(dict(img=np.zeros((3, 3, 3), np.uint8), img_id='c'))
    adaptive = LoadIRNSeeds(str(tmp_path), seed_cfg=dict(mode='adaptive',
                                                        crf=dict(enabled=False)))
    with pytest.raises(ValueError, match='c.npz.*mapped thresholds'):
        adaptive(dict(img=np.zeros((2, 2, 3), np.uint8), img_id='c'))
    with pytest.raises(ValueError, match='maps_dir'):
        LoadIRNSeeds('')
