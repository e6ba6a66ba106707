# Copyright (c) mmseg-sbce contributors.
"""Every compatibility fix for the OpenMMLab stack lives here, and only here.

The fixes, each applied at most once and each covered by a test in
``tests/test_utils/test_compat.py`` that fails when the fix is removed:

1. ``install_mmcv_ext_stub``: mmcv-lite ships no compiled ops, yet mmseg imports
   ``mmcv.ops`` unconditionally in a few modules. A stub ``mmcv._ext`` lets every import
   succeed; calling a compiled op then raises a clear error instead. Nothing on this
   plugin's path (ResNet, DeepLab heads, losses) calls one. A full mmcv build is left alone.
2. ``allow_mmengine_checkpoint_globals``: torch >= 2.6 loads with ``weights_only=True`` by
   default and mmengine 0.10.x calls ``torch.load`` without the flag, so resuming fails on
   ``HistoryBuffer`` and numpy objects in the message hub. mmengine's local checkpoint loader
   allow-lists exactly those globals (scoped to its own loads) instead of switching the
   safety check off.
3. ``import_mmpretrain_transforms``: ``mmpretrain.datasets.transforms`` imports torchvision,
   which does not import beside a CPU torch wheel from PyPI. Where torchvision is missing or
   broken, only ``auto_augment.py`` (RandAugment and its ops) is loaded, by file path.
4. ``init_cpu_distributed``: mmengine's ``init_dist`` calls ``torch.cuda.set_device``; on a
   machine without CUDA we initialise a gloo process group ourselves (mmengine then skips its
   own init) and make the config CPU-safe (DDP without device ids, SyncBN -> BN).
"""
import importlib.machinery
import importlib.util
import os
import os.path as osp
import sys
import types
from typing import Any

_MMCV_STUB_ATTR = '__mmseg_sbce_stub__'


# ----------------------------------------------------------------------------- 1. mmcv-lite
def _has_compiled_mmcv() -> bool:
    if 'mmcv._ext' in sys.modules:
        return True
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except (ImportError, ValueError):
        return False


def install_mmcv_ext_stub() -> bool:
    """Put a stub ``mmcv._ext`` in ``sys.modules`` when mmcv has no compiled ops.

    Returns:
        bool: True if the stub is (now) installed, False if a real ``mmcv._ext`` exists.
    """
    existing = sys.modules.get('mmcv._ext')
    if existing is not None:
        return bool(getattr(existing, _MMCV_STUB_ATTR, False))
    if _has_compiled_mmcv():
        return False

    stub = types.ModuleType('mmcv._ext')
    setattr(stub, _MMCV_STUB_ATTR, True)
    # A spec without loader: importlib/pkgutil look-ups (mmengine's mmcv_full_available)
    # then answer "no compiled mmcv" instead of raising on a missing __spec__.
    stub.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', None)

    def __getattr__(name: str) -> Any:  # PEP 562: called for every missing attribute
        if name.startswith('__'):
            raise AttributeError(name)

        def _missing_op(*args, **kwargs):
            raise RuntimeError(
                f'mmcv compiled op "{name}" is not available: this environment has '
                'mmcv-lite (no compiled ops). Install a full mmcv>=2.0.0rc4,<2.2.0 build '
                'to use it.')

        _missing_op.__name__ = name
        return _missing_op

    stub.__getattr__ = __getattr__  # type: ignore[attr-defined]
    sys.modules['mmcv._ext'] = stub
    return True


# ------------------------------------------------------------------ 2. torch weights_only
def _checkpoint_globals() -> list:
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore
    allowed = [HistoryBuffer, _reconstruct, scalar, np.ndarray, np.dtype, getattr]
    # numpy >= 1.25 pickles dtypes as instances of numpy.dtypes.*DType classes.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allowed += [
            getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')
        ]
    return allowed


