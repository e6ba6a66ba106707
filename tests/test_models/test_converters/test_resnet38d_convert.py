# Copyright (c) mmseg-sbce contributors.
"""ResNet-38d weight conversion: MXNet NDArray lists (all header variants) and PSA .pth."""
import re
import struct

import numpy as np
import pytest
import torch

from mmseg_sbce.models.backbones import ResNet38d
from mmseg_sbce.models.converters import convert_resnet38d, mxnet_key_to_mmseg, read_mxnet_params

TINY = 1 / 16

# ------------------------------------------------------------------ an MXNet writer
LEGACY, V1, V2 = 'legacy', 'v1', 'v2'
FLAGS = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.float16): 2}


def ndarray_record(array: np.ndarray, variant: str, stype: int = 0) -> bytes:
    """One NDArray as MXNet's NDArray::Save writes it (context cpu(0))."""
    shape = array.shape
    if variant == LEGACY:
        out = struct.pack(f'<I{len(shape)}I', len(shape), *shape)
    elif variant == V1:
        out = struct.pack(f'<II{len(shape)}q', 0xF993FAC8, len(shape), *shape)
    else:
        out = struct.pack(f'<IiI{len(shape)}q', 0xF993FAC9, stype, len(shape), *shape)
    out += struct.pack('<iii', 1, 0, FLAGS[array.dtype])
    return out + np.ascontiguousarray(array).astype(array.dtype.newbyteorder('<')).tobytes()


def write_mxnet(path, named_arrays, variant, stype=0):
    blob = struct.pack('<QQQ', 0x112, 0, len(named_arrays))
    blob += b''.join(ndarray_record(a, variant, stype) for _, a in named_arrays)
    blob += struct.pack('<Q', len(named_arrays))
    for name, _ in named_arrays:
        raw = name.encode()
        blob += struct.pack('<Q', len(raw)) + raw
    with open(path, 'wb') as f:
        f.write(blob)


BN_MX = {'weight': 'gamma', 'bias': 'beta', 'running_mean': 'moving_mean',
         'running_var': 'moving_var'}


def mx_name(key: str) -> str:
    """Our key -> MXNet name, written independently of the converter's regexes."""
    if key == 'conv1a.weight':
        return 'arg:conv1a_weight'
    if key.startswith('bn7.'):
        param = BN_MX[key.split('.')[1]]
        return ('aux:' if 'moving' in param else 'arg:') + 'bn7_' + param
    block, layer, param = key.split('.')
    stage, _, index = block[1:].partition('_')
    unit = f'b{index}' if index else 'a'
    branch = layer.split('branch')[1]
    if layer.startswith('conv'):
        return f'arg:res{stage}{unit}_branch{branch}_weight'
    param = BN_MX[param]
    return ('aux:' if 'moving' in param else 'arg:') + f'bn{stage}{unit}_branch{branch}_{param}'


@pytest.fixture(scope='module')
def reference():
    torch.manual_seed(0)
    model = ResNet38d(widen_factor=TINY)
    state = model.state_dict()
    for key, value in state.items():  # non-trivial BN statistics
        if value.is_floating_point():
            value.copy_(torch.rand_like(value) + 0.1)
    return {k: v.clone() for k, v in state.items()}


def mx_arrays(reference, dtype=np.float32):
    arrays = [(mx_name(k), v.numpy().astype(dtype)) for k, v in reference.items()
              if not k.endswith('num_batches_tracked')]
    arrays.append(('arg:linear1000_weight', np.ones((1000, 256), np.float32)))
    arrays.append(('arg:linear1000_bias', np.zeros(1000, np.float32)))
    return arrays


def test_name_mapping_examples():
    assert mxnet_key_to_mmseg('arg:res2a_branch1_weight') == 'b2.conv_branch1.weight'
    assert mxnet_key_to_mmseg('arg:res4b3_branch2b1_weight') == 'b4_3.conv_branch2b1.weight'
    assert mxnet_key_to_mmseg('aux:bn5b2_branch2a_moving_var') == \
        'b5_2.bn_branch2a.running_var'
    assert mxnet_key_to_mmseg('arg:bn7_gamma') == 'bn7.weight'
    assert mxnet_key_to_mmseg('arg:linear1000_weight') is None
    with pytest.raises(KeyError):
        mxnet_key_to_mmseg('arg:fc8_weight')


@pytest.mark.parametrize('variant', [LEGACY, V1, V2])
def test_mxnet_roundtrip_every_header_variant(tmp_path, reference, variant):
    src = str(tmp_path / 'tiny.params')
    write_mxnet(src, mx_arrays(reference), variant)
    raw = read_mxnet_params(src)
    assert raw['arg:linear1000_weight'].shape == (1000, 256)
    state, fmt, dropped = convert_resnet38d(src, widen_factor=TINY)
    assert fmt == 'mxnet'
    assert sorted(dropped) == ['arg:linear1000_bias', 'arg:linear1000_weight']
    assert state.keys() == reference.keys()
    for key, value in reference.items():
        if not key.endswith('num_batches_tracked'):
            torch.testing.assert_close(state[key], value, rtol=0, atol=0)


