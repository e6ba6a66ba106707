# Copyright (c) mmseg-sbce contributors.
"""tools/run_pipeline.py on a small data set it did not generate: every stage runs with the
real tools, every output lands in the work dir, the data folder is only read, and the class
count comes from the config (the pipeline itself never reads the demo generator's
``meta.json``; only the demo configs' data set class does). The ``--refine`` routes (IRN,
saliency) run on top of the same finished pipeline, so the slow stages run once."""
import json
import os
import os.path as osp
import shutil

import pytest
from mmengine.config import Config

from mmseg_sbce.datasets.demo_data import generate_demo_dataset
from mmseg_sbce.datasets.generated_common import SALIENCY_STAND_IN_DIR, write_saliency_stand_in
from run_pipeline_helpers import BASELINE, DEEPLAB, SBCE, SHORT
from run_pipeline_helpers import snapshot as _snapshot

IRN = 'configs/irn/irn_r18-scratch_1xb8-300_demo-96x96.py'
IRN_SHORT = ['train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2',
             'param_scheduler.0.end=2', 'train_dataloader.num_workers=0',
             'train_dataloader.persistent_workers=False', 'train_dataloader.batch_size=2']
ROUTE_STAGES = ['8_irn_deeplab', '8_irn_eval', '8_irn_refine', '8_irn_train',
                '9_saliency_deeplab', '9_saliency_eval', '9_saliency_labels']


def _make_data(root: str) -> str:
    """A VOC-style folder outside the repository, with stand-in saliency maps, made before
    the pipeline runs."""
    generate_demo_dataset(root, num_train=4, num_val=2, img_size=48, seed=0)
    write_saliency_stand_in(root)
    return root


@pytest.fixture
def user_data(tmp_path):
    return _make_data(str(tmp_path / 'my_data'))


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory, load_tool):
    """One pipeline run through every stage on a user data set (the tests below check it and
    resume from it)."""
    base = tmp_path_factory.mktemp('pipeline')
    data = _make_data(str(base / 'my_data'))
    before = _snapshot(data)
    work = str(base / 'work')
    load_tool('run_pipeline').main(_args(data, work))
    return dict(data=data, work=work, before=before)


def _stamps(work: str) -> dict:
    folder = osp.join(work, 'stages')
    return {n[:-5]: os.path.getmtime(osp.join(folder, n)) for n in os.listdir(folder)}


# Without ground truth the classifiers are not validated during training either.
NO_VAL = ['val_dataloader=None', 'val_cfg=None', 'val_evaluator=None']


def _args(data, work, with_gt=True):
    args = [BASELINE, SBCE, DEEPLAB, '--data-root', data, '--work-dir', work]
    for name, options in SHORT.items():
        args += [f'--{name}-options', *options, *([] if with_gt else NO_VAL)]
    if not with_gt:
        args += ['--skip-deeplab']
    return args


def test_pipeline_on_a_user_data_set(finished_run, load_tool):
    tool = load_tool('run_pipeline')
    user_data, work = finished_run['data'], finished_run['work']
    assert _snapshot(user_data) == finished_run['before']  # the data folder is only read

    stages = sorted(n[:-5] for n in os.listdir(osp.join(work, 'stages')))
    assert stages == ['2_baseline', '3_initial_q', '4_sbce', '5_gen_pseudo', '6_eval_pseudo',
                      '7_deeplab']
    with open(osp.join(work, 'summary.json')) as f:
        summary = json.load(f)
    assert list(summary) == ['rows', 'deeplab_miou', 'seconds']  # no routes without --refine
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
    # the initial Q keeps its maps (LoadQMap(with_thresholds=True) reads them)
    q_init = osp.join(work, 'q_init')
    assert sorted(os.listdir(osp.join(q_init, 'probs'))) == sorted(
        n[:-4] + '.npz' for n in os.listdir(q_init) if n.endswith('.png'))

    # run again: every stage is skipped by its marker, nothing recomputed
    stamps = _stamps(work)
    tool.main(_args(user_data, work))
    assert stamps == _stamps(work)


