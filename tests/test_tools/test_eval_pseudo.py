# Copyright (c) mmseg-sbce contributors.
import json

import numpy as np
import pytest
from PIL import Image

from mmseg_sbce.apis import save_label_png, save_maps_npz


@pytest.fixture(scope='module')
def eval_pseudo(load_tool):
    return load_tool('eval_pseudo')


@pytest.fixture
def dirs(tmp_path):
    """Three images, 2 foreground classes; predictions with one known mistake."""
    gt_dir, pred_dir, probs_dir = (tmp_path / n for n in ('gt', 'pred', 'probs'))
    for d in (gt_dir, pred_dir, probs_dir):
        d.mkdir()
    ids = ['a', 'b', 'c']
    for i, img_id in enumerate(ids):
        gt = np.zeros((6, 6), np.uint8)
        gt[1:5, 1:5] = 1 + i % 2
        gt[0, 0] = 255
        Image.fromarray(gt, mode='L').save(gt_dir / f'{img_id}.png')
        pred = gt.copy()
        pred[0, 0] = 0
        if img_id == 'b':
            pred[1, 1:5] = 0  # 4 pixels of class 2 missed
        save_label_png(pred, str(pred_dir / f'{img_id}.png'))  # palette PNG like gen_pseudo
        logits = np.where(gt == 1 + i % 2, 1.5, -1.5)[None].astype(np.float32)  # p .82/.18
        save_maps_npz(str(probs_dir / f'{img_id}.npz'), logits, np.array([i % 2]), [0.5])
    (tmp_path / 'split.txt').write_text('a\nb\nc\n')
    return tmp_path


def test_eval_pseudo_report(eval_pseudo, dirs, capsys):
    out = str(dirs / 'report' / 'r')
    code = eval_pseudo.main([str(dirs / 'pred'), '--gt', str(dirs / 'gt'), '--split',
                             str(dirs / 'split.txt'), '--num-classes', '3', '--out', out,
                             '--probs-dir', str(dirs / 'probs'), '--sweep', '0.1', '0.9',
                             '0.2', '--no-normalize-cam', '--workers', '0'])
    assert code == 0
    data = json.load(open(out + '.json'))
    # Background: TP 3 * 19, GT 57, Pred 61 -> 57/61; class 1 (a, c): 32/32; class 2
    # (b): TP 12, GT 16, Pred 12 -> 12/16. The GT-255 pixel never counts.
    iou = data['prediction']['iou']
    assert iou == pytest.approx([57 / 61, 1.0, 12 / 16])
    assert data['sweep']['range'] == [0.1, 0.9, 0.2]
    assert data['sweep']['best_miou'] == pytest.approx(1.0)
    assert 0.2 <= data['sweep']['best_threshold'] < 0.8
    assert data['sweep']['adaptive']['miou'] == pytest.approx(1.0)
    text = open(out + '.md').read()
    assert '| class_1 |' in text and 'sweep (0.1 to 0.9 step 0.2' in text
    assert 'report written' in capsys.readouterr().out


def test_eval_pseudo_missing_predictions(eval_pseudo, dirs, capsys):
    (dirs / 'pred' / 'b.png').unlink()
    args = [str(dirs / 'pred'), '--gt', str(dirs / 'gt'), '--split', str(dirs / 'split.txt'),
            '--num-classes', '3', '--out', str(dirs / 'r')]
    assert eval_pseudo.main(args) == 1
    err = capsys.readouterr().err
    assert '1 of 3 ground-truth ids have no prediction' in err and ': b' in err
    assert eval_pseudo.main(args + ['--allow-missing']) == 0
    data = json.load(open(str(dirs / 'r') + '.json'))
    assert data['missing'] == ['b']
    assert data['prediction']['iou'][2] == 0.0  # b's class is all missed


def test_eval_pseudo_sweep_needs_probs(eval_pseudo, dirs):
    with pytest.raises(SystemExit):
        eval_pseudo.parse_args([str(dirs), '--gt', 'g', '--split', 's', '--sweep', '0', '1',
                                '0.1'])


def test_eval_pseudo_class_names(eval_pseudo, dirs, capsys, tmp_path):
    """--class-names (or a config's data set) names the rows and gives the class count."""
    base = [str(dirs / 'pred'), '--gt', str(dirs / 'gt'), '--split', str(dirs / 'split.txt'),
            '--workers', '0']
    # no --num-classes: the count (3 with background) comes from the two names, not 21
    assert eval_pseudo.main(base + ['--class-names', 'circle', 'square',
                                    '--out', str(tmp_path / 'a')]) == 0
    out = capsys.readouterr().out
    assert '| circle |' in out and '| square |' in out and 'class_1' not in out
    data = json.load(open(str(tmp_path / 'a') + '.json'))
    assert data['class_names'] == ['background', 'circle', 'square']
    assert data['prediction']['iou'] == pytest.approx([57 / 61, 1.0, 12 / 16])
    # from a config's data set description, with --cfg-options applied as train.py does
    cfg = tmp_path / 'my_data.py'
    cfg.write_text("data_root = 'nowhere'\nclass_names = ('disc', 'box')\n")
    assert eval_pseudo.main(base + ['--config', str(cfg), '--out', str(tmp_path / 'b')]) == 0
    assert '| disc |' in capsys.readouterr().out
    assert eval_pseudo.main(base + ['--config', str(cfg), '--cfg-options',
                                    'class_names=[ring,cube]', '--out',
                                    str(tmp_path / 'c')]) == 0
    assert '| ring |' in capsys.readouterr().out
    # names that disagree with --num-classes: one clear error
    assert eval_pseudo.main(base + ['--class-names', 'circle', '--num-classes', '3']) == 1
    assert '--num-classes 3 but 2 class names' in capsys.readouterr().err


def test_eval_pseudo_missing_split_file(eval_pseudo, dirs, capsys):
    """A split file that is not there is a one-line error naming it, not a traceback."""
    missing = str(dirs / 'ImageSets' / 'train.txt')
    code = eval_pseudo.main([str(dirs / 'pred'), '--gt', str(dirs / 'gt'), '--split', missing,
                             '--num-classes', '3', '--out', str(dirs / 'r')])
    assert code == 1
    err = capsys.readouterr().err
    assert err.strip() == f'eval_pseudo: --split {missing}: No such file or directory'
    assert not (dirs / 'r.json').exists()