def allow_mmengine_checkpoint_globals() -> bool:
    """Load mmengine checkpoints under ``weights_only=True`` with an allow-list.

    mmengine's local-file checkpoint loader is re-registered so that its ``torch.load`` runs
    inside ``torch.serialization.safe_globals`` with exactly the globals mmengine checkpoints
    contain: ``HistoryBuffer``, numpy arrays/scalars/dtypes, and ``getattr`` (HistoryBuffer
    pickles its bound statistics methods as ``getattr(buffer, 'mean')``). The allow-list is
    scoped to mmengine's loads (``load_from``, ``--resume``, ``load_checkpoint``); a plain
    ``torch.load`` elsewhere keeps torch's defaults.

    Returns:
        bool: True if the loader was installed, False on a torch without ``safe_globals``
        (< 2.5, which does not default to ``weights_only=True``).
    """
    import torch
    safe_globals = getattr(torch.serialization, 'safe_globals', None)
    if safe_globals is None:
        return False
    from mmengine.runner.checkpoint import CheckpointLoader

    def load_from_local(filename, map_location):
        filename = osp.expanduser(filename)
        if not osp.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        with safe_globals(_checkpoint_globals()):
            return torch.load(filename, map_location=map_location)

    load_from_local.__mmseg_sbce__ = True  # type: ignore[attr-defined]
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
    return True


# ------------------------------------------------------------- 3. mmpretrain RandAugment
def _torchvision_usable() -> bool:
    if importlib.util.find_spec('torchvision') is None:
        return False
    try:
        import torchvision  # noqa: F401
    except Exception:  # PyPI torchvision beside a CPU torch raises RuntimeError
        for name in list(sys.modules):
            if name == 'torchvision' or name.startswith('torchvision.'):
                del sys.modules[name]
        return False
    return True


def import_mmpretrain_transforms() -> str:
    """Make mmpretrain's RandAugment (and its ops) buildable with ``_scope_='mmpretrain'``.

    Returns:
        str: ``'full'`` if all of ``mmpretrain.datasets`` imported, ``'auto_augment'`` if only
        ``auto_augment.py`` was loaded because torchvision is unusable.
    """
    from mmpretrain.registry import TRANSFORMS
    if 'RandAugment' in TRANSFORMS.module_dict:
        return 'full' if 'mmpretrain.datasets' in sys.modules else 'auto_augment'
    if _torchvision_usable():
        import mmpretrain.datasets  # noqa: F401
        return 'full'
    import mmpretrain
    path = osp.join(osp.dirname(mmpretrain.__file__), 'datasets', 'transforms',
                    'auto_augment.py')
    name = 'mmpretrain.datasets.transforms.auto_augment'
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    # Stop the registry from importing mmpretrain.datasets (and so torchvision) when a
    # config builds a transform in the mmpretrain scope.
    TRANSFORMS._imported = True
    return 'auto_augment'


# -------------------------------------------------------------- 4. distributed on CPU
def init_cpu_distributed(cfg=None, timeout_s: int = 1800) -> bool:
    """Initialise torch.distributed with gloo when launched by torchrun on a CPU machine.

    Call before building the Runner. With CUDA present this does nothing and mmengine's
    own ``init_dist`` (nccl) runs as usual.

    Args:
        cfg (Config, optional): a config to make CPU-safe in place: DDP without
            ``device_ids`` and SyncBN replaced by BN (SyncBatchNorm refuses CPU modules).
        timeout_s (int): process-group timeout.

    Returns:
        bool: True if this call set up a gloo process group.
    """
    import datetime

    import torch
    import torch.distributed as dist
    if 'WORLD_SIZE' not in os.environ or torch.cuda.is_available():
        return False  # not under torchrun, or mmengine's own (nccl) init applies
    if cfg is not None:
        make_config_cpu_safe(cfg)
    if dist.is_initialized():
        return False
    dist.init_process_group(
        backend='gloo', timeout=datetime.timedelta(seconds=timeout_s))
    return True


def make_config_cpu_safe(cfg) -> None:
    """DDP wrapper without device ids and every ``SyncBN`` norm_cfg turned into ``BN``."""
    wrapper = dict(cfg.get('model_wrapper_cfg', None) or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    cfg.pop('sync_bn', None)

    def _revert(node):
        if isinstance(node, dict):
            if node.get('type') == 'SyncBN':
                node['type'] = 'BN'
            for value in node.values():
                _revert(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                _revert(value)

    _revert(cfg.get('model', {}))


def apply_all() -> None:
    """Apply the import-time fixes (1-3). Called by ``import mmseg_sbce``."""
    install_mmcv_ext_stub()
    allow_mmengine_checkpoint_globals()
    import_mmpretrain_transforms()