def test_refine_routes_beside_dcrf(finished_run, load_tool, capsys):
    """--refine irn saliency on the finished run: the earlier stages are skipped, each route
    writes its labels, evaluation and DeepLab, the summary gets a row per route, and a
    second run skips every stage."""
    tool = load_tool('run_pipeline')
    data, work = finished_run['data'], finished_run['work']
    saliency = osp.join(data, SALIENCY_STAND_IN_DIR)
    args = [*_args(data, work), '--refine', 'irn', 'saliency', '--irn-config', IRN,
            '--irn-options', *IRN_SHORT, '--saliency-dir', saliency]
    before = _stamps(work)
    capsys.readouterr()
    tool.main(args)
    out = capsys.readouterr().out
    assert _snapshot(data) == finished_run['before']  # still only read
    after = _stamps(work)
    assert {k: v for k, v in after.items() if k in before} == before  # resumed, not redone
    assert sorted(set(after) - set(before)) == ROUTE_STAGES
    maps = osp.join(work, 'pseudo_sbce', 'probs')
    assert f'--from-maps {maps}' in out and f'--maps {maps}' in out  # commands printed

    with open(osp.join(data, 'ImageSets', 'Segmentation', 'train.txt')) as f:
        ids = sorted(f.read().split())
    manifests = {}
    for route in ('irn', 'saliency'):
        labels = osp.join(work, f'pseudo_sbce_{route}')
        assert sorted(n[:-4] for n in os.listdir(labels) if n.endswith('.png')) == ids
        with open(osp.join(labels, 'manifest.json')) as f:
            manifests[route] = json.load(f)
        assert manifests[route]['status'] == 'complete'
        assert manifests[route]['counts']['written'] == len(ids)
    # IRN: the boundary network trained on seeds from the final maps, then its walk over them
    irn = manifests['irn']['identity']
    assert irn['labeller']['type'] == 'IRNLabeller' and irn['maps_dir'] == maps
    trained = Config.fromfile(osp.join(work, 'irn', osp.basename(IRN)))  # as it ran
    assert trained.train_dataloader.dataset.pipeline[1].maps_dir == maps == trained.maps_dir
    # saliency: the same maps relabelled with the user's saliency maps
    assert manifests['saliency']['identity']['pseudo_cfg']['saliency']['dir'] == saliency
    assert manifests['saliency']['identity']['maps_dir'] == maps

    with open(osp.join(work, 'summary.json')) as f:
        summary = json.load(f)
    routes = {r['route']: r for r in summary['routes']}
    assert list(routes) == ['dcrf', 'irn', 'saliency']
    assert routes['dcrf']['pseudo_miou'] == summary['rows'][-1]['crf']
    assert routes['dcrf']['deeplab_miou'] == summary['deeplab_miou']
    for route in ('irn', 'saliency'):
        with open(osp.join(work, f'eval_{route}.json')) as f:
            report = json.load(f)
        assert routes[route]['pseudo_miou'] == report['prediction']['miou']
        assert 0.0 <= routes[route]['unsure'] <= 1.0
        assert len(report['prediction']['iou']) == 7  # the config's classes + background
        assert routes[route]['deeplab_miou'] is not None
        assert osp.isfile(osp.join(work, f'deeplab_{route}', 'iter_2.pth'))
    with open(osp.join(work, 'summary.md')) as f:
        text = f.read()
    assert '| SBCE + IRN random walk | pseudo_sbce_irn |' in text
    assert '| SBCE + saliency | pseudo_sbce_saliency |' in text

    # run again: every stage, the routes' too, is skipped by its marker
    tool.main(args)
    assert _stamps(work) == after


