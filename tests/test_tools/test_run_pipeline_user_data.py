# Copyright (c) mmseg-sbce contributors.
"""docs/data.md "Your own data set", as a new user follows it: a VOC-style folder with their own
class names and no generator ``meta.json``, one data set file (a filled-in copy of
``configs/_base_/datasets/my_dataset.py``) and one ``tools/run_pipeline.py --dataset`` command
give pseudo-labels, their evaluation and a trained DeepLab, all named by the user's classes.
Only iteration counts and loader settings are shortened, on the command line. The stage
commands run in the test's process (the same tools and arguments; tests/test_tools/
test_run_pipeline.py runs them as subprocesses), which keeps this test under a minute."""
import json
import os
import os.path as osp
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from mmseg_sbce.datasets.demo_data import generate_demo_dataset
from run_pipeline_helpers import (BASELINE, DEEPLAB, SBCE, SHORT, run_stages_in_process,
                                  snapshot)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TEMPLATE = osp.join(REPO, 'configs', '_base_', 'datasets', 'my_dataset.py')
NAMES = ('cat', 'kite', 'boat')
SPLITS = dict(train='photo', val='check')  # the user's image ids: photo_0, ..., check_0, ...


def _read_split(root, split):
    with open(osp.join(root, 'ImageSets', 'Segmentation', f'{split}.txt')) as f:
        return f.read().split()


