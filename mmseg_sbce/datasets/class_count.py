# Copyright (c) mmseg-sbce contributors.
"""Up-front check that the data sets of a config have the model's number of classes.

A classifier trained on data with another class count fails late and obscurely (a label
vector of the wrong length in the head, a Q update that fails on every image); this check
runs before any work and names the data, the label file and both counts.
"""
import copy
from typing import Any, Iterator, Optional, Tuple

from mmseg.registry import DATASETS

from ..utils.errors import InputError
from .base_wsss import BaseWSSSDataset

# Where a config holds data set configs (the Q update hook holds one too).
_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader', 'pseudo_dataloader')


def model_num_classes(cfg: Any) -> Optional[int]:
    """The foreground class count C of a config's SBCE classifier, None for other models.

    Only ``SBCEHead`` (and subclasses) count foreground classes; mmseg's segmentation
    heads count background too and are not checked here.
    """
    from mmseg.registry import MODELS

    from mmseg_sbce.models.heads.sbce_head import SBCEHead

    head = (cfg.get('model') or {}).get('decode_head') or {}
    head_type = head.get('type')
    head_cls = MODELS.get(head_type) if isinstance(head_type, str) else head_type
    if not isinstance(head_cls, type) or not issubclass(head_cls, SBCEHead):
        return None
    return head.get('num_classes')


def _dataset_cfgs(cfg: Any) -> Iterator[Tuple[str, dict]]:
    for key in _LOADERS:
        loader = cfg.get(key) or {}
        if loader.get('dataset') is not None:
            yield f'{key}.dataset', loader['dataset']
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        if isinstance(hook, dict) and isinstance(hook.get('dataset'), dict):
            yield f'custom_hooks.{i}.dataset ({hook.get("type")})', hook['dataset']


def check_class_counts(cfg: Any, config_name: str = 'the config') -> None:
    """Raise when a WSSS data set of ``cfg`` has another class count than its model.

    Each WSSS data set is instantiated lazily (``lazy_init=True``, no pipeline: its class
    list only, no split or label file is read), so the check is cheap.

    Args:
        cfg (Config | dict): The full config.
        config_name (str): How errors name the config (its file).

    Raises:
        InputError: A data set's foreground class count differs from
            ``model.decode_head.num_classes``; the message names the data (root and
            label file) and both counts.
    """
    num_classes = model_num_classes(cfg)
    if num_classes is None:
        return
    for where, ds_cfg in _dataset_cfgs(cfg):
        ds_type = ds_cfg.get('type')
        ds_cls = DATASETS.get(ds_type) if isinstance(ds_type, str) else ds_type
        if not isinstance(ds_cls, type) or not issubclass(ds_cls, BaseWSSSDataset):
            continue
        # Only the class list is needed: no pipeline (its transforms may come from
        # custom_imports the Runner has not imported yet), no data list.
        try:
            dataset = DATASETS.build(
                dict(copy.deepcopy(dict(ds_cfg)), pipeline=[], lazy_init=True))
        except FileNotFoundError:
            # Data this run does not use (e.g. the train set under tools/test.py); if the
            # run does use it, building it later reports the missing file.
            continue
        if dataset.num_classes != num_classes:
            label_file = (f', label file {dataset.label_file}'
                          if dataset.label_file else '')
            raise InputError(
                f'{where} of {config_name} has {dataset.num_classes} foreground classes '
                f'(data_root {dataset.data_root}{label_file}) but the model has '
                f'{num_classes} (model.decode_head.num_classes): use data and a config '
                'with the same classes')
