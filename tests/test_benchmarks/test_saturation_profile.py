# Copyright (c) mmseg-sbce contributors.
"""``benchmarks/saturation_profile.py`` on a hand-made run whose counts are known."""
import os

import numpy as np
import pytest
from PIL import Image

from mmseg_sbce.apis.label_io import save_maps_npz
from benchmark_loader import load_benchmark


@pytest.fixture(scope='module')
def bench():
    return load_benchmark('saturation_profile')


def _make_run(tmp_path, scale=0.5):
    """A 10 x 10 image: class 0 on the left 4 columns (40 pixels), background elsewhere
    (60 pixels). Baseline logits: 20 on the object (saturated at s = 0.5: 10 > 4.6), 12 on
    the background's column 4 (6 > 4.6: 10 saturated background pixels), 8 on columns 5-9
    (4 < 4.6). Phase 1's labels give the class the object, columns 4 (all 10 saturated
    pixels) and 5 (10 of the 50 others)."""
    run, data = tmp_path / 'run', tmp_path / 'data'
    for d in (run / 'pseudo_baseline_nocrf' / 'probs', run / 'pseudo_sbce_p1_nocrf',
              run / 'sbce', data / 'SegmentationClass'):
        os.makedirs(d)
    gt = np.zeros((10, 10), np.uint8)
    gt[:, :4] = 1
    x = np.full((10, 10), 8., np.float32)
    x[:, :4] = 20
    x[:, 4] = 12
    labels = np.zeros_like(gt)
    labels[:, :6] = 1
    Image.fromarray(gt).save(data / 'SegmentationClass' / 'a.png')
    Image.fromarray(labels).save(run / 'pseudo_sbce_p1_nocrf' / 'a.png')
    save_maps_npz(str(run / 'pseudo_baseline_nocrf' / 'probs' / 'a.npz'), x[None],
                  np.array([0]), np.full(1, 0.5, np.float32))
    (run / 'sbce' / 'sbce_demo.py').write_text(
        f'model = dict(decode_head=dict(logit_scale_init={scale}))\n')
    return str(run), str(data)


def test_counts_by_hand(bench, tmp_path):
    run, data = _make_run(tmp_path)
    r = bench.measure(run, data)
    assert r['scale'] == 0.5  # from the run's SBCE config
    assert r['background_sat'] == pytest.approx(10 / 60)
    assert r['object_sat'] == pytest.approx(1)
    assert r['sat_labelled'] == pytest.approx(1)
    assert r['rest_labelled'] == pytest.approx(10 / 50)
    assert r['wrong_from_sat'] == pytest.approx(10 / 20)
    # at s = 0.25 only the object (20 * 0.25 = 5) is saturated
    r = bench.measure(run, data, scale=0.25)
    assert r['background_sat'] == 0 and r['object_sat'] == pytest.approx(1)
    assert r['rest_labelled'] == pytest.approx(20 / 60)
    assert r['wrong_from_sat'] == 0


def test_main_writes_the_table_and_refuses_bad_input(bench, tmp_path):
    run, data = _make_run(tmp_path)
    out = tmp_path / 'sat.md'
    bench.main([run, data, '--names', 'r', '--out', str(out)])
    assert '| r | 0.5 | 16.7 % | 100.0 % | 100 % | 20.0 % | 50 % |' in out.read_text()
    with pytest.raises(SystemExit):
        bench.main([run])
    os.remove(os.path.join(run, 'pseudo_sbce_p1_nocrf', 'a.png'))
    with pytest.raises(SystemExit, match='no labels for a'):
        bench.main([run, data])
    with pytest.raises(SystemExit, match='no saved maps'):
        bench.main([str(tmp_path), data, '--scale', '0.4'])
    with pytest.raises(SystemExit, match='no SBCE config'):
        bench.main([str(tmp_path), data])
