# Copyright (c) mmseg-sbce contributors.
"""dCRF kernel widths in absolute pixels or scaled with the image size, on the saved maps of
finished pipeline runs (``tools/run_pipeline.py`` / ``benchmarks/family_benchmark.py``).

The same maps are labelled again (``tools/gen_pseudo.py --from-maps``) with every dCRF
variant and scored (``tools/eval_pseudo.py``): the baseline's CAMs at its config threshold
and at the best threshold its sweep found, and SBCE's maps of every phase with the learned
threshold (eq. 9). Only the dCRF differs, so the table isolates its effect on labels; what
the Q update's dCRF does to training is not measured here (it needs whole runs).

    python benchmarks/ablation_crf_size.py WORK_DIR [WORK_DIR ...]
        [--variants absolute scaled] [--out FILE.md]

``WORK_DIR`` is one pipeline run (it holds ``summary.json``); its data root and configs are
read from the run's stage logs. Variants: ``absolute`` (``crf.size_reference=None``, the
reference code's pixels at every size) and ``scaled`` (``size_reference=(500, 375)``).
"""
import argparse
import json
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
VARIANTS = dict(absolute=['pseudo_cfg.crf.size_reference=None'],
                scaled=['pseudo_cfg.crf.size_reference=[500,375]'])


def export_command(label_dir: str):
    """Config (this repository's file of the same name), checkpoint and ``--cfg-options``
    of the export that wrote ``label_dir``, from its manifest."""
    import shlex
    with open(osp.join(label_dir, 'manifest.json')) as f:
        run = json.load(f)['run']
    words = shlex.split(run['command'])
    config = osp.join(REPO, 'configs', run['config_path'].split('/configs/', 1)[1])
    options = words[words.index('--cfg-options') + 1:] if '--cfg-options' in words else []
    return config, run['checkpoint'], options


def label_sources(work: str, phases: int):
    """(name, label folder with its saved maps, ``--threshold``) of every labelling scored:
    the baseline at its config threshold and at its best one, SBCE after every phase."""
    with open(osp.join(work, 'eval_baseline.json')) as f:
        report = json.load(f)
    best = report['sweep']['best_threshold']
    base = osp.join(work, 'pseudo_baseline_nocrf')
    with open(osp.join(base, 'manifest.json')) as f:
        config_thr = json.load(f)['identity']['pseudo_cfg']['threshold']
    out = [(f'BCE baseline, config threshold {config_thr:g}', base, f'{config_thr:.4f}'),
           (f'BCE baseline, best threshold {best:.2f}', base, f'{best:.4f}')]
    for k in range(1, phases + 1):
        name = 'pseudo_sbce' if k == phases else f'pseudo_sbce_p{k}_nocrf'
        out.append((f'SBCE phase {k}, adaptive', osp.join(work, name), 'adaptive'))
    return out


def ablate(work: str, variants, gt_split: str = None):
    """Scores (mIoU, foreground share) of every label source with every dCRF variant."""
    with open(osp.join(work, 'summary.json')) as f:
        phases = len(json.load(f)['rows']) - 1
    rows = []
    for name, label_dir, threshold in label_sources(work, phases):
        config, ckpt, options = export_command(label_dir)
        data_root = next(o.split('=', 1)[1] for o in options if o.startswith('data_root='))
        split = gt_split or osp.join(data_root, 'ImageSets/Segmentation/train.txt')
        row = dict(name=name)
        for variant in variants:
            tag = f'{osp.basename(label_dir)}_{threshold}_{variant}'
            out = osp.join(work, 'ablation_crf_size', tag)
            cmd = [sys.executable, 'tools/gen_pseudo.py', config, ckpt, '--out', out,
                   '--from-maps', osp.join(label_dir, 'probs'), '--threshold', threshold,
                   '--crf', '--no-progress', '--cfg-options', *options, *VARIANTS[variant]]
            if not osp.isfile(osp.join(out, 'manifest.json')):
                subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
            report = out + '_eval'
            if not osp.isfile(report + '.json'):
                subprocess.run([sys.executable, 'tools/eval_pseudo.py', out, '--gt',
                                osp.join(data_root, 'SegmentationClass'), '--split', split,
                                '--config', config, '--cfg-options', *options, '--out',
                                report], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
            with open(report + '.json') as f:
                pred = json.load(f)['prediction']
            cm = pred['confusion']
            total = sum(map(sum, cm))
            row[variant] = (pred['miou'], sum(sum(r[1:len(cm)]) for r in cm) / total,
                            sum(map(sum, cm[1:])) / total)
        rows.append(row)
    return rows


def table(work: str, rows, variants) -> str:
    gt_fg = rows[0][variants[0]][2]
    lines = [f'### {work}', '', f'Ground-truth foreground: {100 * gt_fg:.1f} % of the '
             'labelled pixels. Cells: mIoU (foreground %).', '',
             '| labels | ' + ' | '.join(f'dCRF {v}' for v in variants) + ' |',
             '| --- |' + ' --- |' * len(variants)]
    for row in rows:
        lines.append(f'| {row["name"]} | ' + ' | '.join(
            f'{100 * row[v][0]:.1f} ({100 * row[v][1]:.1f})' for v in variants) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('work_dirs', nargs='+', help='finished pipeline runs')
    parser.add_argument('--variants', nargs='+', choices=sorted(VARIANTS),
                        default=['absolute', 'scaled'])
    parser.add_argument('--out', help='also write the tables to this Markdown file')
    args = parser.parse_args(argv)
    text = '\n\n'.join(table(w, ablate(osp.abspath(w), args.variants), args.variants)
                        for w in args.work_dirs) + '\n'
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text)


if __name__ == '__main__':
    main()
