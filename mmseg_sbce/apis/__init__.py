# Copyright (c) mmseg-sbce contributors.
from .pseudo_label import (IGNORE_INDEX, PSEUDO_CFG_DEFAULTS, dense_crf, fractions_from_labels,
                           generate_pseudo_labels, label_cam, label_eq9, load_maps_npz,
                           map_threshold, multi_scale_maps, output_paths,
                           pseudo_label_from_maps, resolve_pseudo_cfg, save_label_png,
                           save_maps_npz)
from .pseudo_run import (DEFAULT_PIPELINE, MANIFEST, check_out_dir, pseudo_dataset_cfg,
                         read_manifest, write_manifest)

__all__ = [
    'IGNORE_INDEX', 'PSEUDO_CFG_DEFAULTS', 'dense_crf', 'fractions_from_labels',
    'generate_pseudo_labels', 'label_cam', 'label_eq9', 'load_maps_npz', 'map_threshold',
    'multi_scale_maps', 'output_paths', 'pseudo_label_from_maps', 'resolve_pseudo_cfg',
    'save_label_png', 'save_maps_npz', 'DEFAULT_PIPELINE', 'MANIFEST', 'check_out_dir', 'pseudo_dataset_cfg',
    'read_manifest', 'write_manifest'
]
