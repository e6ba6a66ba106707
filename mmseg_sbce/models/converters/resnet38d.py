# Copyright (c) mmseg-sbce contributors.
"""Convert foreign ResNet-38d weights into :class:`ResNet38d` state dicts.

Two sources are understood:

1. The public ImageNet weights ``ilsvrc-cls_rna-a1_cls1000_ep-0001.params``, an MXNet
   NDArray list, read here WITHOUT mxnet (the binary format is parsed directly, see
   :func:`read_mxnet_params`).
2. PyTorch state dicts of the PSA / SEAM / EDAM family (keys such as ``conv1a.weight``,
   ``b2.conv_branch2a.weight``, ``bn7.running_mean``), whose module names
   :class:`ResNet38d` reuses, so the mapping is the identity after stripping a DataParallel
   ``module.`` prefix and dropping the family's classifier heads.

Every conversion is checked against the keys and shapes of a ``ResNet38d`` built on the
``meta`` device (no memory): missing, unexpected or mis-shaped backbone keys raise a
``ValueError`` that lists them. ``tools/model_converters/resnet38d_to_mmseg.py`` is the CLI.
"""
import re
import struct
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

# ---------------------------------------------------------------------- MXNet format
#: first uint64 of an NDArray list file (``kMXAPINDArrayListMagic``)
MX_LIST_MAGIC = 0x112
#: per-array magics: V1 (int64 shape, no storage type), V2 (storage type), V3 (as V2,
#: numpy shape semantics: ndim -1 is "unknown", ndim 0 a scalar)
MX_V1_MAGIC = 0xF993FAC8
MX_V2_MAGIC = 0xF993FAC9
MX_V3_MAGIC = 0xF993FACA
#: mshadow type flags
MX_DTYPES = {
    0: np.float32,
    1: np.float64,
    2: np.float16,
    3: np.uint8,
    4: np.int32,
    5: np.int8,
    6: np.int64,
}


class _Reader:
    """Little-endian cursor over a bytes buffer with clear errors on truncation."""

    def __init__(self, buf: bytes, path: str) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.buf):
            raise ValueError(f'{self.path}: truncated MXNet file (wanted {size} bytes at '
                             f'offset {self.pos}, file has {len(self.buf)})')
        out = self.buf[self.pos:self.pos + size]
        self.pos += size
        return out

    def unpack(self, fmt: str):
        return struct.unpack('<' + fmt, self.take(struct.calcsize('<' + fmt)))


def _read_ndarray(reader: _Reader) -> Optional[np.ndarray]:
    """One ``NDArray::Save`` record; None for an empty ("none") array."""
    (magic, ) = reader.unpack('I')
    if magic in (MX_V2_MAGIC, MX_V3_MAGIC):
        (stype, ) = reader.unpack('i')
        if stype != 0:  # 0 = kDefaultStorage; 1/2 = row_sparse/csr carry aux arrays
            raise ValueError(f'{reader.path}: sparse NDArray (storage type {stype}) is not '
                             'supported; weights are dense')
    if magic in (MX_V1_MAGIC, MX_V2_MAGIC, MX_V3_MAGIC):
        (ndim, ) = reader.unpack('i')
        if magic == MX_V3_MAGIC and ndim < 0:
            return None
        shape = reader.unpack(f'{ndim}q') if ndim else ()
        if ndim == 0 and magic != MX_V3_MAGIC:
            return None
    else:
        # Legacy record: there is no magic, the first uint32 is already ndim, and the dims
        # are uint32.
        ndim = magic
        if ndim > 32:
            raise ValueError(f'{reader.path}: unknown NDArray header 0x{magic:08x}')
        if ndim == 0:
            return None
        shape = reader.unpack(f'{ndim}I')
    _dev_type, _dev_id = reader.unpack('ii')  # saved context, irrelevant once loaded
    (type_flag, ) = reader.unpack('i')
    if type_flag not in MX_DTYPES:
        raise ValueError(f'{reader.path}: unsupported NDArray dtype flag {type_flag}')
    dtype = np.dtype(MX_DTYPES[type_flag]).newbyteorder('<')
    count = int(np.prod(shape, dtype=np.int64))
    data = np.frombuffer(reader.take(count * dtype.itemsize), dtype=dtype)
    return data.reshape(shape).astype(dtype.newbyteorder('='), copy=True)


