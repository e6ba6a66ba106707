# Copyright (c) mmseg-sbce contributors.
from .pseudo_eval import (IGNORE_RULE, VOC_CLASSES, build_report, class_names_for,
                          confusion_matrix, evaluate_label_dir, format_markdown,
                          metrics_from_confusion, read_label_png, read_split, sweep_values,
                          threshold_sweep, write_report)

__all__ = [
    'IGNORE_RULE', 'VOC_CLASSES', 'build_report', 'class_names_for', 'confusion_matrix',
    'evaluate_label_dir', 'format_markdown', 'metrics_from_confusion', 'read_label_png',
    'read_split', 'sweep_values', 'threshold_sweep', 'write_report'
]
