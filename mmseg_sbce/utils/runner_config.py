# Copyright (c) mmseg-sbce contributors.
"""The config handling that ``tools/train.py`` and ``tools/test.py`` share (as mmseg's)."""
import logging
import os
import os.path as osp
from typing import Iterator, Optional, Sequence, Tuple

from mmengine.config import Config

from .errors import InputError

# The Q store's folder inside a run's work dir (configs: ``q_dir = work_dir + '/q'``).
Q_SUBDIR = 'q'


def _set_q_dir(node, old: str, new: str) -> None:
    """Point every ``LoadQMap`` / ``QUpdateHook`` that reads or writes ``old`` at ``new``."""
    if isinstance(node, dict):
        if node.get('type') in ('LoadQMap', 'QUpdateHook') and node.get('q_dir') == old:
            node['q_dir'] = new
        for value in node.values():
            _set_q_dir(value, old, new)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _set_q_dir(value, old, new)


def place_q_store(cfg: Config, cfg_options: Optional[dict] = None) -> None:
    """Put the SBCE Q store inside the run's work dir, so that runs never share one.

    The configs resolve ``q_dir = work_dir + '/q'`` when they are parsed, before
    ``--work-dir`` is known; this re-derives it as ``{cfg.work_dir}/q`` unless ``q_dir`` was
    given in ``cfg_options`` (then that value) or is absolute in the config. ``LoadQMap`` and
    ``QUpdateHook`` that used the parsed value follow; an explicitly overridden one keeps its
    value (``QUpdateHook`` refuses to run if the two then disagree). A config without
    ``q_dir`` is left alone.
    """
    old = cfg.get('q_dir', None)
    if old is None:
        return
    if cfg_options is not None and 'q_dir' in cfg_options:
        new = cfg_options['q_dir']
    elif osp.isabs(old):
        new = old
    else:
        new = osp.join(cfg.work_dir, Q_SUBDIR)
    cfg.q_dir = new
    for key in ('train_dataloader', 'custom_hooks'):
        node = cfg.get(key, None)
        if node is not None:
            _set_q_dir(node, old, new)


# The top-level keys that describe a config's data set (``configs/_base_/datasets/*.py``);
# :func:`apply_dataset` copies them into every data set and head of the config.
DATASET_KEYS = ('data_root', 'class_names', 'num_classes', 'train_split', 'label_file',
                'train_mask_dir')
# Config keys whose ``dataset`` is a data set config (the Q update hook holds one too).
_LOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader', 'pseudo_dataloader')


def _walk_dataset(ds) -> Iterator[dict]:
    """``ds`` and the data sets a wrapper (``ConcatDataset``, ``RepeatDataset``) holds."""
    if not isinstance(ds, dict):
        return
    if isinstance(ds.get('dataset'), dict):
        yield from _walk_dataset(ds['dataset'])
    if isinstance(ds.get('datasets'), (list, tuple)):
        for sub in ds['datasets']:
            yield from _walk_dataset(sub)
    if 'dataset' not in ds and 'datasets' not in ds:
        yield ds


def dataset_cfgs(cfg: Config, training_images: bool = False) -> Iterator[dict]:
    """Every data set config of ``cfg``: the dataloaders', ``infer_dataset`` and hooks'.

    Args:
        cfg (Config): The config.
        training_images (bool): Only the data sets over the training images (the train,
            ``infer_dataset``, Q hook and ``pseudo_dataloader`` ones), not validation/test.
    """
    for key in _LOADER_KEYS:
        if training_images and key in ('val_dataloader', 'test_dataloader'):
            continue
        loader = cfg.get(key, None)
        if isinstance(loader, dict) and isinstance(loader.get('dataset'), dict):
            yield from _walk_dataset(loader['dataset'])
    yield from _walk_dataset(cfg.get('infer_dataset', None))
    for hook in cfg.get('custom_hooks', None) or []:
        if isinstance(hook, dict) and isinstance(hook.get('dataset'), dict):
            yield from _walk_dataset(hook['dataset'])


def _heads(model) -> Iterator[dict]:
    for key in ('decode_head', 'auxiliary_head'):
        heads = model.get(key, None) if isinstance(model, dict) else None
        for head in heads if isinstance(heads, (list, tuple)) else [heads]:
            if isinstance(head, dict) and 'num_classes' in head:
                yield head


