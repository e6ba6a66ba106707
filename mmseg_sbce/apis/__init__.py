# Copyright (c) mmseg-sbce contributors.
"""Pseudo-labels from a trained classifier, one module per concern:

* :mod:`.pseudo_cfg`: the labelling options (``pseudo_cfg``) and the data set to label;
* :mod:`.inference`: multi-scale + flip inference;
* :mod:`.label_maps`: labelling one image from its maps (eq. 9 / CAM threshold + dCRF);
* :mod:`.crf`: the dense CRF;
* :mod:`.label_io`: label PNGs and saved score maps;
* :mod:`.manifest`: the ``manifest.json`` of an export folder;
* :mod:`.export`: :func:`export_pseudo_labels`, the one export, shared by
  ``tools/gen_pseudo.py`` and the Q-update hook.
"""
from .crf import dense_crf
from .export import OutDirRefused, export_pseudo_labels, generate_pseudo_labels
from .inference import FUSED_PROB_EPS, multi_scale_maps
from .label_io import load_maps_npz, output_paths, save_label_png, save_maps_npz
from .label_maps import (as_float32, as_uint8, label_cam, label_eq9, map_threshold,
                         positive_classes, pseudo_label_from_maps, scatter_compact)
from .manifest import (MANIFEST, MANIFEST_FORMAT, check_complete, check_out_dir,
                       read_manifest, write_manifest)
from .pseudo_cfg import (DEFAULT_PIPELINE, FUSIONS, PSEUDO_CFG_DEFAULTS, pseudo_dataset_cfg,
                         resolve_pseudo_cfg)

__all__ = [
    'dense_crf', 'OutDirRefused', 'export_pseudo_labels', 'generate_pseudo_labels',
    'FUSED_PROB_EPS', 'multi_scale_maps', 'load_maps_npz', 'output_paths', 'save_label_png',
    'save_maps_npz', 'as_float32', 'as_uint8', 'label_cam', 'label_eq9', 'map_threshold',
    'positive_classes', 'pseudo_label_from_maps', 'scatter_compact', 'MANIFEST',
    'MANIFEST_FORMAT', 'check_complete', 'check_out_dir', 'read_manifest', 'write_manifest',
    'DEFAULT_PIPELINE', 'FUSIONS', 'PSEUDO_CFG_DEFAULTS', 'pseudo_dataset_cfg',
    'resolve_pseudo_cfg'
]
