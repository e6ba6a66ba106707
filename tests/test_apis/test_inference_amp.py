# Copyright (c) mmseg-sbce contributors.
"""Pseudo-label inference under autocast (``pseudo_cfg.amp``): the network passes run in
bfloat16 on CPU, everything after them in float32, and the labels agree with float32 on a
generated demo data set."""
import glob
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from mmseg.registry import DATASETS, MODELS
from mmseg_sbce.apis import export_pseudo_labels, multi_scale_maps, resolve_pseudo_cfg
from mmseg_sbce.apis.inference import autocast_context
from mmseg_sbce.apis.pseudo_cfg import DEFAULT_PIPELINE
from mmseg_sbce.datasets.demo_data import generate_demo_dataset

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: Share of pixels whose bfloat16 label must equal the float32 label. Measured with the
#: seeded random-init demo model below: see docs/benchmarks.md (Mixed precision). bfloat16
#: rounds the logits to 8 mantissa bits, which moves pixels on a decision boundary only.
MIN_AGREEMENT = 0.99


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    init_default_scope('mmseg')
    root = str(tmp_path_factory.mktemp('demo_amp'))
    generate_demo_dataset(root, num_train=12, num_val=1, img_size=96, num_classes=6, seed=0)
    cfg = Config.fromfile(osp.join(ROOT, 'configs/demo/sbce_demo.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    dataset = DATASETS.build(dict(type='DemoClsDataset', data_root=root,
                                  pipeline=DEFAULT_PIPELINE, keep_unlabelled=True))
    return model, dataset


def _labels(out_dir):
    paths = sorted(glob.glob(osp.join(out_dir, '**', '*.png'), recursive=True))
    return {osp.relpath(p, out_dir): np.array(Image.open(p)) for p in paths}


@pytest.mark.parametrize('pcfg', [dict(threshold=0.3), dict()],
                         ids=['cam-0.3+dcrf', 'adaptive+dcrf'])
def test_bf16_labels_agree_with_float32(demo, tmp_path, pcfg):
    model, dataset = demo
    for amp in (None, 'bf16'):
        export_pseudo_labels(model, dataset, str(tmp_path / str(amp)), dict(pcfg, amp=amp),
                             workers=0, progress=False)
    ref, half = _labels(str(tmp_path / 'None')), _labels(str(tmp_path / 'bf16'))
    assert len(ref) == len(dataset) and ref.keys() == half.keys()
    equal = sum(int((ref[k] == half[k]).sum()) for k in ref)
    total = sum(v.size for v in ref.values())
    assert equal / total >= MIN_AGREEMENT, equal / total
    # Not a trivial agreement: the float32 labels have foreground.
    assert sum(int((v > 0).sum()) for v in ref.values()) > 0.2 * total


def test_network_runs_in_bf16_and_outputs_stay_float32(demo, monkeypatch):
    model, dataset = demo
    seen = []
    extract = model.extract_maps

    def spy(inputs):
        cls_logits, thr_logits = extract(inputs)
        seen.append((inputs.dtype, cls_logits.dtype))
        return cls_logits, thr_logits

    monkeypatch.setattr(model, 'extract_maps', spy)
    img = dataset[0]['inputs']
    ref, ref_thr = multi_scale_maps(model, img)
    assert seen and all(d == (torch.float32, torch.float32) for d in seen)
    seen.clear()
    probs, thr = multi_scale_maps(model, img, amp='bf16')
    assert seen and all(d == (torch.float32, torch.bfloat16) for d in seen)
    # Fusion and the threshold mapping are float32; values close to the float32 path.
    assert probs.dtype == torch.float32 and thr.dtype == torch.float32
    assert not torch.equal(probs, ref)
    torch.testing.assert_close(probs, ref, atol=5e-2, rtol=0)
    # amp=None is the float32 path, bit for bit.
    again, again_thr = multi_scale_maps(model, img, amp=None)
    assert torch.equal(again, ref) and torch.equal(again_thr, ref_thr)


def test_amp_values_and_errors():
    assert resolve_pseudo_cfg()['amp'] is None
    assert resolve_pseudo_cfg(dict(amp='bf16'))['amp'] == 'bf16'
    with pytest.raises(ValueError, match='amp must be None or one of'):
        resolve_pseudo_cfg(dict(amp='half'))
    with pytest.raises(ValueError, match='needs a CUDA device'):
        autocast_context('fp16', torch.device('cpu'))
    with pytest.raises(ValueError, match="got 'int8'"):
        autocast_context('int8', torch.device('cpu'))


def _load_gen_pseudo():
    spec = importlib.util.spec_from_file_location('gen_pseudo_tool',
                                                  osp.join(ROOT, 'tools/gen_pseudo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gen_pseudo_amp_flag(monkeypatch):
    tool = _load_gen_pseudo()
    cfg = Config(dict(pseudo_cfg=dict(threshold=0.3)))
    args = tool.parse_args(['c.py', 'w.pth', '--out', 'o'])
    assert tool._pseudo_cfg(cfg, args)['amp'] is None
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    args = tool.parse_args(['c.py', 'w.pth', '--out', 'o', '--amp'])
    assert tool._pseudo_cfg(cfg, args)['amp'] == 'bf16'
    args = tool.parse_args(['c.py', 'w.pth', '--out', 'o', '--amp', 'fp16'])
    with pytest.raises(SystemExit, match='needs a CUDA device'):
        tool._pseudo_cfg(cfg, args)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    args = tool.parse_args(['c.py', 'w.pth', '--out', 'o', '--amp'])
    assert tool._pseudo_cfg(cfg, args)['amp'] == 'fp16'
