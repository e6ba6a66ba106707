# Copyright (c) mmseg-sbce contributors.
"""pseudo_cfg defaults and validation."""
import pytest

import mmseg_sbce  # noqa: F401
from mmseg_sbce.apis import PSEUDO_CFG_DEFAULTS, resolve_pseudo_cfg


def test_resolve_cfg_defaults_and_validation():
    cfg = resolve_pseudo_cfg()
    assert cfg['threshold'] == 'adaptive' and cfg['normalize_cam'] is False
    assert cfg['crf'] == PSEUDO_CFG_DEFAULTS['crf']
    assert cfg['scales'] == (1.0, 0.5, 1.5, 2.0) and cfg['flip'] is True
    cam = resolve_pseudo_cfg(dict(threshold='0.25', crf=dict(iterations=5)))
    assert cam['threshold'] == 0.25 and cam['normalize_cam'] is True
    assert cam['crf']['iterations'] == 5 and cam['crf']['gt_prob'] == 0.7
    with pytest.raises(KeyError, match='thresold'):
        resolve_pseudo_cfg(dict(thresold=0.3))
    with pytest.raises(KeyError, match='crf.sxy'):
        resolve_pseudo_cfg(dict(crf=dict(sxy=3)))
    with pytest.raises(ValueError, match='normalize_cam'):
        resolve_pseudo_cfg(dict(normalize_cam=True))
    with pytest.raises(ValueError):
        resolve_pseudo_cfg(dict(threshold='high'))
    with pytest.raises(ValueError):
        resolve_pseudo_cfg(dict(unsure=dict(margin=-1)))


def test_resolve_cfg_fusion():
    # eq. 9 averages probabilities, the CAM rule logits, unless told otherwise.
    assert resolve_pseudo_cfg()['fusion'] == 'probs'
    assert resolve_pseudo_cfg(dict(threshold=0.3))['fusion'] == 'logits'
    assert resolve_pseudo_cfg(dict(fusion='logits'))['fusion'] == 'logits'
    raw = resolve_pseudo_cfg(dict(threshold=0.3, normalize_cam=False, fusion='probs'))
    assert raw['fusion'] == 'probs'
    with pytest.raises(ValueError, match="fusion must be one of .* got 'mean'"):
        resolve_pseudo_cfg(dict(fusion='mean'))
    with pytest.raises(ValueError, match='normalize_cam'):
        resolve_pseudo_cfg(dict(threshold=0.3, fusion='probs'))


def test_resolve_cfg_otsu_threshold():
    """'otsu' is a per-map rule like 'adaptive': probabilities, probability fusion, no CAM
    normalisation; other words are refused with the list of rules."""
    cfg = resolve_pseudo_cfg(dict(threshold='otsu'))
    assert cfg['threshold'] == 'otsu' and cfg['normalize_cam'] is False
    assert cfg['fusion'] == 'probs'
    with pytest.raises(ValueError, match='normalize_cam=True cannot be combined with '
                       'threshold="otsu"'):
        resolve_pseudo_cfg(dict(threshold='otsu', normalize_cam=True))
    with pytest.raises(ValueError, match=r"\('adaptive', 'otsu'\) or a float, got 'otsu2'"):
        resolve_pseudo_cfg(dict(threshold='otsu2'))