def _counts_foreground(head: dict) -> bool:
    """Whether ``head`` counts foreground classes only (``SBCEHead``: C; mmseg's: C + 1)."""
    from mmseg.registry import MODELS

    from mmseg_sbce.models.heads.sbce_head import SBCEHead
    head_type = head.get('type')
    head_cls = MODELS.get(head_type) if isinstance(head_type, str) else head_type
    return isinstance(head_cls, type) and issubclass(head_cls, SBCEHead)


def _generic_dataset(ds: dict, classes: tuple, training_images: bool) -> None:
    """Make ``ds`` a generic data set when its type describes another data set.

    mmseg reads ``metainfo.classes`` that differ from a data set class's own ``METAINFO``
    as a subset selection (``VOCClsDataset`` refuses it, ``PascalVOCDataset`` maps labels);
    data described by other names is another data set, so it gets the generic type
    (``BaseWSSSDataset`` / ``BaseSegDataset``) with the specific type's defaults spelled out.
    A WSSS type without built-in names (``DemoClsDataset``, whose names and label file are
    the generator's) is another data set whenever names are given. Its default
    ``label_file`` is kept on the data sets over the training images only (the data set
    description's ``label_file`` replaces it there); validation and test data sets derive
    their labels from the masks they are scored on.
    """
    import inspect

    from mmseg.datasets import BaseSegDataset
    from mmseg.registry import DATASETS

    from mmseg_sbce.datasets.base_wsss import BaseWSSSDataset
    ds_type = ds.get('type')
    ds_cls = DATASETS.get(ds_type) if isinstance(ds_type, str) else ds_type
    if not isinstance(ds_cls, type) or not issubclass(ds_cls, BaseSegDataset) or \
            ds_cls in (BaseSegDataset, BaseWSSSDataset):
        return
    own = (getattr(ds_cls, 'METAINFO', None) or {}).get('classes')
    if own is not None and tuple(own) == classes:
        return  # its own names
    if own is None and not issubclass(ds_cls, BaseWSSSDataset):
        return  # an mmseg type without names of its own
    generic = BaseWSSSDataset if issubclass(ds_cls, BaseWSSSDataset) else BaseSegDataset
    accepted = inspect.signature(generic.__init__).parameters
    accepted = set(accepted) | set(inspect.signature(BaseSegDataset.__init__).parameters)
    for name, param in inspect.signature(ds_cls.__init__).parameters.items():
        if name in ds or param.default is inspect.Parameter.empty:
            continue
        if name == 'label_file' and not training_images:
            continue
        if name in accepted and param.default is not None:
            ds[name] = param.default
    if 'split' in ds:  # COCOClsDataset: the split only fills in the paths
        missing = [k for k in ('ann_file', 'data_prefix') if ds.get(k) is None]
        if missing:
            raise InputError(f'{ds_type} with class_names {classes[1:]}: give its '
                             f'{" and ".join(missing)} explicitly (no split default)')
        del ds['split']
    ds['type'] = generic.__name__


def _check_names(names, where: str) -> tuple:
    """``names`` as a tuple of distinct foreground class names, else :class:`InputError`
    naming ``where`` (the file or option that gave them) and the value."""
    if isinstance(names, str) or not isinstance(names, Sequence) or not names or not all(
            isinstance(n, str) and n for n in names):
        raise InputError(f'{where}: class_names must be a non-empty list of the foreground '
                         f'class names (background excluded), got {names!r}')
    if len(set(names)) != len(names):
        raise InputError(f'{where}: class_names repeats a name: {list(names)!r}')
    if names[0] == 'background':
        raise InputError(f'{where}: class_names lists the foreground classes only; '
                         f"'background' (class 0) is added by the configs, got {list(names)!r}")
    return tuple(names)


def _check_num_classes(num_classes, where: str) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f'{where}: num_classes must be a positive int (foreground classes, '
                         f'background excluded), got {num_classes!r}')


def _given_by(cfg: Config, options: dict, key: str) -> str:
    """Where ``key`` of ``cfg`` comes from, for a message: the option or the config file."""
    if key in options:
        return f'--cfg-options {key}'
    return cfg.filename or 'the config'