def test_threshold_settle_moves_only_the_branch(finished_run, tmp_path, capsys):
    """benchmarks/threshold_settle.py on the finished run: from phase 1's checkpoint only the
    threshold branch changes (every other weight and every BN statistic stays the phase's),
    the settled labels are scored, the table row carries the run's own numbers, and a second
    call reuses the finished score."""
    import importlib.util

    import torch
    spec = importlib.util.spec_from_file_location(
        '_bench_threshold_settle', osp.join(osp.dirname(osp.dirname(osp.dirname(
            osp.abspath(__file__)))), 'benchmarks', 'threshold_settle.py'))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    work, out_dir = finished_run['work'], str(tmp_path / 'settle')
    assert bench.main([work, '--phases', '1', '--iters', '100', '--out-dir', out_dir]) == 0
    out = capsys.readouterr().out
    (run_dir, ) = os.listdir(out_dir)
    run_dir = osp.join(out_dir, run_dir)

    before = torch.load(osp.join(work, 'sbce', 'iter_2.pth'), map_location='cpu',
                        weights_only=False)['state_dict']
    after = torch.load(osp.join(run_dir, 'iter_100.pth'), map_location='cpu',
                       weights_only=False)['state_dict']
    assert set(before) == set(after)
    changed = sorted(k for k in before if before[k].is_floating_point()
                     and not torch.equal(before[k], after[k]))
    assert changed == ['decode_head.conv_thr.weight']

    with open(osp.join(run_dir, 'eval.json')) as f:
        settled = json.load(f)['prediction']['miou']
    with open(osp.join(work, 'summary.json')) as f:
        phase1 = json.load(f)['rows'][1]
    row = next(line for line in out.splitlines() if line.startswith(f'| {work} | 1 |'))
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert cells[2:4] == [f'{100 * phase1["init"]:.1f}', f'{100 * settled:.1f}']
    assert cells[4].startswith(f'{100 * phase1["best"]:.1f} (t=')
    assert cells[5] == (f'{100 * (phase1["best"] - phase1["init"]):.1f} -> '
                        f'{100 * (phase1["best"] - settled):.1f}')

    stamp = os.path.getmtime(osp.join(run_dir, 'iter_100.pth'))
    assert bench.main([work, '--iters', '100', '--out-dir', out_dir]) == 0
    assert os.path.getmtime(osp.join(run_dir, 'iter_100.pth')) == stamp  # reused
    with pytest.raises(SystemExit):
        bench.parse_args([work, '--iters', '150'])
    with pytest.raises(SystemExit, match='summary.json not found'):
        bench.main([str(tmp_path), '--out-dir', out_dir])


@pytest.mark.parametrize('extra, message', [
    (['--refine', 'irn'], '--refine irn needs --irn-config'),
    (['--refine', 'irn', '--irn-config', 'configs/irn/missing.py'],
     '--irn-config: no such file: configs/irn/missing.py'),
    (['--refine', 'saliency'], '--refine saliency needs --saliency-dir'),
    (['--refine', 'saliency', '--saliency-dir', 'MISSING'], '--saliency-dir: no such folder'),
    (['--refine', 'irn', '--irn-config', DEEPLAB], 'has no LoadIRNSeeds'),
])
def test_refine_bad_input_before_any_stage(user_data, tmp_path, load_tool, capsys, extra,
                                           message):
    tool = load_tool('run_pipeline')
    work = tmp_path / 'work'
    extra = [str(tmp_path / e) if e == 'MISSING' else e for e in extra]
    with pytest.raises(SystemExit) as exc:
        tool.main([*_args(user_data, str(work)), *extra])
    assert message in capsys.readouterr().err + str(exc.value.code)
    assert not (work / 'stages').exists()  # no stage ran


