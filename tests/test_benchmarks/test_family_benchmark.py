# Copyright (c) mmseg-sbce contributors.
"""``benchmarks/family_benchmark.py``: the tables it builds from finished pipeline runs
(reports written here by hand, so every cell is known)."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from benchmark_loader import load_benchmark



@pytest.fixture(scope='module')
def bench():
    return load_benchmark('family_benchmark')


def _cm(gt_fg, pred_fg, total=100):
    """A 2-class confusion matrix [2, 3]: ``gt_fg`` foreground pixels in the ground
    truth, ``pred_fg`` labelled foreground (all of the true ones first)."""
    tp = min(gt_fg, pred_fg)
    return [[total - gt_fg - (pred_fg - tp), pred_fg - tp, 0], [gt_fg - tp, tp, 0]]


def _write_run(work, rows, deeplab, fg):
    """A finished 2-phase pipeline run: summary.json and the eval reports that
    read_run opens; ``fg`` maps report name -> (gt fg, predicted fg)."""
    os.makedirs(work)
    with open(osp.join(work, 'summary.json'), 'w') as f:
        json.dump(dict(rows=rows, deeplab_miou=deeplab, seconds={}), f)
    for name, (gt_fg, pred_fg) in fg.items():
        report = dict(prediction=dict(confusion=_cm(gt_fg, pred_fg)))
        if name.startswith('eval_sbce_p') and not name.endswith('_crf'):
            report['sweep'] = dict(adaptive=dict(confusion=_cm(gt_fg, pred_fg + 1)))
        with open(osp.join(work, name + '.json'), 'w') as f:
            json.dump(report, f)


def _rows(offset):
    return [dict(name=n, init=0.5 + offset, crf=0.6 + offset, best=0.7 + offset,
                 best_threshold=0.2 + offset, best_crf=0.8 + offset)
            for n in ('BCE baseline', 'SBCE after phase 1', 'SBCE after phase 2')]


def test_read_run_and_member_table(bench, tmp_path):
    fg = dict(eval_baseline=(20, 10), eval_baseline_crf=(20, 12), eval_sbce_p1=(20, 30),
              eval_sbce_p1_crf=(20, 25), eval_sbce_p2=(20, 22))
    for seed, offset, deeplab in ((0, 0.0, 70.0), (1, 0.02, 74.0)):
        _write_run(str(tmp_path / 'm' / f'seed{seed}'), _rows(offset), deeplab, fg)
    assert bench.read_run(str(tmp_path / 'm' / 'seed9')) is None  # not finished
    run = bench.read_run(str(tmp_path / 'm' / 'seed0'))
    assert run['gt_fg'] == pytest.approx(0.2) and run['deeplab'] == 70.0
    base, p1, p2 = run['rows']
    # The baseline's "init" labels are its label folder; SBCE's the adaptive sweep (+1 px).
    assert base['fg_init'] == pytest.approx(0.10) and base['fg_crf'] == pytest.approx(0.12)
    assert p1['fg_init'] == pytest.approx(0.31) and p1['fg_crf'] == pytest.approx(0.25)
    # The last phase's dCRF labels are its own export (no separate Q report).
    assert p2['fg_init'] == pytest.approx(0.23) and p2['fg_crf'] == pytest.approx(0.22)

    runs = {s: bench.read_run(str(tmp_path / 'm' / f'seed{s}')) for s in (0, 1)}
    table = bench.member_table('m', runs)
    assert 'ground truth 20.0 %' in table
    # Mean over the two seeds and their spread, in points.
    assert '| BCE baseline | 51.0 (2.0) | 61.0 (2.0) | 71.0 (2.0) | 81.0 (2.0) | 0.21 | ' \
        '10.0 (0.0) | 12.0 (0.0) |' in table
    assert '| SBCE after phase 1 | 51.0 (2.0) |' in table and '| 31.0 (0.0) | 25.0 (0.0) |' in table
    assert 'DeepLab val mIoU on the final SBCE labels: 72.0 (4.0) (per seed: 70.0, 74.0)' \
        in table
    # `table` prints each member's criteria under its table, and names unfinished seeds.
    args = bench.parse_args(['table', '--work-dir', str(tmp_path), '--members', 'demo',
                             '--seeds', '0', '1', '2'])
    args.members = ['m']
    text = bench.tables(args)
    assert text.index('| BCE baseline |') < text.index("Issue 16's criteria over seeds 0, 1:")
    assert '(m: seeds [2] not finished)' in text


def test_fg_fraction_counts_classes_not_unsure(bench):
    cm = np.array([[50, 5, 5], [10, 20, 10]])  # 10 + 5 unsure pixels are not foreground
    assert bench.fg_fraction(cm) == pytest.approx(25 / 100)
    assert bench.gt_fg_fraction(cm) == pytest.approx(40 / 100)
    assert bench.fg_fraction(None) is None


def test_unknown_member_is_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(['table', '--members', 'no_such_member'])
    assert 'unknown members' in capsys.readouterr().err


def _args(bench, tmp_path, *extra):
    return bench.parse_args(['run', '--work-dir', str(tmp_path / 'work'), '--data-dir',
                             str(tmp_path / 'data'), *extra])


def test_demo_is_a_member(bench, tmp_path, monkeypatch):
    """``demo`` is generated with the generator's own defaults (no ``--preset``)."""
    calls = []
    monkeypatch.setattr(bench.subprocess, 'run', lambda cmd, **kw: calls.append(cmd))
    args = _args(bench, tmp_path, '--members', 'demo', 'small_objects_256')
    assert args.members == ['demo', 'small_objects_256']
    bench.generate('demo', 'D')
    bench.generate('small_objects_256', 'S')
    assert '--preset' not in calls[0]
    assert calls[1][-2:] == ['--preset', 'small_objects_256']


