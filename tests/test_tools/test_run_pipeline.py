# Copyright (c) mmseg-sbce contributors.
"""tools/run_pipeline.py on a small data set it did not generate: every stage runs with the
real tools, every output lands in the work dir, the data folder is only read, and the class
count comes from the config (the pipeline itself never reads the demo generator's
``meta.json``; only the demo configs' data set class does)."""
import json
import os
import os.path as osp
import shutil

import pytest

from mmseg_sbce.datasets.demo_data import generate_demo_dataset

BASELINE = 'configs/demo/bce_baseline_demo.py'
SBCE = 'configs/demo/sbce_demo.py'
DEEPLAB = 'configs/demo/deeplabv3plus_demo.py'
LOADERS = ['train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
           'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
           'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
           'train_dataloader.batch_size=2']
SHORT = dict(
    baseline=['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
              'default_hooks.checkpoint.interval=2', 'param_scheduler.0.end=2', *LOADERS],
    sbce=['phase_schedule.phase_iters=2', 'phase_schedule.gamma=2', 'phase_schedule.theta=1',
          'phase_schedule.num_phases=2', *LOADERS],
    deeplab=['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
             'default_hooks.checkpoint.interval=2', 'param_scheduler.0.end=2', *LOADERS])


def _snapshot(root: str) -> dict:
    """Every file under ``root`` with its size and modification time."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = osp.join(folder, name)
            out[osp.relpath(path, root)] = (os.path.getsize(path), os.path.getmtime(path))
    return out


@pytest.fixture
def user_data(tmp_path):
    """A VOC-style folder outside the repository, made before the pipeline runs."""
    root = str(tmp_path / 'my_data')
    generate_demo_dataset(root, num_train=4, num_val=2, img_size=48, seed=0)
    return root


# Without ground truth the classifiers are not validated during training either.
NO_VAL = ['val_dataloader=None', 'val_cfg=None', 'val_evaluator=None']


def _args(data, work, with_gt=True):
    args = [BASELINE, SBCE, DEEPLAB, '--data-root', data, '--work-dir', work]
    for name, options in SHORT.items():
        args += [f'--{name}-options', *options, *([] if with_gt else NO_VAL)]
    if not with_gt:
        args += ['--skip-deeplab']
    return args


def test_pipeline_on_a_user_data_set(user_data, tmp_path, load_tool):
    tool = load_tool('run_pipeline')
    before = _snapshot(user_data)
    work = str(tmp_path / 'work')
    tool.main(_args(user_data, work))
    assert _snapshot(user_data) == before  # the data folder is only read

    stages = sorted(n[:-5] for n in os.listdir(osp.join(work, 'stages')))
    assert stages == ['2_baseline', '3_initial_q', '4_sbce', '5_gen_pseudo', '6_eval_pseudo',
                      '7_deeplab']
    with open(osp.join(work, 'summary.json')) as f:
        summary = json.load(f)
    assert [r['name'] for r in summary['rows']][1:] == \
        ['SBCE after phase 1 (adaptive t)', 'SBCE after phase 2 (adaptive t)']
    for row in summary['rows']:
        assert 0.0 <= row['crf'] <= 1.0 and 0.0 <= row['best_crf'] <= 1.0
    assert summary['deeplab_miou'] is not None
    assert osp.isfile(osp.join(work, 'pipeline.png'))
    # the scored classes are the config's (6 + background), not a default of 21
    with open(osp.join(work, 'eval_sbce_p2.json')) as f:
        report = json.load(f)
    assert len(report['prediction']['iou']) == len(report['class_names']) == 7
    # the generic pipeline sweeps eval_pseudo's whole default range (the demo keeps its own)
    assert report['sweep']['range'][0] < 0.05
    # the Q store is the run's
    assert osp.isdir(osp.join(work, 'sbce', 'q', 'phase_2'))

    # run again: every stage is skipped by its marker, nothing recomputed
    stamps = {n: os.path.getmtime(osp.join(work, 'stages', n))
              for n in os.listdir(osp.join(work, 'stages'))}
    tool.main(_args(user_data, work))
    assert stamps == {n: os.path.getmtime(osp.join(work, 'stages', n))
                      for n in os.listdir(osp.join(work, 'stages'))}


def test_pipeline_without_ground_truth_skips_evaluation(user_data, tmp_path, load_tool, capsys):
    tool = load_tool('run_pipeline')
    # an export-only data set: images and the split, no masks
    shutil.rmtree(osp.join(user_data, 'SegmentationClass'))
    work = str(tmp_path / 'work')
    tool.main(_args(user_data, work, with_gt=False))
    assert 'not scored' in capsys.readouterr().out
    stages = sorted(n[:-5] for n in os.listdir(osp.join(work, 'stages')))
    assert stages == ['2_baseline', '3_initial_q', '4_sbce', '5_gen_pseudo']
    with open(osp.join(work, 'summary.json')) as f:
        assert json.load(f)['rows'] == []
    assert len(os.listdir(osp.join(work, 'pseudo_sbce'))) >= 4


def test_bad_data_root_is_one_line(tmp_path, load_tool):
    tool = load_tool('run_pipeline')
    with pytest.raises(SystemExit):
        tool.main([BASELINE, SBCE, DEEPLAB, '--data-root', str(tmp_path / 'missing')])
