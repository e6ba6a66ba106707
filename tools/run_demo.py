# Copyright (c) mmseg-sbce contributors.
"""The whole WSSS pipeline on the generated demo data set, stage by stage, with the real tools.

    generate data -> BCE baseline -> initial Q (baseline CAMs + dCRF) -> SBCE phases
    -> tools/gen_pseudo.py (+dCRF) -> tools/eval_pseudo.py -> stock-MMSeg DeepLab -> val mIoU

Every stage is the command a user would run (printed before it runs); a finished stage leaves a
marker in WORK_DIR/stages/ and is skipped when the demo is run again. The demo ends with a
summary table (WORK_DIR/summary.md, .json) and a picture (WORK_DIR/demo.png).

    python tools/run_demo.py [--work-dir work_dirs/demo] [--data-root data/sbce_demo]
        [--sbce-config CONFIG] [--skip-deeplab] [--refine {irn,saliency} ...]
        [--irn-config CONFIG] [--irn-options K=V ...] [--saliency-dir DIR]
        [--saliency-options K=V ...]

``--sbce-config`` runs the same pipeline with a variant of ``configs/demo/sbce_demo.py``
(for ablations, e.g. ``benchmarks/ablation_q_view.py``). The stages after the data are
``tools/run_pipeline.py``'s, run with the demo configs on the generated data set.

``--refine irn saliency`` adds the IRN-refined and saliency-guided routes beside dCRF
(``tools/run_pipeline.py``): IRN with the demo's IRN config (a ResNet-18 trained from
scratch, a stand-in for IRN's frozen ImageNet ResNet-50), saliency with stand-in saliency
maps the demo generator writes (``gen_demo_data.py --saliency-stand-in``: blurred, noisy
ground-truth masks, not a detector) unless ``--saliency-dir`` is given. Without
``--refine`` every command and output is as before.
"""
import argparse
import importlib.util
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _load_pipeline():
    """tools/run_pipeline.py (tools/ is not a package: loaded by path)."""
    spec = importlib.util.spec_from_file_location(
        '_tool_run_pipeline', osp.join(REPO, 'tools', 'run_pipeline.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_pipeline = _load_pipeline()
Pipeline = _pipeline.Pipeline
BASELINE_CFG = 'configs/demo/bce_baseline_demo.py'
SBCE_CFG = 'configs/demo/sbce_demo.py'
DEEPLAB_CFG = 'configs/demo/deeplabv3plus_demo.py'
IRN_CFG = 'configs/irn/irn_r18-scratch_1xb8-300_demo-96x96.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo', help='outputs of every stage')
    parser.add_argument('--data-root', default='data/sbce_demo',
                        help='where the demo data set is generated')
    parser.add_argument('--seed', type=int, default=0, help='data set seed')
    parser.add_argument('--sbce-config', default=SBCE_CFG,
                        help='SBCE classifier config (a variant of the demo\'s, for ablations)')
    parser.add_argument('--skip-deeplab', action='store_true',
                        help='stop after evaluating the pseudo-labels')
    _pipeline.add_refine_args(parser, irn_config=IRN_CFG)
    args = parser.parse_args(argv)
    _pipeline.check_refine_args(parser, args, stand_in=True, config_dir=REPO)
    return args


class Demo(Pipeline):
    """The pipeline on the generated demo data set: the data generation is its first stage,
    every later command is the one the demo has always run."""
    set_name = 'the demo training set'
    val_name = 'demo val'
    sweep = None  # eval_pseudo's default: the whole range 0.01-0.99 in steps of 0.01

    def __init__(self, args):
        from mmseg_sbce.datasets.generated_common import SALIENCY_STAND_IN_DIR
        self.args = args
        data = args.data_root
        configs = dict(baseline=BASELINE_CFG, sbce=args.sbce_config, deeplab=DEEPLAB_CFG)
        options = {}
        if 'irn' in args.refine:
            configs['irn'], options['irn'] = args.irn_config, args.irn_options
        # Without --saliency-dir: the stand-in maps the generator writes
        # (stage 1_saliency_stand_in).
        self.stand_in = 'saliency' in args.refine and args.saliency_dir is None
        super().__init__(
            args.work_dir, data, configs, options,
            gt_dir=osp.join(data, 'SegmentationClass'),
            gt_split=osp.join(data, 'ImageSets/Segmentation/train.txt'),
            skip_deeplab=args.skip_deeplab, label='demo',
            **_pipeline.refine_kwargs(args, osp.join(data, SALIENCY_STAND_IN_DIR)))

    def data_options(self, name: str) -> list:
        """The demo configs' data roots (their ``infer_dataset`` already names the demo
        root): the three dataloaders, plus the Q hook's (SBCE training) or the export's
        (``pseudo_dataloader``) data set."""
        opts = [f'{key}.data_root={self.data}' for key in
                ('train_dataloader.dataset', 'val_dataloader.dataset',
                 'test_dataloader.dataset')]
        if name == 'sbce_train':
            opts.append(f'custom_hooks.1.dataset.data_root={self.data}')
        elif name == 'sbce':
            opts.append(f'pseudo_dataloader.dataset.data_root={self.data}')
        return opts

    def class_name_options(self) -> list:
        return []  # the report names the demo's classes from its meta.json

    def before_stages(self):
        self.stage('1_data', lambda: self.py(
            'tools/gen_demo_data.py', self.data, '--seed', self.args.seed, '--no-progress'))
        if self.stand_in:
            # The same data set again (the same bytes, as documented) plus the stand-in
            # saliency maps; a stage of its own so that a finished demo gains it on resume.
            self.stage('1_saliency_stand_in', lambda: self.py(
                'tools/gen_demo_data.py', self.data, '--seed', self.args.seed,
                '--no-progress', '--saliency-stand-in'))


def main(argv=None):
    args = parse_args(argv)
    Demo(args).run()


if __name__ == '__main__':
    main()