def test_mxnet_other_dtypes_become_float32(tmp_path, reference):
    src = str(tmp_path / 'f64.params')
    write_mxnet(src, mx_arrays(reference, np.float64), V2)
    state, _, _ = convert_resnet38d(src, widen_factor=TINY)
    assert state['b3.conv_branch2a.weight'].dtype == torch.float32
    src16 = str(tmp_path / 'f16.params')
    write_mxnet(src16, mx_arrays(reference, np.float16), LEGACY)
    state16, _, _ = convert_resnet38d(src16, widen_factor=TINY)
    torch.testing.assert_close(state16['bn7.weight'], reference['bn7.weight'],
                               rtol=1e-3, atol=1e-3)


def test_converted_file_loads_via_pretrained_init(tmp_path, reference, load_tool):
    src, dst = str(tmp_path / 'tiny.params'), str(tmp_path / 'out' / 'tiny.pth')
    write_mxnet(src, mx_arrays(reference), LEGACY)
    cli = load_tool('model_converters/resnet38d_to_mmseg')
    assert cli.main([src, dst, '--widen-factor', str(TINY)]) == 0
    model = ResNet38d(widen_factor=TINY, init_cfg=dict(type='Pretrained', checkpoint=dst))
    model.init_weights()
    for key, value in model.state_dict().items():
        if not key.endswith('num_batches_tracked'):
            torch.testing.assert_close(value, reference[key], rtol=0, atol=0)


def test_psa_pytorch_state_dict(tmp_path, reference):
    psa = {'module.' + k: v for k, v in reference.items()
           if not k.endswith('num_batches_tracked')}  # PyTorch 0.3 era: no counters
    psa['module.fc8.weight'] = torch.zeros(20, 256, 1, 1)
    src = str(tmp_path / 'res38_cls.pth')
    torch.save(psa, src)
    state, fmt, dropped = convert_resnet38d(src, widen_factor=TINY)
    assert fmt == 'pytorch' and dropped == ['fc8.weight']
    assert state.keys() == reference.keys()
    torch.testing.assert_close(state['b4_5.conv_branch2b1.weight'],
                               reference['b4_5.conv_branch2b1.weight'])
    torch.save({'state_dict': dict(reference)}, src)  # wrapped, identity keys
    assert convert_resnet38d(src, widen_factor=TINY)[2] == []


def test_mismatches_are_refused_with_a_listing(tmp_path, reference):
    base = {k: v for k, v in reference.items() if not k.endswith('num_batches_tracked')}
    src = str(tmp_path / 'bad.pth')

    missing = dict(base)
    del missing['b3_1.conv_branch2a.weight']
    torch.save(missing, src)
    with pytest.raises(ValueError, match=r'missing \(1\): b3_1\.conv_branch2a\.weight'):
        convert_resnet38d(src, widen_factor=TINY)

    unexpected = dict(base, **{'b2.conv_branch3.weight': torch.zeros(1)})
    torch.save(unexpected, src)
    with pytest.raises(ValueError, match=r'unexpected \(1\): b2\.conv_branch3\.weight'):
        convert_resnet38d(src, widen_factor=TINY)

    torch.save(base, src)  # tiny weights into the full-width model
    with pytest.raises(ValueError, match='shape mismatch'):
        convert_resnet38d(src)

    mx = str(tmp_path / 'bad.params')
    write_mxnet(mx, mx_arrays(reference) + [('arg:fc8_weight', np.ones(3, np.float32))], V2)
    with pytest.raises(ValueError, match=re.escape('unexpected (1): arg:fc8_weight')):
        convert_resnet38d(mx, widen_factor=TINY)


def test_foreign_and_broken_files_are_refused(tmp_path, reference, load_tool):
    junk = tmp_path / 'junk.bin'
    junk.write_bytes(b'not a checkpoint at all')
    with pytest.raises(ValueError, match='neither an MXNet NDArray list'):
        convert_resnet38d(str(junk))

    src = str(tmp_path / 'tiny.params')
    write_mxnet(src, mx_arrays(reference), V2)
    truncated = tmp_path / 'truncated.params'
    truncated.write_bytes(open(src, 'rb').read()[:-100])
    with pytest.raises(ValueError, match='truncated|names'):
        read_mxnet_params(str(truncated))

    sparse = str(tmp_path / 'sparse.params')
    write_mxnet(sparse, [('arg:conv1a_weight', np.ones(2, np.float32))], V2, stype=1)
    with pytest.raises(ValueError, match='sparse'):
        read_mxnet_params(sparse)

    cli = load_tool('model_converters/resnet38d_to_mmseg')
    assert cli.main([str(junk), str(tmp_path / 'x.pth')]) == 1
    assert not (tmp_path / 'x.pth').exists()