def test_demo_refine_stages(tmp_path, load_tool, monkeypatch):
    """The demo's routes: the demo IRN config by default, the generator's stand-in saliency
    maps as a stage of their own; without --refine its commands are the plain pipeline's
    (the commands are recorded here, not run)."""
    demo = load_tool('run_demo')

    def commands(name, *argv):
        cmds = []
        monkeypatch.setattr(demo.Demo, 'sh', lambda self, *cmd, log=None: cmds.append(
            ' '.join(str(c) for c in cmd[1:])))
        monkeypatch.setattr(demo.Demo, 'load_report',
                            lambda self, report: dict(sweep=dict(best_threshold=0.5)))
        monkeypatch.setattr(demo.Demo, 'summarise', lambda self, phases: None)
        monkeypatch.setattr(demo.Demo, 'irn_checkpoint', lambda self: 'IRN.pth')
        demo.main(['--work-dir', str(tmp_path / name), '--data-root', 'DATA', *argv])
        return cmds, sorted(n[:-5] for n in os.listdir(tmp_path / name / 'stages'))

    plain, plain_stages = commands('plain')
    assert plain_stages == ['1_data', '2_baseline', '3_initial_q', '4_sbce', '5_gen_pseudo',
                            '6_eval_pseudo', '7_deeplab']
    both, both_stages = commands('both', '--refine', 'saliency', 'irn')
    assert sorted(set(both_stages) - set(plain_stages)) == ['1_saliency_stand_in',
                                                            *ROUTE_STAGES]
    work = tmp_path / 'both'
    # The same pipeline commands (apart from the work dir), the stand-in after the data.
    assert both[1] == plain[0] + ' --saliency-stand-in'
    assert [c.replace(str(work), 'W') for c in both[:1] + both[2:len(plain) + 1]] == \
        [c.replace(str(tmp_path / 'plain'), 'W') for c in plain]
    routes = both[len(plain) + 1:]
    assert [c.split()[0] for c in routes] == [
        'tools/train.py', 'tools/refine_irn.py', 'tools/eval_pseudo.py', 'tools/train.py',
        'tools/gen_pseudo.py', 'tools/eval_pseudo.py', 'tools/train.py']
    assert routes[0].startswith(f'tools/train.py {demo.IRN_CFG} --work-dir {work}/irn')
    assert f'pipeline.1.maps_dir={work}/pseudo_sbce/probs' in routes[0]
    assert f'--out {work}/pseudo_sbce_irn' in routes[1]
    assert routes[4].endswith(f'pseudo_cfg.saliency.dir=DATA/{SALIENCY_STAND_IN_DIR}')
    assert f'--work-dir {work}/deeplab_saliency' in routes[6]


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


def test_baseline_only_stops_after_the_baseline(user_data, tmp_path, load_tool, capsys):
    """--baseline-only: the baseline is trained, exported and scored (all four columns of
    its row), nothing of SBCE or DeepLab runs, and a second run skips every stage."""
    tool = load_tool('run_pipeline')
    work = str(tmp_path / 'work')
    tool.main([*_args(user_data, work), '--baseline-only'])
    stages = sorted(n[:-5] for n in os.listdir(osp.join(work, 'stages')))
    assert stages == ['2_baseline', '3_initial_q', '6_eval_baseline']
    with open(osp.join(work, 'summary.json')) as f:
        summary = json.load(f)
    assert [r['name'] for r in summary['rows']] == ['BCE baseline (CAM, config threshold 0.3)']
    row = summary['rows'][0]
    for column in ('init', 'crf', 'best', 'best_crf'):
        assert 0.0 <= row[column] <= 1.0
    assert summary['deeplab_miou'] is None
    for absent in ('sbce', 'pseudo_sbce', 'deeplab', 'pipeline.png'):
        assert not osp.exists(osp.join(work, absent))
    stamps = _stamps(work)
    tool.main([*_args(user_data, work), '--baseline-only'])
    assert stamps == _stamps(work)
    # the routes start from SBCE maps: refused before anything runs
    with pytest.raises(SystemExit):
        tool.main([*_args(user_data, str(tmp_path / 'other')), '--baseline-only',
                   '--refine', 'irn', '--irn-config', IRN])
    assert 'not with --baseline-only' in capsys.readouterr().err
    assert not osp.exists(tmp_path / 'other')


def test_bad_data_root_is_one_line(tmp_path, load_tool):
    tool = load_tool('run_pipeline')
    with pytest.raises(SystemExit):
        tool.main([BASELINE, SBCE, DEEPLAB, '--data-root', str(tmp_path / 'missing')])