def read_mxnet_params(path: str) -> Dict[str, Optional[np.ndarray]]:
    """Read an MXNet NDArray list file (``mx.nd.save`` / ``*.params``) without mxnet.

    Layout (all little-endian), as written by ``NDArray::Save(stream, arrays, names)``::

        uint64 0x112                     list magic
        uint64 0                         reserved
        uint64 N                         number of arrays, then N records:
            legacy record:  uint32 ndim, uint32 dims[ndim]
            V1 record:      uint32 0xF993fac8, uint32 ndim, int64 dims[ndim]
            V2 record:      uint32 0xF993fac9, int32 storage_type (0 = dense),
                            uint32 ndim, int64 dims[ndim]
            (V3 0xF993faca: as V2, ndim -1 = none, 0 = scalar)
          an array with ndim 0 (legacy/V1/V2) ends here (an empty array); otherwise:
            int32 dev_type, int32 dev_id  saved context
            int32 type_flag               0 f32, 1 f64, 2 f16, 3 u8, 4 i32, 5 i8, 6 i64
            raw data                      prod(dims) * itemsize bytes, C order
        uint64 M                         number of names (M == N, or 0 for a bare list)
            uint64 length, bytes name    e.g. "arg:res2a_branch1_weight",
                                         "aux:bn2a_branch2a_moving_mean"

    Args:
        path (str): the file.

    Returns:
        dict[str, np.ndarray | None]: arrays by stored name (``arg:`` / ``aux:`` kept).
    """
    with open(path, 'rb') as f:
        reader = _Reader(f.read(), path)
    if len(reader.buf) < 16 or reader.unpack('Q')[0] != MX_LIST_MAGIC:
        raise ValueError(f'{path}: not an MXNet NDArray list (magic 0x112 missing)')
    reader.unpack('Q')  # reserved
    (num_arrays, ) = reader.unpack('Q')
    arrays = [_read_ndarray(reader) for _ in range(num_arrays)]
    (num_names, ) = reader.unpack('Q')
    if num_names != num_arrays:
        raise ValueError(f'{path}: {num_arrays} arrays but {num_names} names; ResNet-38d '
                         'weights need one name per array')
    names = []
    for _ in range(num_names):
        (length, ) = reader.unpack('Q')
        names.append(reader.take(length).decode('utf-8'))
    if reader.pos != len(reader.buf):
        raise ValueError(f'{path}: {len(reader.buf) - reader.pos} trailing bytes after the '
                         'name list')
    return dict(zip(names, arrays))


# ---------------------------------------------------------------------- name mapping
_MX_BN_PARAMS = {
    'gamma': 'weight',
    'beta': 'bias',
    'moving_mean': 'running_mean',
    'moving_var': 'running_var'
}
_MX_BLOCK = re.compile(r'^(res|bn)([2-7])(a|b\d+)_branch(1|2a|2b1|2b2)_'
                       r'(weight|gamma|beta|moving_mean|moving_var)$')
_MX_BN7 = re.compile(r'^bn7_(gamma|beta|moving_mean|moving_var)$')
#: ImageNet classifier of the MXNet model, not part of the backbone
_MX_DROPPED = re.compile(r'^linear1000_')


def mxnet_key_to_mmseg(name: str) -> Optional[str]:
    """Map one MXNet parameter name to a :class:`ResNet38d` state-dict key.

    ``res{S}{U}_branch{B}_weight`` is conv ``branch{B}`` of block ``U`` of stage ``S``
    (unit ``a`` is block ``b{S}``, unit ``b{n}`` is ``b{S}_{n}``);
    ``bn{S}{U}_branch{B}_{gamma,beta,moving_mean,moving_var}`` the BN before it;
    ``conv1a_weight`` the stem and ``bn7_*`` the final BN. ``arg:``/``aux:`` prefixes are
    ignored.

    Args:
        name (str): MXNet name, e.g. ``'arg:res4b3_branch2b1_weight'``.

    Returns:
        str | None: e.g. ``'b4_3.conv_branch2b1.weight'``; None for the ImageNet classifier
        (``linear1000``). Raises ``KeyError`` for a name of no known form.
    """
    bare = name.split(':', 1)[1] if name.startswith(('arg:', 'aux:')) else name
    if _MX_DROPPED.match(bare):
        return None
    if bare == 'conv1a_weight':
        return 'conv1a.weight'
    match = _MX_BN7.match(bare)
    if match:
        return f'bn7.{_MX_BN_PARAMS[match.group(1)]}'
    match = _MX_BLOCK.match(bare)
    if match is None:
        raise KeyError(name)
    kind, stage, unit, branch, param = match.groups()
    block = f'b{stage}' if unit == 'a' else f'b{stage}_{unit[1:]}'
    if kind == 'res' and param == 'weight':
        return f'{block}.conv_branch{branch}.weight'
    if kind == 'bn' and param in _MX_BN_PARAMS:
        return f'{block}.bn_branch{branch}.{_MX_BN_PARAMS[param]}'
    raise KeyError(name)


# ------------------------------------------------------------------------ validation
def expected_state(widen_factor: float = 1.0) -> Dict[str, torch.Size]:
    """Keys and shapes of a :class:`ResNet38d` state dict, built on the meta device."""
    from ..backbones.resnet38d import ResNet38d
    with torch.device('meta'):
        model = ResNet38d(widen_factor=widen_factor)
    return {k: v.shape for k, v in model.state_dict().items()}


