# Copyright (c) mmseg-sbce contributors.
from .pseudo_eval import (DEFAULT_SWEEP, IGNORE_RULE, VOC_CLASSES, build_report, class_names_for,
                          confusion_matrix, evaluate_label_dir, format_markdown,
                          metrics_from_confusion, read_label_png, read_split, sweep_values,
                          threshold_sweep, write_report)

__all__ = [
    'DEFAULT_SWEEP', 'IGNORE_RULE', 'VOC_CLASSES', 'build_report', 'class_names_for', 'confusion_matrix',
    'evaluate_label_dir', 'format_markdown', 'metrics_from_confusion', 'read_label_png',
    'read_split', 'sweep_values', 'threshold_sweep', 'write_report'
]