def test_irn_route_on_a_dataset_description(tmp_path, load_tool, monkeypatch):
    """--dataset with --refine irn: the IRN config runs as a child config on the user's
    description like the other three, so its training set and the set refine_irn labels are
    the user's folder under the user's class names, with the labels from the masks
    (``label_file = None``); the commands are recorded here, not run, and the data sets the
    two IRN commands would build are built from their own arguments."""
    from mmengine.registry import init_default_scope

    from mmseg.registry import DATASETS
    from mmseg_sbce.apis import pseudo_dataset_cfg
    from mmseg_sbce.utils.runner_config import load_runner_config, read_config
    names = ('cat', 'kite', 'boat')
    root = str(tmp_path / 'pets')
    generate_demo_dataset(root, num_train=4, num_val=2, img_size=32, num_classes=3, seed=0)
    for name in ('meta.json', 'cls_labels.json'):  # a user's folder: images, splits, masks
        os.remove(osp.join(root, name))
    dataset_file = tmp_path / 'pets.py'
    dataset_file.write_text(
        f'data_root = {root!r}\nclass_names = {names!r}\nnum_classes = 3\n'
        "train_split = 'ImageSets/Segmentation/train.txt'\nlabel_file = None\n"
        "train_mask_dir = 'SegmentationClass'\n")
    tool = load_tool('run_pipeline')
    cmds = _record_commands(monkeypatch, tool.Pipeline)
    work = str(tmp_path / 'work')
    tool.main([BASELINE, SBCE, DEEPLAB, '--dataset', str(dataset_file), '--work-dir', work,
               '--skip-deeplab', '--refine', 'irn', '--irn-config', IRN])

    child = osp.join(work, 'configs', 'irn.py')
    with open(child) as f:
        text = f.read()
    assert f"class_names = {names!r}" in text and 'label_file = None' in text
    irn = [c for c in cmds if c[1:2] == [child]]
    assert [c[0] for c in irn] == ['tools/train.py', 'tools/refine_irn.py']
    maps = osp.join(work, 'pseudo_sbce', 'probs')
    train, refine = irn
    assert train[train.index('--work-dir') + 1] == osp.join(work, 'irn')
    assert f'data_root={root}' in train and f'maps_dir={maps}' in train
    assert refine[refine.index('--maps') + 1] == maps
    assert f'data_root={root}' in refine

    init_default_scope('mmseg')
    train_args = load_tool('train').parse_args(train[1:])
    cfg = load_runner_config(train_args.config, train_args.cfg_options,
                             work_dir=train_args.work_dir)
    refine_args = load_tool('refine_irn').parse_args(refine[1:])
    labelled = pseudo_dataset_cfg(read_config(refine_args.config, refine_args.cfg_options),
                                  refine_args.split)
    with open(osp.join(root, 'ImageSets', 'Segmentation', 'train.txt')) as f:
        ids = f.read().split()
    for ds_cfg in (cfg.train_dataloader.dataset, labelled):
        assert ds_cfg['type'] == 'BaseWSSSDataset' and ds_cfg['label_file'] is None
        assert ds_cfg['data_root'] == root
        dataset = DATASETS.build(dict(ds_cfg, pipeline=[]))
        assert dataset.metainfo['classes'] == ('background', *names)
        got = {dataset.get_data_info(i)['img_id'] for i in range(len(dataset))}
        assert got and got <= set(ids)  # training leaves out images without a class
    assert cfg.train_dataloader.dataset.pipeline[1].maps_dir == maps
    assert len(DATASETS.build(dict(labelled, pipeline=[]))) == len(ids)  # every image


def _record_commands(monkeypatch, pipeline_cls) -> list:
    """Make ``pipeline_cls`` record its stage commands (``[tool, *args]``) instead of
    running them, with a stand-in evaluation report and IRN checkpoint; returns the list the
    commands go to."""
    cmds = []
    monkeypatch.setattr(pipeline_cls, 'sh', lambda self, *cmd, log=None: cmds.append(
        [str(c) for c in cmd[1:]]))
    monkeypatch.setattr(pipeline_cls, 'load_report',
                        lambda self, report: dict(sweep=dict(best_threshold=0.5)))
    monkeypatch.setattr(pipeline_cls, 'summarise', lambda self, phases: None)
    monkeypatch.setattr(pipeline_cls, 'irn_checkpoint', lambda self: 'IRN.pth')
    return cmds


