# Copyright (c) mmseg-sbce contributors.
"""The whole WSSS pipeline on any data set, stage by stage, with the real tools.

    BCE baseline -> initial Q (baseline CAMs + dCRF) -> SBCE phases
    -> tools/gen_pseudo.py (+dCRF) -> tools/eval_pseudo.py (when ground truth exists)
    -> stock-MMSeg DeepLab on the pseudo-labels -> summary and picture

Every stage is the command a user would run (printed before it runs); a finished stage leaves a
marker in WORK_DIR/stages/ and is skipped when the pipeline is run again. Everything is written
under WORK_DIR: the data folder is only read. The class count comes from the SBCE config
(``model.decode_head.num_classes``, plus background).

    python tools/run_pipeline.py BASELINE_CONFIG SBCE_CONFIG DEEPLAB_CONFIG --data-root DIR
        [--work-dir work_dirs/pipeline] [--gt-dir DIR] [--gt-split FILE] [--skip-deeplab]
        [--baseline-options K=V ...] [--sbce-options K=V ...] [--deeplab-options K=V ...]

Every data set a config describes (train/val/test dataloaders, ``infer_dataset``,
``pseudo_dataloader``, the Q hook's) is pointed at ``--data-root`` on the command line. The
pseudo-labels are scored against ``--gt-dir`` (default ``DATA_ROOT/SegmentationClass``) over
``--gt-split`` (default: the split the SBCE config exports, ``infer_dataset.ann_file``);
without ground truth the evaluation and the summary table are skipped. The demo
(``tools/run_demo.py``) is this pipeline on the generated demo data set.
"""
import argparse
import json
import os
import os.path as osp
import shlex
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA_KEYS = ('train_dataloader.dataset', 'val_dataloader.dataset', 'test_dataloader.dataset')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('baseline_config', help='BCE baseline classifier config')
    parser.add_argument('sbce_config', help='SBCE classifier config')
    parser.add_argument('deeplab_config', help='segmentation config trained on the labels')
    parser.add_argument('--data-root',
                        help='the data set (read only): every config\'s data sets use it '
                        '(default: the --dataset file\'s data_root)')
    parser.add_argument('--dataset', metavar='FILE',
                        help='your data set\'s description (a copy of configs/_base_/'
                        'datasets/my_dataset.py): the three configs run on it')
    parser.add_argument('--gt-dir', help='ground-truth masks of the exported split '
                        '(default: DATA_ROOT/SegmentationClass when it exists)')
    parser.add_argument('--gt-split', help='ids to score (default: the SBCE config\'s '
                        'infer_dataset.ann_file under DATA_ROOT)')
    for name in ('baseline', 'sbce', 'deeplab'):
        parser.add_argument(f'--{name}-options', nargs='+', default=[], metavar='KEY=VALUE',
                            help=f'--cfg-options of every command run with the {name} '
                            'config (e.g. shorter schedules)')
    parser.add_argument('--work-dir', default='work_dirs/pipeline',
                        help='outputs of every stage')
    parser.add_argument('--skip-deeplab', action='store_true',
                        help='stop after evaluating the pseudo-labels')
    args = parser.parse_args(argv)
    args.description = None
    if args.dataset:
        from mmseg_sbce.utils.runner_config import load_dataset_description
        try:
            args.description = load_dataset_description(args.dataset)
        except (FileNotFoundError, ValueError) as exc:
            parser.error(f'--dataset: {exc}')
        args.data_root = args.data_root or args.description.get('data_root')
    if not args.data_root:
        parser.error('--data-root is required (or a --dataset file that sets data_root)')
    if not osp.isdir(args.data_root):
        parser.error(f'--data-root: no such folder: {args.data_root}')
    return args


def read_config(path: str, options):
    """``path`` as tools/train.py reads it with ``--cfg-options *options`` (phase layout
    options re-derive every phase boundary)."""
    from mmengine.config import DictAction
    from mmseg_sbce.utils.runner_config import load_runner_config
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parsed = parser.parse_args(['--cfg-options', *options] if options else [])
    return load_runner_config(osp.join(REPO, path), parsed.cfg_options)


def dataset_keys(cfg) -> list:
    """Where ``cfg`` describes a data set, as ``--cfg-options`` key paths (for a config
    without a top-level ``data_root``)."""
    keys = [k for k in DATA_KEYS if cfg.get(k.split('.')[0])]
    if cfg.get('pseudo_dataloader'):
        keys.append('pseudo_dataloader.dataset')
    if cfg.get('infer_dataset'):
        keys.append('infer_dataset')
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        if 'dataset' in hook:
            keys.append(f'custom_hooks.{i}.dataset')
    return keys


