# Copyright (c) mmseg-sbce contributors.
"""RandAugment policies that are safe when a per-pixel map rides along with the image.

mmpretrain's ``RandAugment`` (used as is, with ``_scope_='mmpretrain'``) applies its ops to
``results['img']`` only. Its photometric ops change pixel values in place, so a Q map or
mask stays aligned; its geometric ops (``Rotate``, ``Shear``, ``Translate``) move the image
but not ``gt_seg_map``, which silently misaligns the Q map. ``'timm_increasing'`` (the
RandAugment of the paper's code) contains five of them; the list below is
``'timm_increasing'`` without those five::

    dict(type='RandAugment', _scope_='mmpretrain',
         policies='photometric', num_policies=2, total_level=10,
         magnitude_level=9, magnitude_std=0.5)

(``'photometric'`` is registered into mmpretrain's preset table at import.)

Geometric augmentation is left to mmseg's transforms (RandomResize, RandomCrop,
RandomFlip), which move every map in ``seg_fields``.
"""
from typing import List

#: mmpretrain ops that move pixels: not safe with a per-pixel map.
GEOMETRIC_RANDAUG_OPS = ('Rotate', 'Shear', 'Translate')

#: The photometric part of mmpretrain's ``'timm_increasing'`` policies (10 of its 15).
PHOTOMETRIC_RANDAUG_POLICIES: List[dict] = [
    dict(type='AutoContrast'),
    dict(type='Equalize'),
    dict(type='Invert'),
    dict(type='Posterize', magnitude_range=(4, 0)),
    dict(type='Solarize', magnitude_range=(256, 0)),
    dict(type='SolarizeAdd', magnitude_range=(0, 110)),
    dict(type='ColorTransform', magnitude_range=(0, 0.9)),
    dict(type='Contrast', magnitude_range=(0, 0.9)),
    dict(type='Brightness', magnitude_range=(0, 0.9)),
    dict(type='Sharpness', magnitude_range=(0, 0.9)),
]


def photometric_randaug(num_policies: int = 2,
                        magnitude_level: int = 9,
                        magnitude_std: float = 0.5,
                        total_level: int = 10) -> dict:
    """The config dict of mmpretrain's RandAugment with the photometric policies.

    Args:
        num_policies (int): Ops applied per image. Defaults to 2.
        magnitude_level (int): Magnitude level. Defaults to 9.
        magnitude_std (float): Std of the magnitude noise. Defaults to 0.5.
        total_level (int): Total magnitude level. Defaults to 10.

    Returns:
        dict: A transform config (a fresh copy, safe to modify).
    """
    return dict(
        type='RandAugment',
        _scope_='mmpretrain',
        policies=PHOTOMETRIC_POLICY_NAME,
        num_policies=num_policies,
        total_level=total_level,
        magnitude_level=magnitude_level,
        magnitude_std=magnitude_std)


#: The name under which the photometric policies are registered in mmpretrain's preset
#: table, so configs can write ``policies='photometric'`` (configs cannot import Python).
PHOTOMETRIC_POLICY_NAME = 'photometric'


def register_photometric_policies() -> None:
    """Add :data:`PHOTOMETRIC_RANDAUG_POLICIES` to mmpretrain's RandAugment presets.

    mmpretrain's ``RandAugment(policies=<str>)`` looks the name up in its module-level
    ``RANDAUG_POLICIES`` table; adding an entry is all it takes to use the ops unchanged.
    """
    import sys

    from mmseg_sbce.utils.compat import import_mmpretrain_transforms
    import_mmpretrain_transforms()
    module = sys.modules['mmpretrain.datasets.transforms.auto_augment']
    module.RANDAUG_POLICIES.setdefault(PHOTOMETRIC_POLICY_NAME,
                                       [dict(p) for p in PHOTOMETRIC_RANDAUG_POLICIES])


register_photometric_policies()
