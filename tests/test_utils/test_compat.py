# Copyright (c) mmseg-sbce contributors.
"""Each stack fix in mmseg_sbce.utils.compat, with a test that fails if the fix is removed.

The "without the fix" halves run in a fresh interpreter that does not import mmseg_sbce, so
they show the breakage is real on this stack; the "with the fix" halves run the same code after
``import mmseg_sbce``.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import mmseg_sbce  # noqa: F401
from mmseg_sbce.utils import compat


def run_py(code: str, env=None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                          capture_output=True, text=True, env=full_env, timeout=300)


def _has_full_mmcv() -> bool:
    return not getattr(sys.modules.get('mmcv._ext'), compat._MMCV_STUB_ATTR, False)


# ------------------------------------------------------------------------ mmcv-lite
@pytest.mark.skipif(_has_full_mmcv(), reason='a full mmcv build is installed')
def test_mmcv_ext_stub_makes_mmseg_models_importable():
    without = run_py('import mmseg.models')
    assert without.returncode != 0 and 'mmcv._ext' in without.stderr
    with_fix = run_py("""
        import mmseg_sbce, mmseg.models, sys
        from mmseg.registry import MODELS
        assert MODELS.get('DepthwiseSeparableASPPHead') is not None
        import mmcv._ext as ext
        try:
            ext.roi_align_forward()
        except RuntimeError as e:
            assert 'mmcv-lite' in str(e), e
        else:
            raise AssertionError('stub op did not raise')
        """)
    assert with_fix.returncode == 0, with_fix.stderr


def test_mmcv_stub_is_idempotent():
    first = compat.install_mmcv_ext_stub()
    assert compat.install_mmcv_ext_stub() == first


@pytest.mark.skipif(_has_full_mmcv(), reason='a full mmcv build is installed')
def test_mmcv_stub_answers_mmengine_probe():
    # mmengine probes for compiled mmcv (e.g. when reverting SyncBN in a non-distributed run)
    from mmengine.utils.dl_utils import mmcv_full_available
    assert mmcv_full_available() is False


# ----------------------------------------------------------------- weights_only loading
def _save_mmengine_like_checkpoint(path):
    from mmengine.logging import HistoryBuffer, MessageHub
    hub = MessageHub.get_instance('compat_test')
    hub.update_scalar('train/loss', 1.5)
    hub.update_info('iter', 3)
    torch.save({'message_hub': hub.state_dict(), 'meta': {'arr': np.arange(3)},
                'hist': HistoryBuffer([1.0, 2.0], [1, 1])}, path)


@pytest.mark.skipif(not hasattr(torch.serialization, 'safe_globals'),
                    reason='torch < 2.5 does not load with weights_only by default')
def test_checkpoint_globals_allow_listed(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    _save_mmengine_like_checkpoint(path)
    code = f"""
        {{imp}}
        from mmengine.runner.checkpoint import _load_checkpoint
        ckpt = _load_checkpoint({path!r}, map_location='cpu')
        assert ckpt['hist'].current() == 2.0
        """
    without = run_py(code.format(imp='pass'), env={'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD': ''})
    assert without.returncode != 0 and 'weights_only' in without.stderr.lower()
    with_fix = run_py(code.format(imp='import mmseg_sbce'))
    assert with_fix.returncode == 0, with_fix.stderr
    # the check itself stays on: an arbitrary global is still refused, through mmengine too
    from mmengine.runner.checkpoint import _load_checkpoint
    torch.save({'f': os.path.join}, str(tmp_path / 'evil.pth'))
    with pytest.raises(Exception, match='(?i)weights_only|unsupported global'):
        _load_checkpoint(str(tmp_path / 'evil.pth'), map_location='cpu')


# --------------------------------------------------------------- RandAugment from mmpretrain
def test_randaugment_from_mmpretrain_builds_in_mmseg_pipeline():
    code = """
        {imp}
        import numpy as np
        from mmseg.registry import TRANSFORMS
        t = TRANSFORMS.build(dict(type='RandAugment', _scope_='mmpretrain',
            policies='timm_increasing', num_policies=2, total_level=10,
            magnitude_level=9, magnitude_std=0.5))
        out = t(dict(img=np.full((16, 16, 3), 100, np.uint8)))
        assert out['img'].shape == (16, 16, 3)
        print(type(t).__module__)
        """
    with_fix = run_py(code.format(imp='import mmseg_sbce'))
    assert with_fix.returncode == 0, with_fix.stderr
    assert 'mmpretrain' in with_fix.stdout
    if compat.import_mmpretrain_transforms() == 'auto_augment':
        without = run_py(code.format(imp='import mmseg.datasets'))
        assert without.returncode != 0


# ------------------------------------------------------------------- gloo on CPU
def test_make_config_cpu_safe():
    from mmengine.config import Config
    cfg = Config(dict(model=dict(backbone=dict(norm_cfg=dict(type='SyncBN')),
                                 decode_head=dict(norm_cfg=dict(type='SyncBN'),
                                                  extra=[dict(type='SyncBN')])),
                      sync_bn='torch'))
    compat.make_config_cpu_safe(cfg)
    assert cfg.model.backbone.norm_cfg.type == 'BN'
    assert cfg.model.decode_head.norm_cfg.type == 'BN'
    assert cfg.model.decode_head.extra[0].type == 'BN'
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel', device_ids=None)
    assert 'sync_bn' not in cfg


def test_init_cpu_distributed_two_processes(tmp_path):
    """Two processes all-reduce through gloo; mmengine's own init_dist would need CUDA."""
    script = tmp_path / 'worker.py'
    script.write_text(textwrap.dedent("""
        import torch, torch.distributed as dist
        import mmseg_sbce
        from mmengine.dist import get_dist_info
        from mmseg_sbce.utils import init_cpu_distributed
        assert init_cpu_distributed() is True
        rank, world = get_dist_info()
        t = torch.tensor([float(rank + 1)])
        dist.all_reduce(t)
        assert world == 2 and t.item() == 3.0, (world, t)
        dist.destroy_process_group()
        """))
    res = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         '--master_port=29617', str(script)],
        capture_output=True, text=True, timeout=300, env={**os.environ, 'CUDA_VISIBLE_DEVICES': ''})
    assert res.returncode == 0, res.stderr[-3000:]