def apply_dataset(cfg: Config, cfg_options: Optional[dict] = None) -> None:
    """Derive every data set and head of ``cfg`` from its top-level data set description.

    A data set is described once, at the top level of a config (its ``_base_`` dataset
    file, or a child config, or ``--cfg-options``):

    - ``data_root``: set on every data set of the config (train/val/test dataloaders,
      ``infer_dataset``, the ``QUpdateHook``'s, ``pseudo_dataloader``);
    - ``class_names``: the C foreground class names; every data set gets
      ``metainfo.classes = ('background', *class_names)`` (its palette is kept when it
      still has one colour per class; a data set type with other built-in names, or
      ``DemoClsDataset``, becomes the generic ``BaseWSSSDataset`` / ``BaseSegDataset``).
      None leaves the data sets' own names (the demo's come from its ``meta.json``);
    - ``num_classes``: C, the foreground class count (``len(class_names)`` when names are
      given): the SBCE classifier's head gets C, every other decode / auxiliary head C + 1
      (background included). A ``num_classes`` option without ``class_names`` names the
      classes ``class_1 ... class_C``;
    - ``train_split`` (the split file of the training images) and ``label_file`` (their
      image-level label file, None: from the masks): set as ``ann_file`` / ``label_file``
      on the data sets over the training images (train dataloader, ``infer_dataset``, the
      Q hook's, ``pseudo_dataloader``), not on validation / test; likewise
      ``train_mask_dir`` (their masks' folder, when the labels come from masks) as
      ``data_prefix.seg_map_path`` where a ``data_prefix`` is given.

    mmengine resolves ``{{_base_.data_root}}`` when a file is parsed, so a child config or a
    ``--cfg-options data_root=X`` would otherwise change the variable only; this runs after
    the options are merged. Options naming a data set key explicitly (e.g.
    ``train_dataloader.dataset.data_root=Y``) are merged again afterwards and win. Keys the
    config does not define at the top level are left alone.

    Args:
        cfg (Config): The config, ``cfg_options`` already merged.
        cfg_options (dict, optional): The ``--cfg-options``.

    Raises:
        InputError: ``class_names`` is not a list of distinct foreground names, or
            disagrees with an explicit ``num_classes``, or ``num_classes`` is not a positive
            int (the message names the option or the config file, and the value).
    """
    options = cfg_options or {}
    names = cfg.get('class_names', None)
    num_classes = cfg.get('num_classes', None)
    if 'num_classes' in options:
        _check_num_classes(num_classes, '--cfg-options num_classes')
        if 'class_names' not in options and names is not None and (
                not isinstance(names, Sequence) or len(names) != num_classes):
            names = tuple(f'class_{i}' for i in range(1, num_classes + 1))
    if names is not None:
        names = _check_names(names, _given_by(cfg, options, 'class_names'))
        if 'num_classes' in options and 'class_names' in options and \
                num_classes != len(names):
            raise InputError(f'--cfg-options: num_classes={num_classes} but class_names lists '
                             f'{len(names)} classes: {list(names)!r}')
        cfg.class_names = names
        num_classes = cfg.num_classes = len(names)
    elif 'num_classes' in options:
        names = tuple(f'class_{i}' for i in range(1, num_classes + 1))
    if num_classes is not None:
        _check_num_classes(num_classes, _given_by(cfg, options, 'num_classes'))
    data_root = cfg.get('data_root', None)
    training = [id(ds) for ds in dataset_cfgs(cfg, training_images=True)]
    for ds in dataset_cfgs(cfg):
        if data_root is not None:
            ds['data_root'] = data_root
        if names is not None:
            meta = dict(ds.get('metainfo', None) or {})
            meta['classes'] = ('background', ) + tuple(names)
            if meta.get('palette') is not None and len(meta['palette']) != len(names) + 1:
                del meta['palette']  # mmseg draws one for the new class count
            ds['metainfo'] = meta
            _generic_dataset(ds, meta['classes'], id(ds) in training)
    for key, ds_key in (('train_split', 'ann_file'), ('label_file', 'label_file')):
        if key in cfg:
            for ds in dataset_cfgs(cfg, training_images=True):
                ds[ds_key] = cfg[key]
    if 'train_mask_dir' in cfg:
        for ds in dataset_cfgs(cfg, training_images=True):
            if isinstance(ds.get('data_prefix', None), dict):
                ds['data_prefix'] = dict(ds['data_prefix'], seg_map_path=cfg.train_mask_dir)
    if num_classes is not None:
        for head in _heads(cfg.get('model', None)):
            head['num_classes'] = num_classes if _counts_foreground(head) else num_classes + 1
    explicit = {k: v for k, v in options.items() if k.split('.')[0] not in DATASET_KEYS}
    if explicit:
        cfg.merge_from_dict(explicit)


