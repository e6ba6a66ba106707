# Copyright (c) mmseg-sbce contributors.
"""``tools/dist_train.sh configs/demo/sbce_demo.py 2``: the shipped SBCE demo config, run by
the shipped launcher as 2 CPU processes over gloo (DDP without ``find_unused_parameters``).

Only the length and the data are changed on the command line (as a user shortening a run
would): 2 SBCE phases of 4 iterations with gamma 2 / theta 1, so both sub-phases, both Q
updates (the initial one from the untrained network's CAMs, then eq. 9 + dCRF) and a phase
switch happen under DDP. The logged scalars must carry the sub-phase, both loss terms and the
diagnostics the training issue asks for.
"""
import glob
import json
import os
import os.path as osp
import sys

import numpy as np
from PIL import Image

from mmseg_sbce.datasets.demo_data import generate_demo_dataset
from process_group import run_group

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'configs/demo/sbce_demo.py'


def read_scalars(work_dir):
    files = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert len(files) == 1, files
    with open(files[0]) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_dist_train_runs_the_sbce_demo_config_on_two_cpu_processes(tmp_path):
    data = str(tmp_path / 'data')
    generate_demo_dataset(data, num_train=8, num_val=2, img_size=96, num_classes=6, seed=3)
    work = str(tmp_path / 'work')
    q_dir = osp.join(work, 'q')
    options = [
        f'train_dataloader.dataset.data_root={data}',
        f'val_dataloader.dataset.data_root={data}',
        f'test_dataloader.dataset.data_root={data}',
        f'custom_hooks.1.dataset.data_root={data}',
        f'custom_hooks.1.q_dir={q_dir}',
        f'train_dataloader.dataset.pipeline.1.q_dir={q_dir}',
        # the layout: hooks, LR restarts, max_iters (8) and checkpoints (every 4) follow it
        'phase_schedule.gamma=2', 'phase_schedule.theta=1', 'phase_schedule.phase_iters=4',
        'phase_schedule.num_phases=2', 'train_cfg.val_interval=8',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=1',
        'default_hooks.logger.interval=1',
    ]
    env = dict(os.environ, PORT='29652', PYTHON=sys.executable, CUDA_VISIBLE_DEVICES='')
    res = run_group(
        ['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', work, '--cfg-options',
         *options],
        env=env, timeout=900, cwd=ROOT)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    # two ranks, each labelling its half of the training set in both Q updates
    assert out.count('pseudo-labels (rank 0/2): 4 written') == 2, out[-3000:]

    # the checkpoints of both phases, and the Q store of both phases, complete
    for it in (4, 8):
        assert osp.isfile(osp.join(work, f'iter_{it}.pth'))
    with open(osp.join(data, 'ImageSets', 'Segmentation', 'train.txt')) as f:
        train_ids = sorted(line.strip() for line in f if line.strip())
    assert len(train_ids) == 8
    for phase in (1, 2):
        store = osp.join(q_dir, f'phase_{phase}')
        with open(osp.join(store, 'manifest.json')) as f:
            manifest = json.load(f)
        assert manifest['run']['phase'] == phase
        assert manifest['counts']['total'] == len(train_ids)
        assert sorted(osp.splitext(p)[0] for p in os.listdir(store)
                      if p.endswith('.png')) == train_ids
        for img_id in train_ids:
            q = np.array(Image.open(osp.join(store, img_id + '.png')))
            assert q.ndim == 2 and set(np.unique(q)) <= set(range(7)) | {255}
    # the phase-1 Q is the initial one (CAM threshold), the phase-2 Q comes from eq. 9
    with open(osp.join(q_dir, 'phase_1', 'manifest.json')) as f:
        assert json.load(f)['identity']['pseudo_cfg']['threshold'] == 0.3
    with open(osp.join(q_dir, 'phase_2', 'manifest.json')) as f:
        assert json.load(f)['identity']['pseudo_cfg']['threshold'] == 'adaptive'
    assert os.readlink(osp.join(q_dir, 'current')) == osp.abspath(
        osp.join(q_dir, 'phase_2'))

    # logged per iteration: sub-phase (1 classifier, 2 threshold), both loss terms and the
    # diagnostics; nothing that is not a loss carries the word "loss"
    train_rows = [r for r in read_scalars(work) if 'sub_phase' in r]
    assert [r['step'] for r in train_rows] == list(range(1, 9))
    assert [r['sub_phase'] for r in train_rows] == [1, 2] * 4
    assert [r['phase'] for r in train_rows] == [1] * 4 + [2] * 4
    for row in train_rows:
        for key in ('loss', 'loss_sbce', 'loss_kl', 'mean_thr', 'frac_gap', 'mean_scale'):
            assert key in row and np.isfinite(row[key]), (key, row)
