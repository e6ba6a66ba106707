# Copyright (c) mmseg-sbce contributors.
"""The standard data pipelines of WSSS classification training, as config lists.

Normalisation and padding to the crop size are not here: mmseg's ``SegDataPreProcessor``
in the model does them (``size=crop_size``, ``seg_pad_val=255`` so padding is unknown).
"""
from typing import List, Optional, Sequence, Tuple, Union

from .transforms.randaug import photometric_randaug


def wsss_train_pipeline(q_dir: str,
                        crop_size: Union[int, Tuple[int, int]] = 368,
                        scale: Tuple[int, int] = (2048, 512),
                        ratio_range: Tuple[float, float] = (0.5, 2.0),
                        flip_prob: float = 0.5,
                        randaug: bool = True,
                        num_classes: Optional[int] = None) -> List[dict]:
    """The classification training pipeline of the paper (crop 368 + RandAugment).

    Args:
        q_dir (str): The Q store read by ``LoadQMap``.
        crop_size (int | tuple[int, int]): Random crop size (h, w). Defaults to 368.
        scale (tuple[int, int]): Base scale of ``RandomResize`` (mmseg style, long/short
            edge bound with ``keep_ratio``). Defaults to (2048, 512), mmseg's VOC setting.
        ratio_range (tuple[float, float]): Random ratio of the base scale.
            Defaults to (0.5, 2.0).
        flip_prob (float): Horizontal flip probability. Defaults to 0.5.
        randaug (bool): Add mmpretrain's RandAugment with the photometric policies.
            Defaults to True.
        num_classes (int, optional): C for ``PackWSSSInputs``; None takes it from the
            data set. Defaults to None.

    Returns:
        list[dict]: Transform configs, from loading to packing.
    """
    if isinstance(crop_size, int):
        crop_size = (crop_size, crop_size)
    pipeline = [
        dict(type='LoadCheckedImageFromFile'),
        dict(type='LoadQMap', q_dir=q_dir),
        dict(type='RandomResize', scale=scale, ratio_range=ratio_range, keep_ratio=True),
        # cat_max_ratio=1: no constraint on the classes of the crop (the map is a
        # pseudo-label, and mostly unknown before the first Q).
        dict(type='RandomCrop', crop_size=tuple(crop_size), cat_max_ratio=1.0),
        dict(type='RandomFlip', prob=flip_prob),
    ]
    if randaug:
        pipeline.append(photometric_randaug())
    pipeline.append(dict(type='PackWSSSInputs', num_classes=num_classes))
    return pipeline


def wsss_test_pipeline(with_gt: bool = True,
                       scale: Optional[Tuple[int, int]] = None) -> List[dict]:
    """Loading for inference and evaluation (pseudo-label generation, CAM mIoU).

    Args:
        with_gt (bool): Load the ground-truth mask (``seg_map_path``) for evaluation.
            Defaults to True.
        scale (tuple[int, int], optional): Resize with ``keep_ratio`` first. Defaults to
            None (original size; multi-scale inference resizes inside the model).

    Returns:
        list[dict]: Transform configs.
    """
    pipeline: List[dict] = [dict(type='LoadCheckedImageFromFile')]
    if scale is not None:
        pipeline.append(dict(type='Resize', scale=scale, keep_ratio=True))
    if with_gt:
        pipeline.append(dict(type='LoadAnnotations'))
    pipeline.append(dict(type='PackWSSSInputs'))
    return pipeline


__all__: Sequence[str] = ['wsss_train_pipeline', 'wsss_test_pipeline']