# The description keys a segmentation network's config takes: it trains on pseudo-labels, not
# on the data set's image-level labels or masks (see :func:`write_dataset_config`).
SEGMENTATION_DATASET_KEYS = ('data_root', 'class_names', 'num_classes', 'train_split')


def load_dataset_description(path: str) -> dict:
    """The data set description of a data set file: its top-level :data:`DATASET_KEYS`.

    A data set file is ``configs/_base_/datasets/my_dataset.py`` or a copy of it, filled in.
    ``class_names``, ``train_split`` and ``label_file`` are required (``label_file = None``
    derives the image-level labels from the masks in ``train_mask_dir``, then required);
    ``data_root`` is optional (a tool's ``--data-root`` may give it); ``num_classes``, when
    given, must count ``class_names``, and is set to their count.

    Args:
        path (str): The data set file.

    Returns:
        dict: The description, ``class_names`` as a tuple.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        InputError: A key is missing or not of its kind (the message names ``path``).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'data set file not found: {path}')
    cfg = Config.fromfile(path)
    desc = {key: cfg[key] for key in DATASET_KEYS if key in cfg}
    for key in ('class_names', 'train_split', 'label_file'):
        if key not in desc:
            raise InputError(f'{path} sets no {key}: a data set file describes data_root, '
                             'class_names, train_split, label_file and train_mask_dir '
                             '(template: configs/_base_/datasets/my_dataset.py)')
    names = _check_names(desc['class_names'], path)
    if desc.get('num_classes', len(names)) != len(names):
        raise InputError(f'{path}: num_classes={desc["num_classes"]!r} but class_names lists '
                         f'{len(names)} classes: {list(names)!r}')
    desc.update(class_names=names, num_classes=len(names))
    for key in ('data_root', 'train_split', 'train_mask_dir', 'label_file'):
        value = desc.get(key, None)
        optional = key != 'train_split'  # absent, or None for the label file
        if not (isinstance(value, str) and value or value is None and optional):
            raise InputError(f'{path}: {key} must be a path (a non-empty string), got '
                             f'{value!r}')
    if desc['label_file'] is None and 'train_mask_dir' not in desc:
        raise InputError(f'{path}: label_file = None derives the image-level labels from the '
                         'masks, so train_mask_dir must name their folder')
    return desc


def _trains_on_image_labels(cfg: Config) -> bool:
    """Whether the training set of ``cfg`` is a WSSS data set (``BaseWSSSDataset``: images
    with image-level labels), which needs the description's label file or mask folder."""
    from mmseg.registry import DATASETS

    from mmseg_sbce.datasets.base_wsss import BaseWSSSDataset
    loader = cfg.get('train_dataloader', None)
    for ds in _walk_dataset(loader.get('dataset') if isinstance(loader, dict) else None):
        ds_type = ds.get('type')
        ds_cls = DATASETS.get(ds_type) if isinstance(ds_type, str) else ds_type
        if isinstance(ds_cls, type) and issubclass(ds_cls, BaseWSSSDataset):
            return True
    return False