def test_irn_config_is_read_from_the_current_directory(tmp_path, load_tool, monkeypatch,
                                                       capsys):
    """A relative ``--irn-config`` is read from the current directory, as the three other
    config arguments are: run from another directory, a path relative to the repository is
    refused before any stage (it passed the check, then the config could not be read), and a
    path relative to that directory reaches the IRN commands (recorded here, not run)."""
    from run_pipeline_helpers import REPO
    data = str(tmp_path / 'data')
    generate_demo_dataset(data, num_train=4, num_val=2, img_size=32, seed=0)
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    tool = load_tool('run_pipeline')
    cmds = _record_commands(monkeypatch, tool.Pipeline)
    configs = [osp.join(REPO, c) for c in (BASELINE, SBCE, DEEPLAB)]
    argv = [*configs, '--data-root', data, '--work-dir', 'work', '--skip-deeplab',
            '--refine', 'irn', '--irn-config']

    with pytest.raises(SystemExit) as exc:
        tool.main([*argv, IRN])  # relative to the repository, not to the current directory
    assert f'--irn-config: no such file: {IRN} (relative paths are read from the current ' \
        'directory)' in capsys.readouterr().err
    assert exc.value.code == 2 and not cmds and not (elsewhere / 'work').exists()

    tool.main([*argv, osp.relpath(osp.join(REPO, IRN))])
    irn = [c for c in cmds if c[:2] == ['tools/train.py', osp.join(REPO, IRN)]]
    assert len(irn) == 1
    assert irn[0][irn[0].index('--work-dir') + 1] == str(elsewhere / 'work' / 'irn')


def _with_baseline_options(args, *extra):
    """``args`` with ``extra`` added to its ``--baseline-options``."""
    at = args.index('--baseline-options') + 1
    return args[:at] + list(extra) + args[at:]


def test_initial_q_without_dcrf(user_data, tmp_path, load_tool, capsys):
    """``init_q_crf = False`` in the baseline config: the initial Q is the baseline's CAM
    labels at its threshold without dCRF (maps saved beside it), the baseline's +dCRF
    column still scores them with dCRF (``pseudo_baseline_crf``), and a value that is not a
    bool stops the run before anything is trained."""
    tool = load_tool('run_pipeline')
    work = tmp_path / 'work'
    tool.main([*_with_baseline_options(_args(user_data, str(work)), 'init_q_crf=False'),
               '--baseline-only'])
    q_init, raw, crf = (work / name for name in ('q_init', 'pseudo_baseline_nocrf',
                                                  'pseudo_baseline_crf'))
    pngs = sorted(n for n in os.listdir(raw) if n.endswith('.png'))
    assert pngs and sorted(n for n in os.listdir(q_init) if n.endswith('.png')) == pngs
    for name in pngs:  # the Q is the labels without dCRF, file for file
        assert (q_init / name).read_bytes() == (raw / name).read_bytes()
    assert sorted(os.listdir(q_init / 'probs')) == [n[:-4] + '.npz' for n in pngs]
    with open(crf / 'manifest.json') as f:
        assert json.load(f)['identity']['pseudo_cfg']['crf']['enabled'] is True
    with open(q_init / 'manifest.json') as f:
        assert json.load(f)['identity']['pseudo_cfg']['crf']['enabled'] is False
    # the +dCRF column is the dCRF'd labels' score, not the Q's
    with open(work / 'eval_baseline_crf.json') as f:
        assert osp.realpath(json.load(f)['pred_dir']) == osp.realpath(crf)

    with pytest.raises(SystemExit, match='init_q_crf must be True or False, got 1'):
        tool.main([*_with_baseline_options(_args(user_data, str(tmp_path / 'bad')),
                                           'init_q_crf=1'), '--baseline-only'])
    assert not osp.exists(tmp_path / 'bad' / 'baseline')
