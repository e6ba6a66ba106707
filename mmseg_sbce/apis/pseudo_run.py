# Copyright (c) mmseg-sbce contributors.
"""What a pseudo-label export needs besides the labelling itself: which data set to label
and the ``manifest.json`` that identifies a finished (or interrupted) export.

Used by ``tools/gen_pseudo.py``; the Q-update hook may use :func:`pseudo_dataset_cfg` too.

Config keys read (in this order):

* ``pseudo_dataloader.dataset``: the data set to label, used as is (its pipeline must load
  the image without resizing and pack it with its image labels);
* otherwise ``train_dataloader.dataset`` (unwrapped from ``RepeatDataset`` /
  ``ClassBalancedDataset``) with its pipeline replaced by :data:`DEFAULT_PIPELINE`;
* ``pseudo_cfg``: the labelling options (see :data:`~.pseudo_label.PSEUDO_CFG_DEFAULTS`).
"""
import copy
import datetime
import hashlib
import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional

MANIFEST = 'manifest.json'
MANIFEST_FORMAT = 'mmseg-sbce-pseudo-labels/1'

#: The pipeline put on the training data set when no ``pseudo_dataloader`` is configured.
DEFAULT_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackWSSSInputs')]

_WRAPPERS = ('RepeatDataset', 'ClassBalancedDataset')


def pseudo_dataset_cfg(cfg: Any, split: Optional[str] = None) -> dict:
    """The dataset config to label.

    Args:
        cfg (Config | dict): the full config.
        split (str, optional): changes ``ann_file``: a value containing ``/`` or ending in
            ``.txt`` is used as the new ``ann_file``; a bare name (``train``) replaces the
            file name of the configured one (``.../train_aug.txt`` -> ``.../train.txt``).

    Returns:
        dict: a deep copy, ready for ``DATASETS.build``.
    """
    loader = cfg.get('pseudo_dataloader', None)
    if loader is not None and loader.get('dataset') is not None:
        dataset = copy.deepcopy(dict(loader['dataset']))
    else:
        train = cfg.get('train_dataloader', None)
        if train is None or train.get('dataset') is None:
            raise KeyError('the config has neither pseudo_dataloader.dataset nor '
                           'train_dataloader.dataset')
        dataset = copy.deepcopy(dict(train['dataset']))
        while dataset.get('type') in _WRAPPERS:
            dataset = copy.deepcopy(dict(dataset['dataset']))
        if dataset.get('type') == 'ConcatDataset':
            raise ValueError('train_dataloader.dataset is a ConcatDataset: set '
                             'pseudo_dataloader.dataset to the data set to label')
        dataset['pipeline'] = copy.deepcopy(DEFAULT_PIPELINE)
    if split:
        if '/' in split or split.endswith('.txt'):
            dataset['ann_file'] = split
        else:
            old = dataset.get('ann_file') or ''
            dataset['ann_file'] = osp.join(osp.dirname(old), f'{split}.txt')
    return dataset


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def _canonical(obj: Any) -> Any:
    """JSON-able form with tuples as lists and stable key order."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def dict_sha256(obj: Any) -> str:
    """SHA-256 of the canonical JSON of a (config) dict."""
    return hashlib.sha256(json.dumps(_canonical(obj), sort_keys=True).encode()).hexdigest()


def run_identity(*, config_path: str, model_cfg: Any, checkpoint_sha256: str,
                 pseudo_cfg: dict, dataset_cfg: dict, save_probs: bool,
                 maps_dir: Optional[str] = None) -> Dict[str, Any]:
    """The manifest fields that decide whether two exports produce the same files
    (``maps_dir``: the saved maps labelled instead of running the network, if any)."""
    identity = dict(config=osp.basename(config_path), model_cfg_sha256=dict_sha256(model_cfg),
                    checkpoint_sha256=checkpoint_sha256, pseudo_cfg=pseudo_cfg,
                    dataset=dataset_cfg, save_probs=bool(save_probs))
    if maps_dir is not None:
        identity['maps_dir'] = osp.abspath(maps_dir)
    return _canonical(identity)


def _flatten(obj: Any, prefix: str = '') -> Dict[str, Any]:
    if isinstance(obj, dict):
        out: Dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_flatten(value, f'{prefix}{key}.'))
        return out
    return {prefix[:-1]: obj}


def identity_differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """Dotted field names whose values differ, e.g. ``['pseudo_cfg.threshold']``."""
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def read_manifest(out_dir: str) -> Optional[Dict[str, Any]]:
    path = osp.join(out_dir, MANIFEST)
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def check_out_dir(out_dir: str, identity: Dict[str, Any], overwrite: bool) -> Optional[str]:
    """Why ``out_dir`` must not be (re)used for this run, or None if it may.

    A folder is reusable when it is empty or absent, or when its manifest has the same
    identity (an interrupted or repeated run: finished images are skipped). Files of a
    different run (another identity, or label PNGs without a manifest) are refused unless
    ``overwrite``.
    """
    if overwrite or not osp.isdir(out_dir):
        return None
    manifest = read_manifest(out_dir)
    if manifest is None:
        pngs = [n for n in os.listdir(out_dir) if n.endswith('.png')]
        if pngs:
            return (f'{out_dir} holds {len(pngs)} PNG files but no {MANIFEST}: they are not '
                    'from this run; pass --overwrite to write over them')
        return None
    diff = identity_differences(manifest.get('identity', {}), identity)
    if diff:
        old, new = _flatten(manifest.get('identity', {})), _flatten(identity)
        shown = '; '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in diff[:10])
        return (f'{out_dir} holds the output of a different run; manifest fields that '
                f'differ: {", ".join(diff)} ({shown}); pass --overwrite to replace it')
    return None


def write_manifest(out_dir: str, manifest: Dict[str, Any]) -> str:
    """Write ``{out_dir}/manifest.json`` atomically; returns its path."""
    path = osp.join(out_dir, MANIFEST)
    tmp = osp.join(out_dir, f'.{MANIFEST}.tmp{os.getpid()}')
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(_canonical(manifest), f, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


def versions() -> Dict[str, str]:
    import mmengine
    import mmseg
    import torch

    from mmseg_sbce import __version__
    return dict(mmseg_sbce=__version__, mmseg=mmseg.__version__,
                mmengine=mmengine.__version__, torch=torch.__version__)