def write_dataset_config(config: str, description: dict, out_file: str,
                         source: Optional[str] = None) -> str:
    """Write a config that is ``config`` on the data set ``description``.

    The written config inherits ``config`` (``_base_``) and sets the description at the top
    level, where :func:`apply_dataset` reads it: every data set and head of ``config``
    follows. A config that trains on a WSSS data set (image-level labels: an ``SBCEHead``
    classifier, the IRN boundary network) takes every key; another config (a segmentation
    network, trained on pseudo-labels) takes :data:`SEGMENTATION_DATASET_KEYS` only, so the
    data set's masks and label file never become its training labels.

    Args:
        config (str): The config to run on the data set.
        description (dict): From :func:`load_dataset_description` (``data_root`` may be
            replaced by the caller).
        out_file (str): The config to write (its folder is created).
        source (str, optional): Where the description comes from (named in a comment).

    Returns:
        str: ``out_file``.
    """
    cfg = Config.fromfile(config)
    image_labels = any(_counts_foreground(head) for head in _heads(cfg.get('model', None))) \
        or _trains_on_image_labels(cfg)
    keys = DATASET_KEYS if image_labels else SEGMENTATION_DATASET_KEYS
    lines = [f'# {osp.basename(config)} on the data set described below (from',
             f'# {source or "a data set description"}); every data set and head of the',
             '# config follows it (mmseg_sbce.utils.runner_config.apply_dataset).',
             f'_base_ = [{osp.abspath(config)!r}]']
    lines += [f'{key} = {description[key]!r}' for key in keys if key in description]
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    with open(out_file, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return out_file


def read_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """Read ``config`` and apply ``--cfg-options`` with every derived value re-derived.

    What ``tools/train.py``, ``tools/test.py``, ``tools/gen_pseudo.py`` and
    ``tools/refine_irn.py`` share: options of the phase layout re-derive the schedule
    (:func:`mmseg_sbce.engine.derive_phase_settings`),
    the data set description re-derives every data set and head (:func:`apply_dataset`), and
    the other options are applied after both, so an explicit override of a derived key wins.

    Raises:
        FileNotFoundError: ``config`` does not exist.
    """
    return _read_config(config, cfg_options)[0]


def _read_config(config: str, cfg_options: Optional[dict]) -> Tuple[Config, Optional[str]]:
    """:func:`read_config`, and the ``q_dir`` the file itself set (before the options)."""
    if not osp.isfile(config):
        raise FileNotFoundError(f'config not found: {config}')
    cfg = Config.fromfile(config)
    parsed_q_dir = cfg.get('q_dir', None)
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
        if any(key.split('.')[0] == 'phase_schedule' for key in cfg_options):
            from mmseg_sbce.engine import derive_phase_settings
            derive_phase_settings(cfg)
            cfg.merge_from_dict(
                {k: v for k, v in cfg_options.items() if k.split('.')[0] != 'phase_schedule'})
    apply_dataset(cfg, cfg_options)
    return cfg, parsed_q_dir


def load_runner_config(config: str,
                       cfg_options: Optional[dict] = None,
                       launcher: str = 'none',
                       work_dir: Optional[str] = None) -> Config:
    """Read ``config``, apply ``--cfg-options`` and pick the work_dir.

    work_dir priority, as in mmseg's tools: ``work_dir`` argument > the config's
    ``work_dir`` > ``./work_dirs/{config file name}``.

    Options that change the phase layout (``phase_schedule.KEY=VALUE``) update every value
    derived from it (hooks, ``PhaseSchedulePolyLR``, ``max_iters``, the validation and
    checkpoint intervals; :func:`mmseg_sbce.engine.derive_phase_settings`); the other options
    are applied after that, so an explicit override of a derived key wins (and
    ``PhaseSwitchHook`` reports it if it disagrees with the schedule).

    The data set described at the top level (``data_root``, ``class_names``,
    ``num_classes``) reaches every data set and head (:func:`apply_dataset`). The SBCE Q
    store follows the work_dir (:func:`place_q_store`): every output of a run lives in its
    work dir.
    """
    cfg, parsed_q_dir = _read_config(config, cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    if parsed_q_dir is not None:
        cfg.q_dir = parsed_q_dir  # a `q_dir=` option is read from cfg_options below
        place_q_store(cfg, cfg_options)
    return cfg


def resolve_resume(cfg: Config, resume: bool) -> None:
    """Set ``cfg.resume`` / ``cfg.load_from`` so that ``--resume`` resumes the work dir's run.

    mmengine resumes from ``load_from`` whenever it is set (see ``Runner.load_or_resume``),
    so ``--resume`` with a config that initialises from a baseline checkpoint would restart
    from the baseline. Here ``--resume`` means the run in ``cfg.work_dir``: its latest
    checkpoint becomes the one resumed (``load_from`` only initialises a new run); with no
    checkpoint there yet, a run with ``load_from`` starts from it as a new run.

    Args:
        cfg (Config): the config from :func:`load_runner_config` (``work_dir`` set).
        resume (bool): ``--resume`` was given.
    """
    from mmengine.logging import print_log
    from mmengine.runner import find_latest_checkpoint
    cfg.resume = bool(resume)
    if not resume:
        return
    latest = find_latest_checkpoint(cfg.work_dir)
    load_from = cfg.get('load_from', None)
    if latest is not None:
        if load_from is not None and load_from != latest:
            print_log(f'--resume: resuming the run in {cfg.work_dir} from its checkpoint '
                      f'{latest}; load_from={load_from} is not used (it initialises a new '
                      'run only)', logger='current')
        cfg.load_from = latest
    elif load_from is not None:
        print_log(f'--resume: no checkpoint in {cfg.work_dir} yet, so a new run starts from '
                  f'load_from={load_from}', logger='current', level=logging.WARNING)
        cfg.resume = False
