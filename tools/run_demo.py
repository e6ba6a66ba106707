# Copyright (c) mmseg-sbce contributors.
"""The whole WSSS pipeline on the generated demo data set, stage by stage, with the real tools.

    generate data -> BCE baseline -> initial Q (baseline CAMs + dCRF) -> SBCE phases
    -> tools/gen_pseudo.py (+dCRF) -> tools/eval_pseudo.py -> stock-MMSeg DeepLab -> val mIoU

Every stage is the command a user would run (printed before it runs); a finished stage leaves a
marker in WORK_DIR/stages/ and is skipped when the demo is run again. The demo ends with a
summary table (WORK_DIR/summary.md, .json) and a picture (WORK_DIR/demo.png).

    python tools/run_demo.py [--work-dir work_dirs/demo] [--data-root data/sbce_demo]
        [--sbce-config CONFIG] [--skip-deeplab]

``--sbce-config`` runs the same pipeline with a variant of ``configs/demo/sbce_demo.py``
(for ablations, e.g. ``benchmarks/ablation_q_view.py``).
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
BASELINE_CFG = 'configs/demo/bce_baseline_demo.py'
SBCE_CFG = 'configs/demo/sbce_demo.py'
DEEPLAB_CFG = 'configs/demo/deeplabv3plus_demo.py'


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
    return parser.parse_args(argv)


class Demo:
    """Runs the stages, times them and collects their numbers."""

    def __init__(self, args):
        self.args = args
        self.work = osp.abspath(args.work_dir)
        self.data = args.data_root
        os.makedirs(osp.join(self.work, 'stages'), exist_ok=True)
        self.times = {}
        self.results = {}

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
            print(f'[demo] {name}: done before ({done["seconds"]:.0f} s), skipped')
            self.times[name] = done['seconds']
            return
        print(f'\n[demo] ===== {name} =====', flush=True)
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
        args = [pred, '--gt', osp.join(self.data, 'SegmentationClass'), '--split',
                osp.join(self.data, 'ImageSets/Segmentation/train.txt'), '--num-classes',
                self.num_classes + 1, '--out', report]
        if probs:
            # eval_pseudo's default sweep: the whole range 0.01-0.99 in steps of 0.01
            args += ['--probs-dir', probs]
        self.py('tools/eval_pseudo.py', *args)

    def best_threshold_crf(self, cfg, ckpt, report, maps, out, report_out, data_opt):
        """Labels of the saved ``maps`` at the best constant threshold of ``report``'s sweep
        over them, with dCRF, and their evaluation (ground truth picks the threshold:
        evaluation only, as the paper's non-starred rows; nothing here flows into
        training)."""
        best = self.load_report(report)['sweep']['best_threshold']
        self.py('tools/gen_pseudo.py', cfg, ckpt, '--out', out, '--from-maps', maps,
                '--threshold', f'{best:.4f}', '--no-progress', '--overwrite',
                '--cfg-options', *data_opt)
        self.eval_dir(out, report_out)

    def load_report(self, report):
        with open(report + '.json') as f:
            return json.load(f)

    @property
    def num_classes(self):
        with open(osp.join(self.data, 'meta.json')) as f:
            return len(json.load(f)['classes']) - 1

    def ckpt(self, run, it):
        return osp.join(self.work, run, f'iter_{it}.pth')

    # ------------------------------------------------------------------ stages
    def run(self):
        from mmengine.config import Config
        base_cfg = Config.fromfile(osp.join(REPO, BASELINE_CFG))
        sbce_path = self.args.sbce_config
        sbce_cfg = Config.fromfile(osp.join(REPO, sbce_path))
        w = self.work
        data_opt = [f'train_dataloader.dataset.data_root={self.data}',
                    f'val_dataloader.dataset.data_root={self.data}',
                    f'test_dataloader.dataset.data_root={self.data}']

        self.stage('1_data', lambda: self.py(
            'tools/gen_demo_data.py', self.data, '--seed', self.args.seed, '--no-progress'))

        # 2. the GAP-BCE baseline
        base_iters = base_cfg.train_cfg.max_iters
        self.stage('2_baseline', lambda: self.py(
            'tools/train.py', BASELINE_CFG, '--work-dir', osp.join(w, 'baseline'),
            '--cfg-options', *data_opt, log=osp.join(w, 'baseline.log')))
        base_ckpt = self.ckpt('baseline', base_iters)

        # 3. initial Q: baseline CAMs at its background threshold + dCRF, and the baseline's
        #    pseudo-label quality (no dCRF + threshold sweep, and with dCRF)
        bg = self.bg_threshold = base_cfg.bg_threshold

        def initial_q():
            self.py('tools/gen_pseudo.py', BASELINE_CFG, base_ckpt, '--out',
                    osp.join(w, 'q_init'), '--threshold', bg, '--no-progress',
                    '--cfg-options', *data_opt)
            self.py('tools/gen_pseudo.py', BASELINE_CFG, base_ckpt, '--out',
                    osp.join(w, 'pseudo_baseline_nocrf'), '--threshold', bg, '--no-crf',
                    '--save-probs', '--no-progress', '--cfg-options', *data_opt)
        self.stage('3_initial_q', initial_q)

        # 4. Spatial-BCE phases, starting from the baseline and its Q
        q_dir = osp.join(w, 'sbce', 'q')
        self.stage('4_sbce', lambda: self.py(
            'tools/train.py', sbce_path, '--work-dir', osp.join(w, 'sbce'), '--cfg-options',
            *data_opt, f'load_from={base_ckpt}',
            f'custom_hooks.1.init_q_dir={osp.join(w, "q_init")}',
            f'custom_hooks.1.q_dir={q_dir}', f'train_dataloader.dataset.pipeline.1.q_dir={q_dir}',
            f'custom_hooks.1.dataset.data_root={self.data}',
            log=osp.join(w, 'sbce.log')))

        # 5. pseudo-labels. The Q update before phase k+1 already labelled the training set
        #    with the phase-k network (eq. 9 + dCRF), so those are the "+dCRF" rows of the
        #    earlier phases, whose maps are exported here without dCRF; the final network is
        #    exported with dCRF, its maps saved (eq. 9 without dCRF is scored on them).
        phases = sbce_cfg.phase_schedule.num_phases
        final_ckpt = self.phase_ckpt(sbce_cfg, phases)
        sbce_data = [*data_opt, f'pseudo_dataloader.dataset.data_root={self.data}']

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
            self.best_threshold_crf(BASELINE_CFG, base_ckpt, osp.join(w, 'eval_baseline'),
                                    osp.join(w, 'pseudo_baseline_nocrf', 'probs'),
                                    osp.join(w, 'pseudo_baseline_best_crf'),
                                    osp.join(w, 'eval_baseline_best_crf'), data_opt)
            for k in range(1, phases + 1):
                maps = self.maps_dir(k, phases)
                self.eval_dir(maps, osp.join(w, f'eval_sbce_p{k}'),
                              probs=osp.join(maps, 'probs'))
                if k < phases:  # the Q the next phase trained on
                    self.eval_dir(osp.join(q_dir, f'phase_{k + 1}'),
                                  osp.join(w, f'eval_sbce_p{k}_crf'))
                self.best_threshold_crf(sbce_path, self.phase_ckpt(sbce_cfg, k),
                                        osp.join(w, f'eval_sbce_p{k}'), osp.join(maps, 'probs'),
                                        osp.join(w, f'pseudo_sbce_p{k}_best_crf'),
                                        osp.join(w, f'eval_sbce_p{k}_best_crf'), sbce_data)
        self.stage('6_eval_pseudo', evaluate)

        # 7. stock MMSeg DeepLab on the final SBCE pseudo-labels, scored on val ground truth
        if not self.args.skip_deeplab:
            pseudo = osp.join(w, 'pseudo_sbce')
            self.stage('7_deeplab', lambda: self.py(
                'tools/train.py', DEEPLAB_CFG, '--work-dir', osp.join(w, 'deeplab'),
                '--cfg-options', *data_opt,
                f'train_dataloader.dataset.data_prefix.seg_map_path={pseudo}',
                log=osp.join(w, 'deeplab.log')))
        self.summarise(phases)

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

        lines = ['Pseudo-label mIoU (%) on the demo training set (ground truth used only to '
                 'evaluate; "best threshold" is one constant CAM threshold chosen with it, as '
                 'the paper\'s non-starred rows; "init" is without dCRF).',
                 '', '| pseudo-labels | init | +dCRF | best threshold | best threshold +dCRF |',
                 '| --- | --- | --- | --- | --- |']
        for r in rows:
            best = '-' if r['best'] is None else \
                f"{pct(r['best'])} (t={r['best_threshold']:.2f})"
            lines.append(f"| {r['name']} | {pct(r['init'])} | {pct(r['crf'])} | {best} | "
                         f"{pct(r['best_crf'])} |")
        if deeplab is not None:
            lines += ['', f'DeepLab (stock MMSeg) trained on the final SBCE pseudo-labels: '
                      f'**{deeplab:.1f} mIoU** on demo val ground truth.']
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
        print(f'\n[demo] summary: {osp.join(w, "summary.md")}, picture: {osp.join(w, "demo.png")}')

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

    def figure(self, phases):
        from mmseg_sbce.evaluation.visualize import comparison_figure
        w = self.work
        comparison_figure(
            data_root=self.data,
            columns=[('baseline CAM', osp.join(w, 'pseudo_baseline_nocrf', 'probs'), 'cam'),
                     (f'SBCE p (phase {phases})', osp.join(w, 'pseudo_sbce', 'probs'), 'prob')],
            pseudo_dir=osp.join(w, 'pseudo_sbce'),
            out_file=osp.join(w, 'demo.png'))


def main(argv=None):
    args = parse_args(argv)
    Demo(args).run()


if __name__ == '__main__':
    main()
