# Copyright (c) mmseg-sbce contributors.
import os.path as osp

import cv2
import numpy as np
import pytest
from PIL import Image

import mmseg_sbce  # noqa: F401
from mmseg_sbce.apis import save_label_png, save_maps_npz
from mmseg_sbce.datasets.demo_data import generate_demo_dataset
from mmseg_sbce.evaluation.visualize import comparison_figure


def test_comparison_figure_layout(tmp_path):
    root = str(tmp_path / 'data')
    generate_demo_dataset(root, num_train=3, num_val=1, img_size=32, num_classes=2, seed=0)
    ids = open(osp.join(root, 'ImageSets/Segmentation/train.txt')).read().split()
    probs_dir, pseudo_dir = tmp_path / 'probs', tmp_path / 'pseudo'
    probs_dir.mkdir()
    pseudo_dir.mkdir()
    for i in ids:
        save_maps_npz(str(probs_dir / f'{i}.npz'), np.random.randn(1, 32, 32), np.array([0]),
                      None)
        save_label_png(np.ones((32, 32), np.uint8), str(pseudo_dir / f'{i}.png'))
    out = comparison_figure(root, [('cam', str(probs_dir)), ('p', str(probs_dir), 'prob')],
                            str(pseudo_dir), str(tmp_path / 'fig.png'), num_rows=2, scale=2)
    fig = cv2.imread(out)
    # 2 rows of 64 px + a 16 px caption bar; 5 columns of 64 px
    assert fig.shape == (2 * 64 + 16, 5 * 64, 3)
    with pytest.raises(ValueError, match='map mode'):
        comparison_figure(root, [('x', str(probs_dir), 'logit')], str(pseudo_dir),
                          str(tmp_path / 'bad.png'), num_rows=1)
    # the ground-truth column shows the palette colours of the mask, not the image
    gt = np.array(Image.open(osp.join(root, 'SegmentationClass', ids[0] + '.png')))
    assert (fig[16:80:2, 64:128:2].reshape(-1, 3).any(axis=1)).sum() >= (gt > 0).sum() * 0.9


def test_comparison_figure_names_a_missing_image(tmp_path):
    root = str(tmp_path / 'data')
    generate_demo_dataset(root, num_train=1, num_val=1, img_size=32, num_classes=2, seed=0)
    with pytest.raises(FileNotFoundError, match='nope'):
        comparison_figure(root, [], str(tmp_path), str(tmp_path / 'f.png'), img_ids=['nope'])
