# Copyright (c) mmseg-sbce contributors.
"""Reading checkpoint files with errors that name the file (shared by the tools)."""
import os.path as osp
import re
from collections import OrderedDict
from typing import Any, Optional

import torch
from mmengine.runner.checkpoint import CheckpointLoader, load_state_dict

from .errors import InputError


def read_checkpoint(path: str) -> dict:
    """Load a checkpoint file onto the CPU.

    Args:
        path (str): A local checkpoint file (as written by mmengine or ``torch.save``).

    Returns:
        dict: The checkpoint (``state_dict`` and, for mmengine's, ``meta``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        InputError: ``path`` is a folder, empty, not a checkpoint (random bytes, text, a
            truncated file) or holds no tensors.
    """
    if not osp.exists(path):
        raise FileNotFoundError(f'checkpoint {path} not found')
    if not osp.isfile(path):
        raise InputError(f'checkpoint {path} is not a file')
    if osp.getsize(path) == 0:
        raise InputError(f'checkpoint {path} is empty (0 bytes)')
    try:
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    except Exception as exc:  # the unpickler raises anything (KeyError, EOFError, ...)
        detail = (str(exc).strip().splitlines() or [''])[0][:120]
        raise InputError(f'checkpoint {path} cannot be read: not a PyTorch checkpoint or '
                         f'corrupt ({type(exc).__name__}: {detail})') from None
    state_dict = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) \
        else None
    if not isinstance(state_dict, dict) or not any(
            torch.is_tensor(v) for v in state_dict.values()):
        raise InputError(f'checkpoint {path} holds no weights (expected a dict with a '
                         f"'state_dict' of tensors, got {type(checkpoint).__name__})")
    return checkpoint


def load_model_checkpoint(model: torch.nn.Module, path: str, strict: bool = True,
                          logger: Optional[str] = 'current',
                          model_name: str = 'the model') -> dict:
    """Load the weights of ``path`` into ``model`` (mmengine's key handling).

    Args:
        model (nn.Module): The model (not wrapped).
        path (str): The checkpoint file.
        strict (bool): Every key must match. Defaults to True.
        logger (str, optional): Logger for mmengine's key report.
        model_name (str): How errors name the model (e.g. ``'the model of CONFIG'``).

    Returns:
        dict: The checkpoint (its ``meta`` tells what the run trained).

    Raises:
        FileNotFoundError, InputError: see :func:`read_checkpoint`; also when the weights
            do not fit the model (missing or unexpected keys, other shapes).
    """
    checkpoint = read_checkpoint(path)
    state_dict = checkpoint.get('state_dict', checkpoint)
    # As mmengine's load_checkpoint: drop the 'module.' prefix of a wrapped model.
    state_dict = OrderedDict((re.sub(r'^module\.', '', k), v) for k, v in state_dict.items())
    try:
        load_state_dict(model, state_dict, strict=strict, logger=logger)
    except RuntimeError as exc:
        raise InputError(f'checkpoint {path} does not match {model_name}: '
                         f'{" ".join(str(exc).split())}') from None
    return checkpoint


#: Key of ``checkpoint['meta']`` where ``PhaseSwitchHook`` records what the run trained.
SBCE_META_KEY = 'sbce'


def threshold_branch_trained(checkpoint: dict, cfg: Any) -> bool:
    """Whether a classifier checkpoint's threshold branch was ever trained.

    The rule: ``checkpoint['meta']['sbce']['trained_modes']`` (written by
    ``PhaseSwitchHook``) lists ``'sbce-threshold'``; without that record, the config tells:
    a classifier whose head trains in ``'bce'`` mode and has no ``PhaseSwitchHook`` is the
    BCE baseline, whose threshold branch keeps its initialisation. Other models (no
    ``train_mode`` in the head) count as trained: they have no such branch to check.

    Args:
        checkpoint (dict): The loaded checkpoint.
        cfg (Config | dict): The config the checkpoint belongs to.
    """
    record = (checkpoint.get('meta') or {}).get(SBCE_META_KEY)
    if isinstance(record, dict) and 'trained_modes' in record:
        return 'sbce-threshold' in record['trained_modes']
    head = (cfg.get('model') or {}).get('decode_head') or {}
    if 'train_mode' not in head:
        return True
    hooks = [h.get('type') for h in (cfg.get('custom_hooks') or []) if isinstance(h, dict)]
    return head['train_mode'] != 'bce' or 'PhaseSwitchHook' in hooks


#: Config key: ``True`` lets ``load_from`` re-initialise head parameters whose shapes differ.
REINIT_HEAD_KEY = 'reinit_head_on_mismatch'


def check_load_from(cfg: Any) -> None:
    """Fail before training when ``cfg.load_from`` does not fit the config's model.

    mmengine loads ``load_from`` non-strictly: a parameter of another shape (another class
    count) is skipped with a log line and keeps its initialisation, so the run trains a
    fresh head without saying so. This compares the shapes first (the model is built on
    the ``meta`` device: no memory, no initialisation). Head parameters
    (``decode_head.*``) may differ when the config sets ``reinit_head_on_mismatch=True``
    (e.g. ``--cfg-options reinit_head_on_mismatch=True``); they are then re-initialised.

    Args:
        cfg (Config): The full config (``load_from``, ``resume``, ``model``).

    Raises:
        FileNotFoundError, InputError: ``load_from`` is unreadable (see
            :func:`read_checkpoint`) or a parameter's shape differs (the message names the
            checkpoint, the parameter and both shapes).
    """
    load_from = cfg.get('load_from')
    if not load_from:
        return
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    init_default_scope(cfg.get('default_scope', 'mmseg'))
    checkpoint = read_checkpoint(load_from)
    state_dict = checkpoint.get('state_dict', checkpoint)
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    allow_head = bool(cfg.get(REINIT_HEAD_KEY, False))
    for name, param in model.state_dict().items():
        saved = state_dict.get(name, state_dict.get('module.' + name))
        if saved is None or tuple(saved.shape) == tuple(param.shape):
            continue
        if allow_head and name.startswith('decode_head.'):
            continue
        hint = (f'; set {REINIT_HEAD_KEY}=True to re-initialise the head instead'
                if name.startswith('decode_head.') else '')
        raise InputError(
            f'load_from checkpoint {load_from} does not fit the model: parameter {name} '
            f'has shape {tuple(saved.shape)} in the checkpoint and {tuple(param.shape)} in '
            f'the model (another number of classes?){hint}')
