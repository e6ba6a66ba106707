# Copyright (c) mmseg-sbce contributors.
"""Packing of WSSS training samples (the data contract of ``docs/design.md``)."""
from typing import Optional, Sequence

import torch
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PackWSSSInputs(PackSegInputs):
    """``PackSegInputs`` plus the image-level labels and the image id.

    Adds to the ``SegDataSample``:

    - ``gt_labels``: float tensor ``[C]``, multi-hot over the C foreground classes, from
      ``results['gt_labels']`` (indices 0..C-1). Left out when the results have no labels.
    - ``metainfo['img_id']``.
    - ``gt_thr_logits``: float tensor ``[C]``, from ``results['q_thr_logits']``
      (``LoadQMap(with_thresholds=True)``; NaN: no target), when present.

    ``gt_sem_seg`` is packed by ``PackSegInputs`` from ``gt_seg_map`` (the Q map while
    training the classifier).

    Args:
        num_classes (int, optional): C. None takes ``results['num_classes']``, which the
            WSSS data sets provide. Defaults to None.
        meta_keys (Sequence[str]): Keys packed into the metainfo. Defaults to mmseg's keys
            plus ``'img_id'``.
    """

    def __init__(self,
                 num_classes: Optional[int] = None,
                 meta_keys: Sequence[str] = (
                     'img_path', 'seg_map_path', 'img_id', 'ori_shape', 'img_shape',
                     'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                     'reduce_zero_label')) -> None:
        super().__init__(meta_keys=meta_keys)
        if num_classes is not None and num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes

    def _num_classes(self, results: dict) -> int:
        from_results = results.get('num_classes')
        if self.num_classes is None:
            if from_results is None:
                raise KeyError('PackWSSSInputs needs num_classes: pass it or use a WSSS '
                               'data set (which puts num_classes in the results)')
            return int(from_results)
        if from_results is not None and int(from_results) != self.num_classes:
            raise ValueError(f'PackWSSSInputs(num_classes={self.num_classes}) but the data '
                             f'set has {from_results} foreground classes')
        return self.num_classes

    def transform(self, results: dict) -> dict:
        """Pack the image, the Q map, the multi-hot labels and the metainfo."""
        packed = super().transform(results)
        if 'gt_labels' in results:
            num_classes = self._num_classes(results)
            labels = torch.as_tensor(list(results['gt_labels']), dtype=torch.long)
            if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
                raise ValueError(
                    f'gt_labels {labels.tolist()} of {results.get("img_path", "?")} are '
                    f'outside 0..{num_classes - 1}')
            multi_hot = torch.zeros(num_classes, dtype=torch.float32)
            multi_hot[labels] = 1.0
            packed['data_samples'].gt_labels = multi_hot
        if 'q_thr_logits' in results:
            packed['data_samples'].gt_thr_logits = torch.as_tensor(
                results['q_thr_logits'], dtype=torch.float32)
        return packed

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, '
                f'meta_keys={self.meta_keys})')
