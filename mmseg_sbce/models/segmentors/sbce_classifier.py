# Copyright (c) mmseg-sbce contributors.
"""Classification network of Spatial-BCE: backbone + SBCEHead, eq. 9 prediction."""
from typing import List, Optional, Tuple

import torch
from mmengine.structures import PixelData
from torch import Tensor

from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig, OptSampleList, SampleList
from ..labelling import cam_scores, eq9_scores, map_threshold


@MODELS.register_module()
class SBCEClassifier(BaseSegmentor):
    """Multi-label classifier trained with (Spatial-)BCE whose prediction is a segmentation.

    ``loss`` trains with image labels (and the Q map) in the head's current mode (see
    :class:`SBCEHead`); ``predict`` labels pixels by eq. 9 so that mmseg's ``IoUMetric`` and
    ``tools/test.py`` score pseudo-label quality directly.

    Inference interface (used by ``predict`` and by the multi-scale + flip inference of
    :mod:`mmseg_sbce.apis.inference`): :meth:`extract_maps` gives the unscaled logits and
    the threshold logits of a batch, :meth:`map_threshold_logits` maps threshold logits
    into the unscaled space with this model's logit scale, ``num_classes`` is ``C``.

    Prediction (single scale, one pass): the unscaled logits are upsampled bilinearly to the
    padded input, padding is removed, flips are undone, they are resized to ``ori_shape``
    (mmseg's ``postprocess_result``) and turned into ``p = sigmoid(x)`` (no logit scale).
    Then, with ``test_cfg``, by the rules of :mod:`mmseg_sbce.models.labelling` (the ones
    pseudo-label generation uses):

    - ``threshold='adaptive'`` (default): eq. 9 with the learned threshold mapped into the
      unscaled space, ``t'_c = sigmoid(thr_logit_c / s_c)``: label
      ``argmax_c (p_c - t'_c)`` over the allowed classes, background where that is ``<= 0``.
    - ``threshold=<float>``: a fixed background threshold ``b``: ``argmax_c p_c`` over the
      allowed classes if its value is ``> b``, else background (eq. 9 with ``t_c = b``).
      With ``normalize_cam=True`` the threshold applies to the CAM ``relu(x_c) / max
      relu(x_c)`` (the classical CAM convention, where thresholds such as 0.2-0.4 are
      meaningful) instead of ``p_c``; only allowed with a fixed threshold, since ``t'``
      lives in the space of the unnormalised probabilities.
    - ``use_gt_labels=True`` (default): allowed classes are the sample's ``gt_labels``
      (image labels, as for pseudo-labels) when present, else all classes.

    Each output sample gets ``pred_sem_seg`` ``[1, H, W]`` (0 background, ``c + 1`` class
    ``c``) and ``seg_logits`` ``[C + 1, H, W]``: the eq. 9 scores (background 0, allowed
    classes ``p_c - t_c``, others -2), whose argmax is ``pred_sem_seg``.

    Args:
        backbone (dict): backbone config (any mmseg/mmpretrain backbone).
        decode_head (dict): :class:`SBCEHead` config; its ``in_channels`` must match the
            backbone feature it reads.
        train_cfg (dict, optional): passed to the head's ``loss``.
        test_cfg (dict, optional): ``threshold``, ``normalize_cam``, ``use_gt_labels``.
        data_preprocessor (dict, optional): e.g. ``SegDataPreProcessor``.
        init_cfg (dict, optional): initialisation config.
    """

    def __init__(self,
                 backbone: ConfigType,
                 decode_head: ConfigType,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.decode_head = MODELS.build(decode_head)
        self.align_corners = self.decode_head.align_corners
        self.num_classes = self.decode_head.num_classes
        # prediction has a background channel in front of the C foreground classes
        self.out_channels = self.num_classes + 1
        self.train_cfg = train_cfg
        if test_cfg and 'max_normalize' in test_cfg:
            raise ValueError('test_cfg.max_normalize is now called normalize_cam (the name '
                             'pseudo_cfg and tools/eval_pseudo.py use)')
        self.test_cfg = dict(threshold='adaptive', normalize_cam=False, use_gt_labels=True)
        self.test_cfg.update(test_cfg or {})
        threshold = self.test_cfg['threshold']
        if threshold != 'adaptive' and not isinstance(threshold, (int, float)):
            raise ValueError(f"test_cfg.threshold must be 'adaptive' or a number, got "
                             f'{threshold!r}')
        if threshold == 'adaptive' and self.test_cfg['normalize_cam']:
            raise ValueError('normalize_cam needs a fixed threshold: the adaptive '
                             "threshold t' is defined on unnormalised probabilities")

    # -------------------------------------------------------------------- train mode
    @property
    def train_mode(self) -> str:
        """str: the head's training mode."""
        return self.decode_head.train_mode

    def set_train_mode(self, mode: str) -> None:
        """Switch the training objective: ``'bce' | 'sbce-classifier' | 'sbce-threshold'``."""
        self.decode_head.set_train_mode(mode)

    # ----------------------------------------------------------------------- forward
    def extract_feat(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """Backbone features."""
        return self.backbone(inputs)

    def extract_maps(self, inputs: Tensor) -> Tuple[Tensor, Tensor]:
        """Unscaled classifier logits and threshold logits (the inference interface).

        Args:
            inputs (Tensor): normalised images ``[B, 3, H, W]``.

        Returns:
            tuple[Tensor, Tensor]: ``cls_logits [B, C, h, w]`` without the logit scale and
            ``thr_logits [B, C]`` before the sigmoid (``t = sigmoid(thr_logits)`` lives in
            the scaled space; :meth:`map_threshold_logits` maps it).
        """
        return self.decode_head(self.extract_feat(inputs))

    def map_threshold_logits(self, thr_logits: Tensor) -> Tensor:
        """The thresholds ``t' = sigmoid(thr_logits / s)`` in the unscaled space.

        The threshold ``t = sigmoid(thr_logits)`` was learned against the scaled
        probabilities ``sigmoid(s * x)``; inference compares it with ``sigmoid(x)``
        (:func:`mmseg_sbce.models.labelling.map_threshold`, with this model's logit scale).
        Multi-scale inference averages the threshold logits of its passes and maps the mean
        once.

        Args:
            thr_logits (Tensor): ``[C]`` or ``[B, C]`` threshold logits (before the sigmoid).

        Returns:
            Tensor: ``t'`` with the shape and device of ``thr_logits``.
        """
        return map_threshold(thr_logits, self.decode_head.logit_scale, from_logits=True)

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Unscaled logits resized to the (padded) input size."""
        return self.decode_head.predict(self.extract_feat(inputs), batch_img_metas)[0]

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> Tuple[Tensor,
                                                                                  Tensor]:
        """Network forward: ``(cls_logits, thr_logits)`` as :meth:`extract_maps`."""
        return self.extract_maps(inputs)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Losses of the current training mode (see :class:`SBCEHead`)."""
        return self.decode_head.loss(self.extract_feat(inputs), data_samples, self.train_cfg)

    # ----------------------------------------------------------------------- predict
    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        """Eq. 9 segmentation of a batch (see the class docstring).

        Args:
            inputs (Tensor): normalised images ``[B, 3, H, W]``.
            data_samples (list[SegDataSample], optional): with metainfo (``ori_shape``,
                ``img_shape``, padding, flip) and optionally ``gt_labels``.

        Returns:
            list[SegDataSample]: with ``pred_sem_seg`` and ``seg_logits``.
        """
        if data_samples is not None:
            batch_img_metas = [sample.metainfo for sample in data_samples]
        else:
            batch_img_metas = [
                dict(
                    ori_shape=inputs.shape[2:],
                    img_shape=inputs.shape[2:],
                    pad_shape=inputs.shape[2:],
                    padding_size=[0, 0, 0, 0])
            ] * inputs.shape[0]
        cls_logits, thr_logits = self.extract_maps(inputs)
        meta = batch_img_metas[0]
        seg_logits = resize(
            cls_logits,
            size=meta.get('pad_shape', meta['img_shape'])[:2],
            mode='bilinear',
            align_corners=self.align_corners)
        return self.postprocess_eq9(seg_logits, self.map_threshold_logits(thr_logits),
                                    data_samples)

    def postprocess_eq9(self,
                        seg_logits: Tensor,
                        thr: Tensor,
                        data_samples: OptSampleList = None) -> SampleList:
        """Undo padding/flip, resize to ``ori_shape`` and label by eq. 9.

        Args:
            seg_logits (Tensor): unscaled logits ``[B, C, H, W]`` at the padded input size.
            thr (Tensor): mapped thresholds ``t'`` ``[B, C]`` (used when adaptive).
            data_samples (list[SegDataSample], optional): the input samples, updated in place.

        Returns:
            list[SegDataSample]: with ``pred_sem_seg`` and ``seg_logits``.
        """
        only_prediction = data_samples is None
        num_classes = seg_logits.shape[1]
        # mmseg's postprocess_result treats a single channel as a binary segmentation
        # (sigmoid + threshold); with one class it gets the logits twice and keeps one.
        unpadded = self.postprocess_result(
            seg_logits.expand(-1, 2, -1, -1) if num_classes == 1 else seg_logits,
            data_samples)
        threshold = self.test_cfg['threshold']
        for i, sample in enumerate(unpadded):
            logits = sample.seg_logits.data[:num_classes]
            labels_mask: Optional[Tensor] = None
            if not only_prediction and self.test_cfg['use_gt_labels']:
                labels_mask = sample.get('gt_labels', None)
            if labels_mask is not None:
                labels_mask = torch.as_tensor(labels_mask, device=logits.device)
            if threshold == 'adaptive':
                scores = eq9_scores(logits.sigmoid(), thr[i], labels_mask)
            else:
                scores = cam_scores(logits, float(threshold), labels_mask,
                                    normalize_cam=self.test_cfg['normalize_cam'])
            sample.set_data({
                'seg_logits': PixelData(data=scores),
                'pred_sem_seg': PixelData(data=scores.argmax(dim=0, keepdim=True)),
            })
        return unpadded