@pytest.fixture(scope='module')
def user_folder(tmp_path_factory):
    """A user's VOC-style folder: their own ids, masks of 3 classes, the image-level labels
    of the training images in ``cls_labels.json``; no ``meta.json``, nothing else.
    Images and masks come from the generator, renamed."""
    base = tmp_path_factory.mktemp('user')
    generated = str(base / 'generated')
    generate_demo_dataset(generated, num_train=4, num_val=2, img_size=32, num_classes=3,
                          seed=0)
    root = str(base / 'pets')
    for folder in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'):
        os.makedirs(osp.join(root, folder))
    with open(osp.join(generated, 'cls_labels.json')) as f:
        generated_labels = json.load(f)
    labels = {}
    for split, prefix in SPLITS.items():
        ids = []
        for i, old in enumerate(_read_split(generated, split)):
            new = f'{prefix}_{i}'
            shutil.copy(osp.join(generated, 'JPEGImages', old + '.jpg'),
                        osp.join(root, 'JPEGImages', new + '.jpg'))
            shutil.copy(osp.join(generated, 'SegmentationClass', old + '.png'),
                        osp.join(root, 'SegmentationClass', new + '.png'))
            ids.append(new)
            if split == 'train':
                labels[new] = generated_labels[old]
        with open(osp.join(root, 'ImageSets', 'Segmentation', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(ids) + '\n')
    with open(osp.join(root, 'cls_labels.json'), 'w') as f:
        json.dump(labels, f)
    return root


def write_dataset_file(path, data_root, labels='label_file'):
    """The one file the user writes: the template with their root and class names, and
    (``labels='masks'``) no label file."""
    with open(TEMPLATE) as f:
        text = f.read()
    edits = [("data_root = 'data/my_dataset'", f'data_root = {data_root!r}'),
             ("class_names = ('cat', 'dog', 'person')", f'class_names = {NAMES!r}')]
    if labels == 'masks':
        edits.append(("label_file = 'cls_labels.json'", 'label_file = None'))
    for old, new in edits:
        assert text.count(old) == 1, f'the template no longer has the line {old!r}'
        text = text.replace(old, new)
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def _command(dataset_file, work):
    args = [BASELINE, SBCE, DEEPLAB, '--dataset', dataset_file, '--work-dir', work]
    for name, options in SHORT.items():
        args += [f'--{name}-options', *options]
    return args


def test_user_data_set_through_the_whole_pipeline(user_folder, tmp_path, load_tool,
                                                  monkeypatch):
    dataset_file = write_dataset_file(tmp_path / 'pets.py', user_folder)
    before = snapshot(user_folder)
    work = str(tmp_path / 'work')
    tool = load_tool('run_pipeline')
    run_stages_in_process(monkeypatch, tool, load_tool)
    tool.main(_command(dataset_file, work))
    assert snapshot(user_folder) == before  # the data folder is only read

    # pseudo-labels of every training image, in the user's 0..3 (+255)
    for img_id in _read_split(user_folder, 'train'):
        label = np.array(Image.open(osp.join(work, 'pseudo_sbce', img_id + '.png')))
        assert label.shape == (32, 32)
        assert set(np.unique(label).tolist()) <= {0, 1, 2, 3, 255}
    # their evaluation, with the user's class names
    for report in ('eval_baseline', 'eval_sbce_p2', 'eval_sbce_p2_best_crf'):
        with open(osp.join(work, report + '.json')) as f:
            result = json.load(f)
        assert result['class_names'] == ['background', *NAMES]
        assert len(result['prediction']['iou']) == 4
    with open(osp.join(work, 'eval_sbce_p2.md')) as f:
        report = f.read()
    assert all(f'| {name} |' in report for name in NAMES)
    with open(osp.join(work, 'summary.json')) as f:
        summary = json.load(f)
    assert len(summary['rows']) == 3 and summary['deeplab_miou'] is not None
    assert osp.isfile(osp.join(work, 'summary.md'))

    # a DeepLab with background + 3 outputs in both heads, validated on the user's classes
    state = torch.load(osp.join(work, 'deeplab', 'iter_2.pth'), map_location='cpu',
                       weights_only=False)['state_dict']
    assert state['decode_head.conv_seg.weight'].shape[0] == 4
    assert state['auxiliary_head.conv_seg.weight'].shape[0] == 4
    with open(osp.join(work, 'deeplab.log')) as f:
        log = f.read()
    table = log[log.index('per class results:'):]
    assert [row for row in ('background', *NAMES) if re.search(rf'\|\s*{row}\s*\|', table)] \
        == ['background', *NAMES]
    # the configs the stages ran: the shipped ones on the user's description
    for name in ('baseline', 'sbce', 'deeplab'):
        with open(osp.join(work, 'configs', name + '.py')) as f:
            assert f"class_names = {NAMES!r}" in f.read()


VOC_CONFIGS = ['configs/bce_baseline_voc.py', 'configs/sbce_voc_from_baseline.py',
               'configs/deeplab/deeplabv3plus_r101-d8_4xb4-20k_voc12aug-pseudo-512x512.py']


@pytest.mark.parametrize('configs,labels', [
    ([BASELINE, SBCE, DEEPLAB], 'masks'),
    (VOC_CONFIGS, 'label_file'),
    (VOC_CONFIGS, 'masks')], ids=['demo-masks', 'voc-label_file', 'voc-masks'])
def test_every_data_set_of_the_three_configs_builds_on_the_user_folder(
        configs, labels, user_folder, tmp_path, load_tool):
    """What the stages read, without training: each config run on the user's description
    builds every data set as a generic one with the user's classes, the labels of the
    training images from their label file or masks, and heads of 3 (+ background)."""
    from mmengine.registry import init_default_scope

    from mmseg.registry import DATASETS
    from mmseg_sbce.utils.runner_config import dataset_cfgs
    init_default_scope('mmseg')
    root = user_folder
    if labels == 'masks':  # a folder with masks only
        root = str(tmp_path / 'pets')
        shutil.copytree(user_folder, root, ignore=shutil.ignore_patterns('cls_labels.json'))
    dataset_file = write_dataset_file(tmp_path / 'pets.py', root, labels)
    tool = load_tool('run_pipeline')
    pipeline = tool.Pipeline.from_args(tool.parse_args(
        [*configs, '--dataset', dataset_file, '--work-dir', str(tmp_path / 'work')]))
    with open(osp.join(user_folder, 'cls_labels.json')) as f:
        expected = {img_id: [c - 1 for c in ids] for img_id, ids in json.load(f).items()}
    labelled = 0
    for name, cfg in pipeline.cfgs.items():
        heads = [cfg.model.decode_head] + ([cfg.model.auxiliary_head]
                                           if cfg.model.get('auxiliary_head') else [])
        assert [h.num_classes for h in heads] == ([3] if name != 'deeplab' else [4, 4])
        for ds_cfg in dataset_cfgs(cfg):
            assert ds_cfg.type in ('BaseWSSSDataset', 'BaseSegDataset'), (name, ds_cfg.type)
            dataset = DATASETS.build(dict(ds_cfg, pipeline=[]))
            assert dataset.metainfo['classes'] == ('background', *NAMES)
            assert dataset.data_root == root
            infos = [dataset.get_data_info(i) for i in range(len(dataset))]
            if ds_cfg.type == 'BaseWSSSDataset' and infos[0]['img_id'].startswith('photo'):
                assert {info['img_id']: info['gt_labels'] for info in infos} == expected
                labelled += 1
    # baseline: train, infer; SBCE: train, infer, the Q hook's, the export's; the VOC
    # classifiers validate on the training images too (VOC `train`)
    assert labelled == (10 if 'voc' in configs[0] else 6)


def test_bad_dataset_file_is_a_one_line_error(user_folder, tmp_path, load_tool, capsys):
    tool = load_tool('run_pipeline')
    bad = tmp_path / 'bad.py'
    cases = [
        ("data_root = 'x'\ntrain_split = 'a.txt'\nlabel_file = None\n", 'sets no class_names'),
        ("class_names = ('background', 'cat')\ntrain_split = 'a.txt'\nlabel_file = None\n",
         "'background' (class 0) is added"),
        ("class_names = ('cat', )\ntrain_split = 'a.txt'\nlabel_file = None\n",
         'train_mask_dir must name their folder'),
    ]
    for text, message in cases:
        bad.write_text(text)
        with pytest.raises(SystemExit):
            tool.parse_args([BASELINE, SBCE, DEEPLAB, '--dataset', str(bad)])
        err = capsys.readouterr().err
        assert message in err and str(bad) in err
    # no data_root in the file and no --data-root
    bad.write_text("class_names = ('cat', )\ntrain_split = 'a.txt'\n"
                   "label_file = 'cls_labels.json'\n")
    with pytest.raises(SystemExit):
        tool.parse_args([BASELINE, SBCE, DEEPLAB, '--dataset', str(bad)])
    assert '--data-root is required' in capsys.readouterr().err
    # --data-root wins over the file's data_root
    args = tool.parse_args([BASELINE, SBCE, DEEPLAB, '--dataset', str(bad), '--data-root',
                            user_folder])
    assert args.data_root == user_folder and args.description['class_names'] == ('cat', )


def test_user_folder_without_a_description_says_how_to_describe_it(user_folder):
    """The demo configs pointed at a user folder with --data-root only (no class names):
    the demo data set class finds no meta.json and says what to give instead."""
    from mmseg_sbce.datasets import DemoClsDataset
    with pytest.raises(FileNotFoundError, match='meta.json not found.*--dataset.*'
                       'Your own data set'):
        DemoClsDataset(data_root=user_folder)