class Pipeline:
    """Runs the stages, times them and collects their numbers.

    Args:
        work_dir (str): Outputs of every stage.
        data_root (str): The data set, only read.
        configs (dict): ``baseline``, ``sbce`` and ``deeplab`` config paths (relative to the
            repository or absolute).
        options (dict, optional): ``--cfg-options`` of each config's commands, by the same
            names.
        gt_dir (str, optional): Ground truth of the exported split; None: no evaluation.
        gt_split (str, optional): The ids to score (default: the SBCE config's
            ``infer_dataset.ann_file`` under ``data_root``).
        skip_deeplab (bool): Stop after the pseudo-labels.
        label (str): Name in the stage messages and of the picture.
    """
    set_name = 'the training set'  # where the pseudo-labels are scored
    val_name = 'val'  # what DeepLab validates on
    sweep = None  # eval_pseudo's --sweep (None: its default, the whole range)

    def __init__(self, work_dir: str, data_root: str, configs: dict, options: dict = None,
                 gt_dir: str = None, gt_split: str = None, skip_deeplab: bool = False,
                 label: str = 'pipeline'):
        self.work = osp.abspath(work_dir)
        self.data = data_root
        self.configs = configs
        self.options = {name: list((options or {}).get(name, ())) for name in configs}
        self.skip_deeplab = skip_deeplab
        self.label = label
        self.cfgs = {name: read_config(path, self.options[name])
                     for name, path in configs.items()}
        self.gt_dir = gt_dir
        infer = self.cfgs['sbce'].get('infer_dataset') or \
            self.cfgs['sbce'].pseudo_dataloader.dataset
        self.gt_split = gt_split or osp.join(self.data, infer.ann_file)
        os.makedirs(osp.join(self.work, 'stages'), exist_ok=True)
        self.times = {}
        self.results = {}

    @classmethod
    def from_args(cls, args) -> 'Pipeline':
        data = osp.abspath(args.data_root)  # the tools run in the repository root
        gt_dir = args.gt_dir or osp.join(data, 'SegmentationClass')
        if not osp.isdir(gt_dir):
            if args.gt_dir:
                raise SystemExit(f'--gt-dir: no such folder: {args.gt_dir}')
            print(f'[pipeline] no ground truth at {gt_dir}: the pseudo-labels are not scored')
            gt_dir = None
        configs = dict(baseline=osp.abspath(args.baseline_config),
                       sbce=osp.abspath(args.sbce_config),
                       deeplab=osp.abspath(args.deeplab_config))
        options = dict(baseline=args.baseline_options, sbce=args.sbce_options,
                       deeplab=args.deeplab_options)
        if args.description is not None:  # each config on the data set: a child config
            from mmseg_sbce.utils.runner_config import write_dataset_config
            description = dict(args.description, data_root=data)
            for name in ('baseline', 'sbce', 'deeplab'):
                configs[name] = write_dataset_config(
                    configs[name], description,
                    osp.join(osp.abspath(args.work_dir), 'configs', f'{name}.py'),
                    source=args.dataset)
        return cls(args.work_dir, data, configs, options, gt_dir=gt_dir,
                   gt_split=args.gt_split and osp.abspath(args.gt_split),
                   skip_deeplab=args.skip_deeplab)

    def data_options(self, name: str) -> list:
        """``--cfg-options`` pointing every data set of config ``name`` at the data root
        (``sbce_train``: the SBCE training run's)."""
        cfg = self.cfgs['sbce' if name == 'sbce_train' else name]
        if 'data_root' in cfg:  # the data set description: one option reaches every data set
            return [f'data_root={self.data}']
        return [f'{key}.data_root={self.data}' for key in dataset_keys(cfg)]

    # ------------------------------------------------------------------ helpers
    def sh(self, *cmd, log=None):
        cmd = [str(c) for c in cmd]
        print('\n$ ' + ' '.join(shlex.quote(c) for c in cmd), flush=True)
        out = open(log, 'w') if log else None
        try:
            subprocess.run(cmd, cwd=REPO, check=True, stdout=out, stderr=subprocess.STDOUT
                           if out else None)
        except subprocess.CalledProcessError:
            if log:
                with open(log) as f:
                    sys.stdout.write(f.read()[-4000:])
            raise
        finally:
            if out:
                out.close()

    def stage(self, name, func):
        marker = osp.join(self.work, 'stages', name + '.json')
        if osp.isfile(marker):
            with open(marker) as f:
                done = json.load(f)
            print(f'[{self.label}] {name}: done before ({done["seconds"]:.0f} s), skipped')
            self.times[name] = done['seconds']
            return
        print(f'\n[{self.label}] ===== {name} =====', flush=True)
        start = time.time()
        func()
        self.times[name] = time.time() - start
        with open(marker, 'w') as f:
            json.dump(dict(seconds=self.times[name]), f)

    def py(self, script, *args, log=None):
        self.sh(sys.executable, script, *args, log=log)

    def eval_dir(self, pred, report, probs=None):
        """Evaluate a label folder; with ``probs`` also sweep a CAM-style background
        threshold over the saved maps (and, for SBCE maps, score eq. 9 on them without
        dCRF)."""
        args = [pred, '--gt', self.gt_dir, '--split', self.gt_split, '--num-classes',
                self.num_classes + 1, '--out', report]
        if probs:
            args += ['--probs-dir', probs]
            if self.sweep:
                args += ['--sweep', *self.sweep]
        self.py('tools/eval_pseudo.py', *args, *self.class_name_options())

    def class_name_options(self) -> list:
        """eval_pseudo's options naming the classes in its report: the SBCE config's."""
        names = self.cfgs['sbce'].get('class_names', None)
        if names is not None:
            return ['--class-names', *names]
        # names that come with the data (a generated set's meta.json): eval_pseudo reads them
        return ['--config', self.configs['sbce'], '--cfg-options', *self.data_options('sbce'),
                *self.options['sbce']]

    def best_threshold_crf(self, name, ckpt, report, maps, out, report_out):
        """Labels of the saved ``maps`` at the best constant threshold of ``report``'s sweep
        over them, with dCRF, and their evaluation (ground truth picks the threshold:
        evaluation only, as the paper's non-starred rows; nothing here flows into
        training)."""
        best = self.load_report(report)['sweep']['best_threshold']
        self.py('tools/gen_pseudo.py', self.configs[name], ckpt, '--out', out, '--from-maps',
                maps, '--threshold', f'{best:.4f}', '--no-progress', '--overwrite',
                '--cfg-options', *self.data_options(name), *self.options[name])
        self.eval_dir(out, report_out)

    def load_report(self, report):
        with open(report + '.json') as f:
            return json.load(f)

    @property
    def num_classes(self):
        """Foreground classes, as the SBCE classifier predicts them."""
        return self.cfgs['sbce'].model.decode_head.num_classes

    def ckpt(self, run, it):
        return osp.join(self.work, run, f'iter_{it}.pth')

    # ------------------------------------------------------------------ stages
    def run(self):
        base_cfg, sbce_cfg = self.cfgs['baseline'], self.cfgs['sbce']
        base_path, sbce_path = self.configs['baseline'], self.configs['sbce']
        base_opt, sbce_opt = self.options['baseline'], self.options['sbce']
        w = self.work
        self.before_stages()

        # 2. the GAP-BCE baseline
        base_iters = base_cfg.train_cfg.max_iters
        self.stage('2_baseline', lambda: self.py(
            'tools/train.py', base_path, '--work-dir', osp.join(w, 'baseline'),
            '--cfg-options', *self.data_options('baseline'), *base_opt,
            log=osp.join(w, 'baseline.log')))
        base_ckpt = self.ckpt('baseline', base_iters)

        # 3. initial Q: baseline CAMs at its background threshold + dCRF, and the baseline's
        #    pseudo-label quality (no dCRF + threshold sweep, and with dCRF)
        bg = self.bg_threshold = base_cfg.bg_threshold

        def initial_q():
            self.py('tools/gen_pseudo.py', base_path, base_ckpt, '--out',
                    osp.join(w, 'q_init'), '--threshold', bg, '--no-progress',
                    '--cfg-options', *self.data_options('baseline'), *base_opt)
            self.py('tools/gen_pseudo.py', base_path, base_ckpt, '--out',
                    osp.join(w, 'pseudo_baseline_nocrf'), '--threshold', bg, '--no-crf',
                    '--save-probs', '--no-progress', '--cfg-options',
                    *self.data_options('baseline'), *base_opt)
        self.stage('3_initial_q', initial_q)

        # 4. Spatial-BCE phases, starting from the baseline and its Q
        q_dir = osp.join(w, 'sbce', 'q')
        hook = next(i for i, h in enumerate(sbce_cfg.custom_hooks) if h.type == 'QUpdateHook')
        load_q = next(i for i, t in enumerate(sbce_cfg.train_dataloader.dataset.pipeline)
                      if t.type == 'LoadQMap')
        self.stage('4_sbce', lambda: self.py(
            'tools/train.py', sbce_path, '--work-dir', osp.join(w, 'sbce'), '--cfg-options',
            *self.data_options('sbce_train'), f'load_from={base_ckpt}',
            f'custom_hooks.{hook}.init_q_dir={osp.join(w, "q_init")}',
            f'custom_hooks.{hook}.q_dir={q_dir}',
            f'train_dataloader.dataset.pipeline.{load_q}.q_dir={q_dir}', *sbce_opt,
            log=osp.join(w, 'sbce.log')))

        # 5. pseudo-labels. The Q update before phase k+1 already labelled the training set
        #    with the phase-k network (eq. 9 + dCRF), so those are the "+dCRF" rows of the
        #    earlier phases, whose maps are exported here without dCRF; the final network is
        #    exported with dCRF, its maps saved (eq. 9 without dCRF is scored on them).
        phases = sbce_cfg.phase_schedule.num_phases
        final_ckpt = self.phase_ckpt(sbce_cfg, phases)
        sbce_data = [*self.data_options('sbce'), *sbce_opt]

        def export():
            for k in range(1, phases):
                self.py('tools/gen_pseudo.py', sbce_path, self.phase_ckpt(sbce_cfg, k),
                        '--out', self.maps_dir(k, phases), '--no-crf', '--save-probs',
                        '--no-progress', '--cfg-options', *sbce_data)
            self.py('tools/gen_pseudo.py', sbce_path, final_ckpt, '--out',
                    self.maps_dir(phases, phases), '--save-probs', '--no-progress',
                    '--cfg-options', *sbce_data)
        self.stage('5_gen_pseudo', export)

        # 6. evaluate against the training ground truth (evaluation only: nothing flows back)
        def evaluate():
            self.eval_dir(osp.join(w, 'pseudo_baseline_nocrf'), osp.join(w, 'eval_baseline'),
                          probs=osp.join(w, 'pseudo_baseline_nocrf', 'probs'))
            self.eval_dir(osp.join(w, 'q_init'), osp.join(w, 'eval_baseline_crf'))
            self.best_threshold_crf('baseline', base_ckpt, osp.join(w, 'eval_baseline'),
                                    osp.join(w, 'pseudo_baseline_nocrf', 'probs'),
                                    osp.join(w, 'pseudo_baseline_best_crf'),
                                    osp.join(w, 'eval_baseline_best_crf'))
            for k in range(1, phases + 1):
                maps = self.maps_dir(k, phases)
                self.eval_dir(maps, osp.join(w, f'eval_sbce_p{k}'),
                              probs=osp.join(maps, 'probs'))
                if k < phases:  # the Q the next phase trained on
                    self.eval_dir(osp.join(q_dir, f'phase_{k + 1}'),
                                  osp.join(w, f'eval_sbce_p{k}_crf'))
                self.best_threshold_crf('sbce', self.phase_ckpt(sbce_cfg, k),
                                        osp.join(w, f'eval_sbce_p{k}'), osp.join(maps, 'probs'),
                                        osp.join(w, f'pseudo_sbce_p{k}_best_crf'),
                                        osp.join(w, f'eval_sbce_p{k}_best_crf'))
        if self.gt_dir is not None:
            self.stage('6_eval_pseudo', evaluate)

        # 7. stock MMSeg DeepLab on the final SBCE pseudo-labels, scored on val ground truth
        if not self.skip_deeplab:
            pseudo = osp.join(w, 'pseudo_sbce')
            self.stage('7_deeplab', lambda: self.py(
                'tools/train.py', self.configs['deeplab'], '--work-dir',
                osp.join(w, 'deeplab'), '--cfg-options', *self.data_options('deeplab'),
                f'train_dataloader.dataset.data_prefix.seg_map_path={pseudo}',
                *self.options['deeplab'], log=osp.join(w, 'deeplab.log')))
        self.summarise(phases)

    def before_stages(self):
        """Stages that come before the baseline (none: the data set exists)."""

    def phase_ckpt(self, sbce_cfg, k):
        """Checkpoint at the end of SBCE phase ``k`` (1-based)."""
        layout = sbce_cfg.phase_schedule
        return self.ckpt('sbce', layout.bce_iters + k * layout.phase_iters)

    def maps_dir(self, k, phases):
        """Phase ``k``'s export with its maps: without dCRF for the earlier phases, the
        final pseudo-labels (with dCRF; DeepLab trains on them) for the last."""
        name = 'pseudo_sbce' if k == phases else f'pseudo_sbce_p{k}_nocrf'
        return osp.join(self.work, name)

    # ------------------------------------------------------------------ summary
    def summarise(self, phases):
        w = self.work
        rows = []

        def row(name, report_crf, report_maps, report_best_crf, adaptive=True):
            c = self.load_report(report_crf)
            a = self.load_report(report_maps)
            sweep = a['sweep']
            # SBCE: eq. 9 on the saved maps, without dCRF; the baseline: its CAM labels at
            # the configured threshold (the label folder; the untrained threshold branch the
            # baseline's maps also hold means nothing).
            init = (sweep['adaptive'] if adaptive else a['prediction'])['miou']
            rows.append(dict(
                name=name, crf=c['prediction']['miou'], init=init, best=sweep['best_miou'],
                best_threshold=sweep['best_threshold'],
                best_crf=self.load_report(report_best_crf)['prediction']['miou']))

        if self.gt_dir is not None:
            row(f'BCE baseline (CAM, config threshold {self.bg_threshold})',
                osp.join(w, 'eval_baseline_crf'), osp.join(w, 'eval_baseline'),
                osp.join(w, 'eval_baseline_best_crf'), adaptive=False)
            for k in range(1, phases + 1):
                row(f'SBCE after phase {k} (adaptive t)',
                    osp.join(w, f'eval_sbce_p{k}' if k == phases else f'eval_sbce_p{k}_crf'),
                    osp.join(w, f'eval_sbce_p{k}'), osp.join(w, f'eval_sbce_p{k}_best_crf'))
        deeplab = self._deeplab_miou()

        def pct(x):
            return '-' if x is None else f'{100 * x:.1f}'

        lines = []
        if rows:
            lines += [f'Pseudo-label mIoU (%) on {self.set_name} (ground truth used only to '
                      'evaluate; "best threshold" is one constant CAM threshold chosen with it, '
                      'as the paper\'s non-starred rows; "init" is without dCRF).',
                      '', '| pseudo-labels | init | +dCRF | best threshold | '
                      'best threshold +dCRF |', '| --- | --- | --- | --- | --- |']
        for r in rows:
            best = '-' if r['best'] is None else \
                f"{pct(r['best'])} (t={r['best_threshold']:.2f})"
            lines.append(f"| {r['name']} | {pct(r['init'])} | {pct(r['crf'])} | {best} | "
                         f"{pct(r['best_crf'])} |")
        if deeplab is not None:
            lines += ['', f'DeepLab (stock MMSeg) trained on the final SBCE pseudo-labels: '
                      f'**{deeplab:.1f} mIoU** on {self.val_name} ground truth.']
        lines += ['', '| stage | seconds |', '| --- | --- |']
        lines += [f'| {k} | {v:.0f} |' for k, v in self.times.items()]
        lines.append(f'| total | {sum(self.times.values()):.0f} |')
        text = '\n'.join(lines)
        with open(osp.join(w, 'summary.md'), 'w') as f:
            f.write(text + '\n')
        with open(osp.join(w, 'summary.json'), 'w') as f:
            json.dump(dict(rows=rows, deeplab_miou=deeplab, seconds=self.times), f, indent=2)
        self.figure(phases)
        print('\n' + text)
        print(f'\n[{self.label}] summary: {osp.join(w, "summary.md")}'
              + (f', picture: {self.picture}' if osp.isfile(self.picture) else ''))

    def _deeplab_miou(self):
        log = osp.join(self.work, 'deeplab.log')
        if not osp.isfile(log):
            return None
        value = None
        with open(log) as f:
            for line in f:
                if 'mIoU:' in line and 'Iter(val)' in line:
                    value = float(line.split('mIoU:')[1].split()[0])
        return value

    @property
    def picture(self) -> str:
        return osp.join(self.work, f'{self.label}.png')

    def figure(self, phases):
        """Image | ground truth | CAMs | pseudo-label grid, for a VOC-style layout with
        ground truth (``JPEGImages`` + the ground-truth folder)."""
        from mmseg_sbce.evaluation.visualize import comparison_figure
        w = self.work
        if self.gt_dir is None or osp.realpath(self.gt_dir) != osp.realpath(
                osp.join(self.data, 'SegmentationClass')) or not osp.isdir(
                    osp.join(self.data, 'JPEGImages')):
            return
        comparison_figure(
            data_root=self.data,
            columns=[('baseline CAM', osp.join(w, 'pseudo_baseline_nocrf', 'probs'), 'cam'),
                     (f'SBCE p (phase {phases})', osp.join(w, 'pseudo_sbce', 'probs'), 'prob')],
            pseudo_dir=osp.join(w, 'pseudo_sbce'),
            split=osp.relpath(self.gt_split, self.data),
            out_file=self.picture)



def main(argv=None):
    Pipeline.from_args(parse_args(argv)).run()


if __name__ == '__main__':
    main()
