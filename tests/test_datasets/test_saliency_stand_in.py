# Copyright (c) mmseg-sbce contributors.
"""The stand-in saliency maps of the generated data sets."""
import hashlib
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mmseg_sbce.datasets.demo_data import generate_demo_dataset
from mmseg_sbce.datasets.generated_common import write_saliency_stand_in


def _hashes(root):
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = osp.join(folder, name)
            out[osp.relpath(path, root)] = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    return out


def test_stand_in_maps(tmp_path):
    root = str(tmp_path / 'demo')
    generate_demo_dataset(root, num_train=3, num_val=1, img_size=48, num_classes=3, seed=4)
    before = _hashes(root)
    assert write_saliency_stand_in(root) == 4
    after = _hashes(root)
    # Nothing of the data set changes; one grey map per mask.
    assert {k: v for k, v in after.items() if not k.startswith('SaliencyStandIn')} == before
    stand_in = sorted(k for k in after if k.startswith('SaliencyStandIn'))
    assert [osp.basename(k) for k in stand_in] == sorted(
        os.listdir(osp.join(root, 'SegmentationClass')))
    for key in stand_in:
        with Image.open(osp.join(root, key)) as img:
            assert img.mode == 'L' and img.size == (48, 48)
            sal = np.array(img).astype(np.float32) / 255
        gt = np.array(Image.open(osp.join(root, 'SegmentationClass', osp.basename(key))))
        inside, outside = sal[(gt > 0) & (gt < 255)], sal[gt == 0]
        # A cue, not a copy: objects are clearly more salient, the map is not binary.
        assert inside.mean() > outside.mean() + 0.4
        assert len(np.unique(sal)) > 10
    # Deterministic: the same seed gives the same bytes, another seed other noise.
    assert write_saliency_stand_in(root) == 4 and _hashes(root) == after
    write_saliency_stand_in(root, seed=1)
    assert _hashes(root) != after


def test_stand_in_needs_masks(tmp_path):
    with pytest.raises(FileNotFoundError, match='SegmentationClass'):
        write_saliency_stand_in(str(tmp_path))


def test_tool_option(tmp_path, load_tool, capsys):
    tool = load_tool('gen_demo_data')
    plain, with_sal = str(tmp_path / 'a'), str(tmp_path / 'b')
    args = ['--num-train', '2', '--num-val', '1', '--size', '40', '--no-progress']
    tool.main([plain, *args])
    tool.main([with_sal, *args, '--saliency-stand-in'])
    assert 'stand-in saliency maps' in capsys.readouterr().out
    a, b = _hashes(plain), _hashes(with_sal)
    assert {k: v for k, v in b.items() if not k.startswith('SaliencyStandIn')} == a
    assert len([k for k in b if k.startswith('SaliencyStandIn')]) == 3