def _fake_data(tmp_path, member):
    data = tmp_path / 'data' / member
    data.mkdir(parents=True)
    (data / 'meta.json').write_text(json.dumps(dict(classes=['background', 'a', 'b'])))


def _option_groups(cmd):
    groups = {}
    for flag in ('--baseline-options', '--sbce-options', '--deeplab-options'):
        start = cmd.index(flag) + 1
        end = next((i for i in range(start, len(cmd)) if cmd[i].startswith('--')), len(cmd))
        groups[flag] = cmd[start:end]
    return groups


def test_run_member_gives_sbce_options_to_the_sbce_config_only(bench, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(bench.subprocess, 'run', lambda cmd, **kw: calls.append(cmd))
    _fake_data(tmp_path, 'demo')
    args = _args(bench, tmp_path, '--members', 'demo', '--pipeline-options', 'a=1',
                 '--sbce-options', 'pseudo_cfg.threshold=otsu', '--skip-deeplab')
    bench.run_member('demo', 3, args)
    cmd = calls[-1]
    groups = _option_groups(cmd)
    common = ['class_names=[a,b]', 'randomness.seed=3', 'a=1']
    assert groups['--baseline-options'] == common == groups['--deeplab-options']
    assert groups['--sbce-options'] == common + ['pseudo_cfg.threshold=otsu']
    assert cmd[-1] == '--skip-deeplab'
    record = json.loads((tmp_path / 'work' / 'demo' / 'seed3' / 'family_run.json').read_text())
    assert record == dict(member='demo', seed=3, pipeline_options=['a=1'],
                          sbce_options=['pseudo_cfg.threshold=otsu'])
    # The same work dir with other options is refused, not mixed.
    other = _args(bench, tmp_path, '--members', 'demo')
    with pytest.raises(SystemExit, match='give this run its own --work-dir'):
        bench.run_member('demo', 3, other)


def _finished_baseline(bench, work, record, stages=('2_baseline', '3_initial_q'),
                       outputs=None):
    os.makedirs(osp.join(work, 'stages'))
    for name in bench.BASELINE_OUTPUTS if outputs is None else outputs:
        os.makedirs(osp.join(work, name))
        with open(osp.join(work, name, 'x.txt'), 'w') as f:
            f.write(name)
    for stage in stages:
        with open(osp.join(work, 'stages', f'{stage}.json'), 'w') as f:
            json.dump(dict(seconds=1.0), f)
    with open(osp.join(work, bench.RUN_RECORD), 'w') as f:
        json.dump(record, f)


def test_baselines_from_copies_the_finished_baseline(bench, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(bench.subprocess, 'run', lambda cmd, **kw: calls.append(cmd))
    _fake_data(tmp_path, 'demo')
    source = tmp_path / 'src'
    _finished_baseline(bench, str(source / 'demo' / 'seed0'),
                       dict(member='demo', seed=0, pipeline_options=[], sbce_options=[]))
    args = _args(bench, tmp_path, '--members', 'demo', '--baselines-from', str(source),
                 '--sbce-options', 'x=1')
    bench.run_member('demo', 0, args)
    work = tmp_path / 'work' / 'demo' / 'seed0'
    for name in bench.BASELINE_OUTPUTS:
        assert (work / name / 'x.txt').read_text() == name
    assert not (work / 'pseudo_baseline_crf').exists()  # the initial Q has the dCRF
    assert sorted(os.listdir(work / 'stages')) == ['2_baseline.json', '3_initial_q.json']
    assert len(calls) == 1  # the pipeline runs, and skips the copied stages itself

    # A baseline whose initial Q is kept without dCRF (init_q_crf = False) has the dCRF'd
    # labels beside it, which the baseline's +dCRF column is scored on: copied too.
    record = dict(member='demo', seed=2, pipeline_options=[], sbce_options=[],
                  baseline_options=['init_q_crf=False'])
    _finished_baseline(bench, str(source / 'demo' / 'seed2'), record,
                       outputs=bench.BASELINE_OUTPUTS + bench.OPTIONAL_BASELINE_OUTPUTS)
    args = _args(bench, tmp_path, '--members', 'demo', '--seeds', '2', '--baselines-from',
                 str(source), '--baseline-options', 'init_q_crf=False')
    bench.run_member('demo', 2, args)
    work = tmp_path / 'work' / 'demo' / 'seed2'
    for name in bench.BASELINE_OUTPUTS + bench.OPTIONAL_BASELINE_OUTPUTS:
        assert (work / name / 'x.txt').read_text() == name

    # A baseline made with other --pipeline-options is not this run's baseline.
    args = _args(bench, tmp_path, '--members', 'demo', '--baselines-from', str(source),
                 '--pipeline-options', 'a=1', '--work-dir', str(tmp_path / 'work2'))
    with pytest.raises(SystemExit, match='pipeline_options'):
        bench.run_member('demo', 0, args)
    # Nor is one whose initial Q was never finished.
    _finished_baseline(bench, str(source / 'demo' / 'seed1'),
                       dict(member='demo', seed=1, pipeline_options=[], sbce_options=[]),
                       stages=('2_baseline', ))
    args = _args(bench, tmp_path, '--members', 'demo', '--baselines-from', str(source),
                 '--work-dir', str(tmp_path / 'work3'))
    with pytest.raises(SystemExit, match='has not finished stage 3_initial_q'):
        bench.run_member('demo', 1, args)
    with pytest.raises(SystemExit):
        _args(bench, tmp_path, '--baselines-from', str(tmp_path / 'work'))


def _run(*phases):
    """A read_run-like record: one dict of the four columns (fractions) per row, the
    baseline first."""
    return dict(rows=[dict(zip(('init', 'crf', 'best', 'best_crf'), cells))
                      for cells in phases])


def test_done_criteria_hold(bench):
    runs = {0: _run((.50, .50, .60, .80), (.88, .90, .89, .91), (.89, .91, .90, .92)),
            1: _run((.50, .50, .60, .82), (.88, .90, .89, .91), (.89, .92, .90, .92))}
    checks = {c['name']: c for c in bench.done_criteria(runs)}
    assert all(c['holds'] for c in checks.values())
    # 91.5 - 81.0 = +10.5 against the larger spread (2.0, the baseline's).
    assert checks['beats_baseline']['evidence'] == (
        'phase 2 adaptive +dCRF 91.5 vs baseline best threshold +dCRF 81.0: +10.5, '
        'spread 2.0 (per seed +11.0, +10.0)')
    assert 'phase 1 1.0 / 1.0, phase 2 1.0 / 0.5' in checks['near_own_best']['evidence']
    assert bench.criteria_text(runs).startswith(
        "Issue 16's criteria over seeds 0, 1: all hold")


def test_done_criteria_fail_on_each_condition(bench):
    # An unstable baseline: SBCE ahead in both seeds, but not by more than the spread.
    runs = {0: _run((.5, .5, .6, .70), (.9, .95, .91, .95)),
            1: _run((.5, .5, .6, .90), (.9, .96, .91, .96))}
    checks = {c['name']: c for c in bench.done_criteria(runs)}
    assert not checks['beats_baseline']['holds']
    assert 'spread 20.0 (per seed +25.0, +6.0)' in checks['beats_baseline']['evidence']
    assert checks['phases_never_worse']['holds']  # one phase: nothing to compare
    assert checks['near_own_best']['holds']

    # Phase 2 loses 5 points without dCRF where both cells vary by 1: a decline.
    runs = {0: _run((.5, .5, .6, .6), (.80, .90, .81, .90), (.75, .90, .81, .90)),
            1: _run((.5, .5, .6, .6), (.81, .90, .82, .90), (.76, .90, .82, .90))}
    checks = {c['name']: c for c in bench.done_criteria(runs)}
    assert not checks['phases_never_worse']['holds']
    assert checks['phases_never_worse']['evidence'] == (
        'largest drop beyond the spread: phase 1 -> 2, init -5.0 (spread 1.0)')
    # ... and phase 2's adaptive labels are 6 points below its own best threshold.
    assert not checks['near_own_best']['holds']
    assert 'phase 2 6.0 / 0.0 (allowed 3.0)' in checks['near_own_best']['evidence']
    text = bench.criteria_text(runs)
    assert 'fails phases_never_worse, near_own_best' in text
    assert '- near_own_best: FAILS;' in text and '- beats_baseline: holds;' in text

    # 2.9 points below the best threshold holds; 3.1 does not.
    runs = {0: _run((.5, .5, .6, .6), (.80, .90, .829, .90))}
    assert {c['name']: c['holds'] for c in bench.done_criteria(runs)}['near_own_best']
    runs = {0: _run((.5, .5, .6, .6), (.80, .90, .831, .90))}
    assert not {c['name']: c['holds'] for c in bench.done_criteria(runs)}['near_own_best']


def test_a_preset_file_of_your_own_is_a_member(bench, tmp_path, monkeypatch):
    """``--members PATH.json``: a data set that is not in the repository, generated from
    its preset file and named after it; its options are part of the run's record."""
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        if cmd[1] == 'tools/gen_demo_data.py':  # the generator writes the member's meta
            os.makedirs(cmd[2])
            with open(osp.join(cmd[2], 'meta.json'), 'w') as f:
                json.dump(dict(classes=['background', 'x', 'y', 'z']), f)

    monkeypatch.setattr(bench.subprocess, 'run', fake_run)
    preset = tmp_path / 'presets' / 'my_set.json'
    preset.parent.mkdir()
    preset.write_text(json.dumps(dict(description='mine', options=dict(num_classes=3))))
    args = _args(bench, tmp_path, '--members', str(preset), 'demo', '--skip-deeplab')
    assert args.members == ['my_set', 'demo']
    bench.run_member('my_set', 1, args)
    gen, pipeline = calls
    assert gen[2:] == [str(tmp_path / 'data' / 'my_set'), '--no-progress', '--preset',
                       str(preset)]
    assert 'class_names=[x,y,z]' in pipeline
    record = json.loads((tmp_path / 'work' / 'my_set' / 'seed1' / 'family_run.json')
                        .read_text())
    assert record['preset'] == dict(description='mine', options=dict(num_classes=3))
    # The same name from an edited preset is another data set: refused, not mixed.
    preset.write_text(json.dumps(dict(description='mine', options=dict(num_classes=4))))
    with pytest.raises(SystemExit, match='give this run its own --work-dir'):
        bench.run_member('my_set', 1, _args(bench, tmp_path, '--members', str(preset)))


def test_a_preset_file_is_checked(bench, tmp_path, capsys):
    with pytest.raises(SystemExit):
        _args(bench, tmp_path, '--members', str(tmp_path / 'missing.json'))
    assert f'preset file {tmp_path / "missing.json"} does not exist' in \
        capsys.readouterr().err
    clash = tmp_path / 'small_objects_256.json'
    clash.write_text('{}')
    with pytest.raises(SystemExit):
        _args(bench, tmp_path, '--members', str(clash))
    assert "a member named 'small_objects_256' is already given" in capsys.readouterr().err


def test_baseline_options_reach_the_baseline_only(bench, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(bench.subprocess, 'run', lambda cmd, **kw: calls.append(cmd))
    _fake_data(tmp_path, 'demo')
    args = _args(bench, tmp_path, '--members', 'demo', '--baseline-options',
                 'train_cfg.max_iters=800')
    bench.run_member('demo', 0, args)
    groups = _option_groups(calls[-1])
    common = ['class_names=[a,b]', 'randomness.seed=0']
    assert groups['--baseline-options'] == common + ['train_cfg.max_iters=800']
    assert groups['--sbce-options'] == common == groups['--deeplab-options']
    record = json.loads((tmp_path / 'work' / 'demo' / 'seed0' / 'family_run.json')
                        .read_text())
    assert record['baseline_options'] == ['train_cfg.max_iters=800']
    # Without them the record has no such key: work dirs of older runs stay valid.
    bench.run_member('demo', 0, _args(bench, tmp_path, '--members', 'demo', '--work-dir',
                                      str(tmp_path / 'plain')))
    assert 'baseline_options' not in json.loads(
        (tmp_path / 'plain' / 'demo' / 'seed0' / 'family_run.json').read_text())
    # A baseline trained with other options is not copied into a run without them.
    (tmp_path / 'work' / 'demo' / 'seed0' / 'stages').mkdir()
    for stage in bench.BASELINE_STAGES:
        (tmp_path / 'work' / 'demo' / 'seed0' / 'stages' / f'{stage}.json').write_text('{}')
    with pytest.raises(SystemExit, match='baseline_options'):
        bench.run_member('demo', 0, _args(bench, tmp_path, '--members', 'demo',
                                          '--work-dir', str(tmp_path / 'other'),
                                          '--baselines-from', str(tmp_path / 'work')))


def test_equal_budget_baseline_trains_as_long_as_the_whole_recipe(bench, tmp_path,
                                                                  monkeypatch):
    """--equal-budget-baseline: the baseline alone, for the baseline's iterations plus every
    SBCE phase's (read from the configs), its scheduler ending there too."""
    from mmengine.config import Config
    base = Config.fromfile(osp.join(bench.REPO, bench.CONFIGS['baseline']))
    sbce = Config.fromfile(osp.join(bench.REPO, bench.CONFIGS['sbce']))
    layout = sbce.phase_schedule
    total = base.train_cfg.max_iters + layout.bce_iters + \
        layout.num_phases * layout.phase_iters
    assert total > base.train_cfg.max_iters
    calls = []
    monkeypatch.setattr(bench.subprocess, 'run', lambda cmd, **kw: calls.append(cmd))
    _fake_data(tmp_path, 'demo')
    args = _args(bench, tmp_path, '--members', 'demo', '--equal-budget-baseline')
    assert args.baseline_only
    bench.run_member('demo', 1, args)
    cmd = calls[-1]
    assert cmd[-1] == '--baseline-only'
    groups = _option_groups(cmd)
    common = ['class_names=[a,b]', 'randomness.seed=1']
    assert groups['--baseline-options'] == common + [
        f'train_cfg.max_iters={total}', f'train_cfg.val_interval={total}',
        f'default_hooks.checkpoint.interval={total}', f'param_scheduler.0.end={total}']
    assert groups['--sbce-options'] == common
    record = json.loads((tmp_path / 'work' / 'demo' / 'seed1' / 'family_run.json')
                        .read_text())
    assert record['baseline_only'] is True
    assert record['baseline_options'][0] == f'train_cfg.max_iters={total}'


@pytest.mark.parametrize('extra, message', [
    (['--equal-budget-baseline', '--baseline-options', 'a=1'], 'not with --baseline-options'),
    (['--baseline-only', '--sbce-options', 'a=1'], 'runs no SBCE stage'),
    (['--baseline-only', '--baselines-from', 'elsewhere'], 'runs no SBCE stage'),
    (['--compare-baselines', 'no/such/dir'], '--compare-baselines: no such folder'),
])
def test_baseline_only_options_are_checked(bench, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit):
        _args(bench, tmp_path, '--members', 'demo', *extra)
    assert message in capsys.readouterr().err


def test_compare_baselines_checks_criterion_1_against_another_baseline(bench, tmp_path):
    """The SBCE rows of one work dir against the baseline rows of another (a baseline-only
    run): the table shows the other baseline and criterion 1 uses its numbers; a seed whose
    other baseline is not finished is pending; a baseline-only table has no criteria."""
    fg = dict(eval_baseline=(20, 10), eval_baseline_crf=(20, 12), eval_sbce_p1=(20, 30),
              eval_sbce_p1_crf=(20, 25), eval_sbce_p2=(20, 22))
    only = dict(eval_baseline=(20, 15), eval_baseline_crf=(20, 16))
    for seed in (0, 1):
        _write_run(str(tmp_path / 'work' / 'm' / f'seed{seed}'), _rows(0.01 * seed), 70.0,
                   fg)
    # the other baseline: best threshold +dCRF 0.85 (seed 0) and 0.86 (seed 1)
    base = dict(name='BCE baseline', init=0.6, crf=0.65, best=0.75, best_threshold=0.1)
    _write_run(str(tmp_path / 'budget' / 'm' / 'seed0'), [dict(base, best_crf=0.85)], None,
               only)
    _write_run(str(tmp_path / 'budget' / 'm' / 'seed1'), [dict(base, best_crf=0.86)], None,
               only)
    args = bench.parse_args(['table', '--work-dir', str(tmp_path / 'work'), '--members',
                             'demo', '--seeds', '0', '1', '2', '--compare-baselines',
                             str(tmp_path / 'budget')])
    args.members = ['m']
    text = bench.tables(args)
    assert '| BCE baseline, budget | 60.0 (0.0) | 65.0 (0.0) | 75.0 (0.0) | 85.5 (1.0) | 0.10 |' \
        ' 15.0 (0.0) | 16.0 (0.0) |' in text
    # phase 2 +dCRF 60.5 (seeds 60, 61) against the other baseline's 85.5: -25.0
    assert 'vs baseline best threshold +dCRF 85.5: -25.0, spread 1.0 (per seed -25.0, -25.0)' \
        in text
    assert '(m: seeds [2] not finished)' in text
    # seed 1's other baseline not finished: that seed is pending, not compared with its own
    os.remove(tmp_path / 'budget' / 'm' / 'seed1' / 'summary.json')
    assert '(m: seeds [1, 2] not finished)' in bench.tables(args)
    # the baseline-only work dir on its own: its table, no criteria
    args = bench.parse_args(['table', '--work-dir', str(tmp_path / 'budget'), '--members',
                             'demo', '--seeds', '0'])
    args.members = ['m']
    text = bench.tables(args)
    assert '| BCE baseline | 60.0 | 65.0 | 75.0 | 85.0 | 0.10 | 15.0 | 16.0 |' in text
    assert "Issue 16's criteria" not in text