def _check(state: Dict[str, Tensor], expected: Dict[str, torch.Size], source: str) -> None:
    """Raise a ValueError listing missing, unexpected and mis-shaped keys."""
    required = {k for k in expected if not k.endswith('num_batches_tracked')}
    missing = sorted(required - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    mis_shaped = sorted(f'{k}: got {tuple(v.shape)}, expected {tuple(expected[k])}'
                        for k, v in state.items()
                        if k in expected and tuple(v.shape) != tuple(expected[k]))
    if missing or unexpected or mis_shaped:
        lines = [f'{source} does not match ResNet38d:']
        for title, items in (('missing', missing), ('unexpected', unexpected),
                             ('shape mismatch', mis_shaped)):
            if items:
                lines.append(f'  {title} ({len(items)}): ' + ', '.join(items))
        raise ValueError('\n'.join(lines))


def _finish(state: Dict[str, Tensor], expected: Dict[str, torch.Size]) -> Dict[str, Tensor]:
    """Fill BN ``num_batches_tracked`` (absent in old checkpoints) and order like the model."""
    out = {}
    for key in expected:
        if key in state:
            out[key] = state[key]
        elif key.endswith('num_batches_tracked'):
            out[key] = torch.tensor(0, dtype=torch.long)
    return out


def mxnet_to_resnet38d(params: Dict[str, Optional[np.ndarray]],
                       widen_factor: float = 1.0,
                       source: str = 'MXNet file') -> Tuple[Dict[str, Tensor], List[str]]:
    """Map MXNet ResNet-38 arrays to a checked :class:`ResNet38d` state dict.

    Args:
        params (dict): output of :func:`read_mxnet_params`.
        widen_factor (float): width of the target model (1.0 for real weights).
        source (str): name used in error messages.

    Returns:
        tuple[dict, list[str]]: the state dict (float32 tensors) and the dropped names.
    """
    expected = expected_state(widen_factor)
    state, dropped, unknown = {}, [], []
    for name, array in params.items():
        try:
            key = mxnet_key_to_mmseg(name)
        except KeyError:
            unknown.append(name)
            continue
        if key is None:
            dropped.append(name)
            continue
        if array is None:
            raise ValueError(f'{source}: array {name!r} is empty')
        state[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if unknown:
        raise ValueError(f'{source} does not match ResNet38d:\n  unexpected '
                         f'({len(unknown)}): ' + ', '.join(sorted(unknown)))
    _check(state, expected, source)
    return _finish(state, expected), dropped


def psa_to_resnet38d(checkpoint: Dict, widen_factor: float = 1.0,
                     source: str = 'PyTorch checkpoint') -> Tuple[Dict[str, Tensor], List[str]]:
    """Take the backbone out of a PSA / SEAM / EDAM-style ResNet-38d state dict.

    A ``state_dict`` / ``model`` wrapper and a ``module.`` (DataParallel) or ``backbone.``
    prefix are removed. Keys under a backbone module name (``conv1a``, ``b2`` ...
    ``bn7``) must match exactly; keys under other names (the family's classifier heads,
    e.g. ``fc8``, ``f8_3``, ``f9``) are dropped and returned.

    Args:
        checkpoint (dict): a loaded ``.pth`` object.
        widen_factor (float): width of the target model.
        source (str): name used in error messages.

    Returns:
        tuple[dict, list[str]]: the state dict and the dropped keys.
    """
    for wrapper in ('state_dict', 'model'):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(wrapper), dict):
            checkpoint = checkpoint[wrapper]
    if not isinstance(checkpoint, dict) or not all(
            isinstance(k, str) and torch.is_tensor(v) for k, v in checkpoint.items()):
        raise ValueError(f'{source}: not a state dict of tensors')
    expected = expected_state(widen_factor)
    backbone_names = {k.split('.', 1)[0] for k in expected}
    state, dropped = {}, []
    for key, value in checkpoint.items():
        for prefix in ('module.', 'backbone.'):
            if key.startswith(prefix):
                key = key[len(prefix):]
        if key.split('.', 1)[0] in backbone_names:
            state[key] = value.detach().clone().float() if value.is_floating_point() \
                else value.detach().clone()
        else:
            dropped.append(key)
    _check(state, expected, source)
    return _finish(state, expected), dropped


def convert_resnet38d(src: str, widen_factor: float = 1.0) -> Tuple[Dict[str, Tensor], str,
                                                                    List[str]]:
    """Read ``src`` (MXNet NDArray list or PyTorch checkpoint) into a ResNet38d state dict.

    Args:
        src (str): source file.
        widen_factor (float): width of the target model.

    Returns:
        tuple[dict, str, list[str]]: state dict, detected format (``'mxnet'`` /
        ``'pytorch'``) and the dropped keys.
    """
    with open(src, 'rb') as f:
        head = f.read(8)
    if len(head) == 8 and struct.unpack('<Q', head)[0] == MX_LIST_MAGIC:
        state, dropped = mxnet_to_resnet38d(
            read_mxnet_params(src), widen_factor, source=src)
        return state, 'mxnet', dropped
    try:
        checkpoint = torch.load(src, map_location='cpu', weights_only=True)
    except Exception as exc:  # torch raises several types for a foreign file
        reason = (str(exc).strip().splitlines() or [''])[0]
        raise ValueError(f'{src}: neither an MXNet NDArray list nor a PyTorch checkpoint '
                         f'loadable with weights_only=True ({type(exc).__name__}: {reason})')
    state, dropped = psa_to_resnet38d(checkpoint, widen_factor, source=src)
    return state, 'pytorch', dropped
