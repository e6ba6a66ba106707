# Copyright (c) mmseg-sbce contributors.
"""The whole WSSS pipeline on any data set, stage by stage, with the real tools.

    BCE baseline -> initial Q (baseline CAMs + dCRF) -> SBCE phases
    -> tools/gen_pseudo.py (+dCRF) -> tools/eval_pseudo.py (when ground truth exists)
    -> stock-MMSeg DeepLab on the pseudo-labels -> summary and picture
    [--refine irn: IRN boundary network trained on seeds from the final maps -> random walk
     (tools/refine_irn.py) -> evaluation -> DeepLab on those labels]
    [--refine saliency: the final maps relabelled with saliency maps (gen_pseudo
     --from-maps, pseudo_cfg.saliency) -> evaluation -> DeepLab on those labels]

Every stage is the command a user would run (printed before it runs); a finished stage leaves a
marker in WORK_DIR/stages/ and is skipped when the pipeline is run again. Everything is written
under WORK_DIR: the data folder is only read. The class count comes from the SBCE config
(``model.decode_head.num_classes``, plus background).

    python tools/run_pipeline.py BASELINE_CONFIG SBCE_CONFIG DEEPLAB_CONFIG
        {--data-root DIR | --dataset FILE [--data-root DIR]}
        [--work-dir work_dirs/pipeline] [--gt-dir DIR] [--gt-split FILE] [--skip-deeplab]
        [--baseline-options K=V ...] [--sbce-options K=V ...] [--deeplab-options K=V ...]
        [--refine {irn,saliency} ...] [--irn-config CONFIG] [--irn-options K=V ...]
        [--saliency-dir DIR] [--saliency-options K=V ...]

Every data set a config describes (train/val/test dataloaders, ``infer_dataset``,
``pseudo_dataloader``, the Q hook's) is pointed at ``--data-root`` on the command line: one
``data_root=DIR`` option for a config with a top-level data set description, else data set
by data set. The pseudo-labels are scored against ``--gt-dir`` (default
``DATA_ROOT/SegmentationClass``) over ``--gt-split`` (default: the split the SBCE config
exports, ``infer_dataset.ann_file``); without ground truth the evaluation and the summary
table are skipped. The demo (``tools/run_demo.py``) is this pipeline on the generated demo
data set.

``--dataset FILE`` runs the configs on a data set of your own: ``FILE`` is a filled-in copy
of ``configs/_base_/datasets/my_dataset.py`` (docs/data.md, "Your own data set"), of which
only ``data_root``, ``class_names``, ``num_classes``, ``train_split``, ``label_file`` and
``train_mask_dir`` are read; a file without ``class_names``, ``train_split`` or
``label_file`` is refused before any stage. Each config (the ``--irn-config`` too, with
``--refine irn``) runs as a child config ``WORK_DIR/configs/{baseline,sbce,deeplab,irn}.py``
that inherits it and sets the description at the top level, so every data set and head
follows (``mmseg_sbce.utils.runner_config.apply_dataset``). The classifiers and the IRN
config, which train on image-level labels, take the whole description; the DeepLab config
takes ``data_root``, ``class_names``, ``num_classes`` and ``train_split`` only (it trains on
the pseudo-labels, never on the masks or label file). ``--data-root`` overrides the file's
``data_root``; the evaluation reports name the classes by ``class_names``.

``--refine`` adds the paper's other second-stage routes beside dCRF, each from the final
SBCE network's saved maps (``WORK_DIR/pseudo_sbce/probs``): ``irn`` trains the boundary
network of ``--irn-config`` (required; seeds computed from those maps by its
``LoadIRNSeeds``, docs/irn.md) with ``tools/train.py`` in ``WORK_DIR/irn`` and refines the
maps with ``tools/refine_irn.py`` into ``WORK_DIR/pseudo_sbce_irn`` (``--irn-options``: the
``--cfg-options`` of both commands); ``saliency`` relabels the maps with the user's saliency
maps ``--saliency-dir`` (required; one grey ``{img_id}.png`` per image) by ``gen_pseudo
--from-maps`` with ``pseudo_cfg.saliency.dir`` into ``WORK_DIR/pseudo_sbce_saliency``
(``--saliency-options``: further ``--cfg-options`` of that command only, e.g.
``pseudo_cfg.saliency.correct_with_probs=True``; docs/pseudo_labels.md). A missing
``--irn-config`` or ``--saliency-dir``, or an IRN config without ``LoadIRNSeeds``, is refused
before any stage. Each route's labels are evaluated like the dCRF ones and train their own
DeepLab (``WORK_DIR/deeplab_irn``, ``WORK_DIR/deeplab_saliency``); the summary gets one row
per route (``summary.json`` key ``routes``).
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
ROUTES = ('irn', 'saliency')  # the second-stage routes --refine adds beside dCRF


def add_refine_args(parser: argparse.ArgumentParser, irn_config: str = None) -> None:
    """The options of the ``--refine`` routes (shared with tools/run_demo.py)."""
    group = parser.add_argument_group('second-stage routes beside dCRF (--refine)')
    group.add_argument('--refine', nargs='+', choices=ROUTES, default=[],
                       help='also produce IRN-refined and/or saliency-guided pseudo-labels '
                       'from the final SBCE maps, each evaluated and with its own DeepLab')
    group.add_argument('--irn-config', default=irn_config,
                       help='IRN boundary-network config (configs/irn/); required for '
                       '--refine irn' + (f' (default: {irn_config})' if irn_config else ''))
    group.add_argument('--irn-options', nargs='+', default=[], metavar='KEY=VALUE',
                       help='--cfg-options of the IRN training and refinement commands')
    group.add_argument('--saliency-dir',
                       help='saliency maps, one grey {img_id}.png per image; required for '
                       '--refine saliency')
    group.add_argument('--saliency-options', nargs='+', default=[], metavar='KEY=VALUE',
                       help='--cfg-options of the saliency labelling only (e.g. '
                       'pseudo_cfg.saliency.correct_with_probs=True)')


def check_refine_args(parser: argparse.ArgumentParser, args, stand_in: bool = False,
                      config_dir: str = None) -> None:
    """Refuse ``--refine`` without its inputs, before any stage runs.

    Args:
        stand_in (bool): ``--refine saliency`` without ``--saliency-dir`` is allowed (the
            demo generates stand-in saliency maps).
        config_dir (str, optional): The folder a relative ``--irn-config`` is read from, as
            the tool reads it. None: the current directory, like the other config arguments
            of this tool (:meth:`Pipeline.from_args`); tools/run_demo.py reads its configs
            from the repository.
    """
    if 'irn' in args.refine:
        if not args.irn_config:
            parser.error('--refine irn needs --irn-config (an IRN boundary-network config, '
                         'e.g. configs/irn/irn_r50_1xb32-3e_voc12aug-512x512.py)')
        if not osp.isfile(osp.join(config_dir or os.getcwd(), args.irn_config)):
            where = '' if osp.isabs(args.irn_config) else \
                f' (relative paths are read from {config_dir or "the current directory"})'
            parser.error(f'--irn-config: no such file: {args.irn_config}{where}')
    if 'saliency' in args.refine:
        if args.saliency_dir is None and not stand_in:
            parser.error('--refine saliency needs --saliency-dir (a folder of grey saliency '
                         'maps {img_id}.png, one per image)')
        if args.saliency_dir is not None and not osp.isdir(args.saliency_dir):
            parser.error(f'--saliency-dir: no such folder: {args.saliency_dir}')


def refine_kwargs(args, saliency_dir: str = None) -> dict:
    """:class:`Pipeline`'s route arguments from the command line (``saliency_dir``: the
    default when ``--saliency-dir`` is not given)."""
    given = args.saliency_dir and osp.abspath(args.saliency_dir)  # the tools run in REPO
    return dict(refine=args.refine, saliency_dir=given or saliency_dir,
                saliency_options=args.saliency_options)


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
                        'datasets/my_dataset.py): the configs (and --irn-config) run on it')
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
    parser.add_argument('--baseline-only', action='store_true',
                        help='train and score the BCE baseline only (no SBCE, no DeepLab): '
                        'a baseline schedule compared on its own')
    add_refine_args(parser)
    args = parser.parse_args(argv)
    if args.baseline_only and args.refine:
        parser.error('--refine starts from the SBCE maps: not with --baseline-only')
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
    check_refine_args(parser, args)
    return args


def read_config(path: str, options):
    """``path`` as tools/train.py reads it with ``--cfg-options *options`` (phase layout
    options re-derive every phase boundary)."""
    from mmengine.config import DictAction
    from mmseg_sbce.utils.errors import USER_ERRORS
    from mmseg_sbce.utils.runner_config import load_runner_config
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parsed = parser.parse_args(['--cfg-options', *options] if options else [])
    try:
        return load_runner_config(osp.join(REPO, path), parsed.cfg_options)
    except USER_ERRORS as exc:  # e.g. bad class_names: one line, before any stage
        raise SystemExit(f'run_pipeline: error: {exc}') from None


def data_root_options(cfg, data_root: str) -> list:
    """``--cfg-options`` pointing every data set of ``cfg`` at ``data_root``: one
    ``data_root=`` option when the config describes its data set at the top level (the tools
    copy it into every data set), else one option per data set."""
    if 'data_root' in cfg:
        return [f'data_root={data_root}']
    return [f'{key}.data_root={data_root}' for key in dataset_keys(cfg)]


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


def seed_maps_key(cfg, path: str) -> str:
    """The ``--cfg-options`` key of the saved-maps folder the IRN config's ``LoadIRNSeeds``
    reads (its training seeds), e.g. ``train_dataloader.dataset.pipeline.1.maps_dir``."""
    key, dataset = 'train_dataloader.dataset', (cfg.get('train_dataloader') or {}).get(
        'dataset') or {}
    while 'pipeline' not in dataset and isinstance(dataset.get('dataset'), dict):
        key, dataset = key + '.dataset', dataset['dataset']  # RepeatDataset & co.
    for i, transform in enumerate(dataset.get('pipeline') or []):
        if transform.get('type') == 'LoadIRNSeeds':
            return f'{key}.pipeline.{i}.maps_dir'
    raise SystemExit(f'--irn-config {path}: its training pipeline has no LoadIRNSeeds '
                     'transform, so the seeds cannot come from the SBCE maps (docs/irn.md)')


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
        baseline_only (bool): Stop after the BCE baseline and its evaluation.
        label (str): Name in the stage messages and of the picture.
        refine (Sequence[str]): Second-stage routes beside dCRF (:data:`ROUTES`): ``irn``
            needs ``configs['irn']`` (its ``--cfg-options`` in ``options['irn']``),
            ``saliency`` needs ``saliency_dir``.
        saliency_dir (str, optional): The saliency maps of ``--refine saliency``.
        saliency_options (list): ``--cfg-options`` of the saliency labelling only.
    """
    set_name = 'the training set'  # where the pseudo-labels are scored
    val_name = 'val'  # what DeepLab validates on
    sweep = None  # eval_pseudo's --sweep (None: its default, the whole range)

    def __init__(self, work_dir: str, data_root: str, configs: dict, options: dict = None,
                 gt_dir: str = None, gt_split: str = None, skip_deeplab: bool = False,
                 label: str = 'pipeline', refine=(), saliency_dir: str = None,
                 saliency_options=(), baseline_only: bool = False):
        if baseline_only and refine:
            raise ValueError('refine routes start from the SBCE maps: not with baseline_only')
        self.baseline_only = baseline_only
        self.refine = [r for r in ROUTES if r in refine]  # fixed order: irn, then saliency
        if 'irn' in self.refine and not configs.get('irn'):
            raise ValueError('refine "irn" needs configs["irn"], an IRN config')
        if 'saliency' in self.refine and not saliency_dir:
            raise ValueError('refine "saliency" needs saliency_dir')
        if 'irn' not in self.refine:
            configs = {k: v for k, v in configs.items() if k != 'irn'}
        self.saliency_dir = saliency_dir
        self.saliency_options = list(saliency_options)
        self.work = osp.abspath(work_dir)
        self.data = data_root
        self.configs = configs
        self.options = {name: list((options or {}).get(name, ())) for name in configs}
        self.skip_deeplab = skip_deeplab
        self.label = label
        self.cfgs = {name: read_config(path, self.options[name])
                     for name, path in configs.items()}
        # the initial Q with dCRF (paper sec. 3.3) or without it (a departure, run())
        self.init_q_crf = self.cfgs['baseline'].get('init_q_crf', True)
        if not isinstance(self.init_q_crf, bool):
            raise SystemExit(f'{configs["baseline"]}: init_q_crf must be True or False, got '
                             f'{self.init_q_crf!r}')
        self.gt_dir = gt_dir
        infer = self.cfgs['sbce'].get('infer_dataset') or \
            self.cfgs['sbce'].pseudo_dataloader.dataset
        self.gt_split = gt_split or osp.join(self.data, infer.ann_file)
        # The split the SBCE export labels (its maps are what the routes start from).
        self.export_split = infer.ann_file
        if 'irn' in self.refine:
            self.irn_maps_key = seed_maps_key(self.cfgs['irn'], configs['irn'])
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
        if 'irn' in args.refine:
            configs['irn'], options['irn'] = osp.abspath(args.irn_config), args.irn_options
        if args.description is not None:  # each config on the data set: a child config
            from mmseg_sbce.utils.runner_config import write_dataset_config
            description = dict(args.description, data_root=data)
            for name in configs:  # the IRN config too (--refine irn)
                configs[name] = write_dataset_config(
                    configs[name], description,
                    osp.join(osp.abspath(args.work_dir), 'configs', f'{name}.py'),
                    source=args.dataset)
        return cls(args.work_dir, data, configs, options, gt_dir=gt_dir,
                   gt_split=args.gt_split and osp.abspath(args.gt_split),
                   skip_deeplab=args.skip_deeplab, baseline_only=args.baseline_only,
                   **refine_kwargs(args))

    def data_options(self, name: str) -> list:
        """``--cfg-options`` pointing every data set of config ``name`` at the data root
        (``sbce_train``: the SBCE training run's)."""
        return data_root_options(self.cfgs['sbce' if name == 'sbce_train' else name],
                                 self.data)

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

        # 3. initial Q: baseline CAMs at its background threshold + dCRF (paper sec. 3.3;
        #    the baseline config's ``init_q_crf = False``: without dCRF), and the baseline's
        #    pseudo-label quality (no dCRF + threshold sweep, and with dCRF)
        bg = self.bg_threshold = base_cfg.bg_threshold
        init_crf = self.init_q_crf
        # the baseline's CAM labels at its threshold with dCRF: the Q, or beside a Q without it
        crf_labels = osp.join(w, 'q_init' if init_crf else 'pseudo_baseline_crf')

        def export(out, *flags):
            self.py('tools/gen_pseudo.py', base_path, base_ckpt, '--out', osp.join(w, out),
                    '--threshold', bg, '--no-progress', *flags, '--cfg-options',
                    *self.data_options('baseline'), *base_opt)

        def initial_q():
            # --save-probs: the maps beside the Q, which SBCEHead(threshold_loss='q_count')
            # reads through LoadQMap(with_thresholds=True)
            export('q_init', '--save-probs', *(() if init_crf else ('--no-crf', )))
            export('pseudo_baseline_nocrf', '--no-crf', '--save-probs')
            if not init_crf:
                export(osp.basename(crf_labels), '--from-maps',
                       osp.join(w, 'pseudo_baseline_nocrf', 'probs'))
        self.stage('3_initial_q', initial_q)

        # the baseline's labels against the training ground truth: without dCRF with a
        # threshold sweep, with dCRF at its threshold, and the best threshold with dCRF
        def evaluate_baseline():
            self.eval_dir(osp.join(w, 'pseudo_baseline_nocrf'), osp.join(w, 'eval_baseline'),
                          probs=osp.join(w, 'pseudo_baseline_nocrf', 'probs'))
            self.eval_dir(crf_labels, osp.join(w, 'eval_baseline_crf'))
            self.best_threshold_crf('baseline', base_ckpt, osp.join(w, 'eval_baseline'),
                                    osp.join(w, 'pseudo_baseline_nocrf', 'probs'),
                                    osp.join(w, 'pseudo_baseline_best_crf'),
                                    osp.join(w, 'eval_baseline_best_crf'))
        if self.baseline_only:
            if self.gt_dir is not None:
                self.stage('6_eval_baseline', evaluate_baseline)
            self.summarise(0)
            return

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
            evaluate_baseline()
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
            self.stage('7_deeplab', lambda: self.deeplab(osp.join(w, 'pseudo_sbce'),
                                                         'deeplab'))
        # 8, 9. the other second-stage routes from the same final maps (--refine)
        if 'irn' in self.refine:
            self.irn_route()
        if 'saliency' in self.refine:
            self.saliency_route(final_ckpt, sbce_data)
        self.summarise(phases)

    def deeplab(self, pseudo, name):
        """Stock MMSeg DeepLab trained on the labels in ``pseudo``, in ``WORK/{name}``."""
        w = self.work
        self.py('tools/train.py', self.configs['deeplab'], '--work-dir', osp.join(w, name),
                '--cfg-options', *self.data_options('deeplab'),
                f'train_dataloader.dataset.data_prefix.seg_map_path={pseudo}',
                *self.options['deeplab'], log=osp.join(w, f'{name}.log'))

    @property
    def final_maps(self) -> str:
        """The final SBCE network's saved maps, where every route starts."""
        return osp.join(self.work, 'pseudo_sbce', 'probs')

    def irn_route(self):
        """IRN: the boundary network trained on seeds from the final maps (LoadIRNSeeds
        computes them from ``probs/``), then its random walk over the same maps."""
        w, irn_path = self.work, self.configs['irn']
        # The IRN config's own data set description (tools/train.py and refine_irn.py both
        # apply it); not self.data_options, which the demo narrows to its classifier configs.
        irn_data = data_root_options(self.cfgs['irn'], self.data)
        maps = [f'{self.irn_maps_key}={self.final_maps}']
        if 'maps_dir' in self.cfgs['irn']:  # the config's variable too, as the run used it
            maps.append(f'maps_dir={self.final_maps}')
        self.stage('8_irn_train', lambda: self.py(
            'tools/train.py', irn_path, '--work-dir', osp.join(w, 'irn'), '--cfg-options',
            *irn_data, *maps, *self.options['irn'], log=osp.join(w, 'irn.log')))
        labels = osp.join(w, 'pseudo_sbce_irn')
        self.stage('8_irn_refine', lambda: self.py(
            'tools/refine_irn.py', irn_path, self.irn_checkpoint(), '--maps', self.final_maps,
            '--out', labels, '--split', self.export_split, '--no-progress', '--cfg-options',
            *irn_data, *self.options['irn']))
        self.route_stages('8_irn', 'irn', labels)

    def irn_checkpoint(self) -> str:
        """The IRN training's last checkpoint (mmengine's ``last_checkpoint`` file)."""
        pointer = osp.join(self.work, 'irn', 'last_checkpoint')
        if not osp.isfile(pointer):
            raise SystemExit(f'[{self.label}] {pointer} does not exist: the IRN training '
                             'saved no checkpoint (see irn.log)')
        with open(pointer) as f:
            return f.read().strip()

    def saliency_route(self, final_ckpt, sbce_data):
        """Saliency: the final maps relabelled with the saliency maps as background cues
        (``pseudo_cfg.saliency``), without running the network again."""
        w = self.work
        labels = osp.join(w, 'pseudo_sbce_saliency')
        self.stage('9_saliency_labels', lambda: self.py(
            'tools/gen_pseudo.py', self.configs['sbce'], final_ckpt, '--out', labels,
            '--from-maps', self.final_maps, '--no-progress', '--cfg-options', *sbce_data,
            f'pseudo_cfg.saliency.dir={self.saliency_dir}', *self.saliency_options))
        self.route_stages('9_saliency', 'saliency', labels)

    def route_stages(self, prefix, route, labels):
        """A route's labels evaluated like the dCRF ones, and its own DeepLab."""
        w = self.work
        if self.gt_dir is not None:
            self.stage(f'{prefix}_eval', lambda: self.eval_dir(
                labels, osp.join(w, f'eval_{route}')))
        if not self.skip_deeplab:
            self.stage(f'{prefix}_deeplab', lambda: self.deeplab(labels, f'deeplab_{route}'))

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

        def deeplab_text(x):  # mmseg logs the mIoU in percent
            return '-' if x is None else f'{x:.1f}'

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
        routes = self.route_rows(phases) if self.refine else None
        if routes:
            lines += ['', 'Second-stage routes from the same final SBCE maps: pseudo-label '
                      f'mIoU (%) on {self.set_name} ("unsure" pixels are 255 in the labels '
                      f'and count as misses) and DeepLab mIoU (%) on {self.val_name}.', '',
                      '| route | labels | pseudo-label mIoU | unsure | DeepLab mIoU |',
                      '| --- | --- | --- | --- | --- |']
            for r in routes:
                lines.append(f"| {r['name']} | {r['labels']} | {pct(r['pseudo_miou'])} | "
                             f"{pct(r['unsure'])} | "
                             f"{deeplab_text(r['deeplab_miou'])} |")
        lines += ['', '| stage | seconds |', '| --- | --- |']
        lines += [f'| {k} | {v:.0f} |' for k, v in self.times.items()]
        lines.append(f'| total | {sum(self.times.values()):.0f} |')
        text = '\n'.join(lines)
        with open(osp.join(w, 'summary.md'), 'w') as f:
            f.write(text + '\n')
        summary = dict(rows=rows, deeplab_miou=deeplab)
        if routes is not None:  # only with --refine: the default summary stays as it was
            summary['routes'] = routes
        summary['seconds'] = self.times
        with open(osp.join(w, 'summary.json'), 'w') as f:
            json.dump(summary, f, indent=2)
        self.figure(phases)
        print('\n' + text)
        print(f'\n[{self.label}] summary: {osp.join(w, "summary.md")}'
              + (f', picture: {self.picture}' if osp.isfile(self.picture) else ''))

    def route_rows(self, phases) -> list:
        """One row per route (dCRF, then those of ``--refine``): the labels' mIoU and unsure
        fraction (None without ground truth) and DeepLab's val mIoU (None when skipped)."""
        rows = []
        for route, name, labels, report in (
                ('dcrf', 'SBCE + dCRF', 'pseudo_sbce', f'eval_sbce_p{phases}'),
                ('irn', 'SBCE + IRN random walk', 'pseudo_sbce_irn', 'eval_irn'),
                ('saliency', 'SBCE + saliency', 'pseudo_sbce_saliency', 'eval_saliency')):
            if route != 'dcrf' and route not in self.refine:
                continue
            pred = dict(miou=None, unsure_fraction=None)
            if self.gt_dir is not None:
                pred = self.load_report(osp.join(self.work, report))['prediction']
            rows.append(dict(
                route=route, name=name, labels=labels, pseudo_miou=pred['miou'],
                unsure=pred['unsure_fraction'], deeplab_miou=self._deeplab_miou(
                    'deeplab' if route == 'dcrf' else f'deeplab_{route}')))
        return rows

    def _deeplab_miou(self, name='deeplab'):
        log = osp.join(self.work, f'{name}.log')
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
        ground truth (``JPEGImages`` + the ground-truth folder). None after
        ``baseline_only`` (``phases`` 0): the picture sets the baseline beside the SBCE maps."""
        from mmseg_sbce.evaluation.visualize import comparison_figure
        w = self.work
        if not phases or self.gt_dir is None or osp.realpath(self.gt_dir) != osp.realpath(
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
