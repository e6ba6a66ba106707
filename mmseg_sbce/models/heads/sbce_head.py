# Copyright (c) mmseg-sbce contributors.
"""Per-pixel multi-label classifier with logit scale and threshold branch (paper Sec. 3)."""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig, SampleList
from ..losses.base_loss import upcast_half
from ..losses.otsu import otsu_threshold
from ..losses.percentile import percentile_threshold
from ..losses.target_fraction import target_fractions
from ..labelling import map_threshold

TRAIN_MODES = ('bce', 'sbce-classifier', 'sbce-threshold')
#: What trains the threshold branch (``SBCEHead(threshold_loss=...)``).
THRESHOLD_LOSSES = ('sbce', 'percentile', 'otsu', 'q_count')


@MODELS.register_module()
class SBCEHead(BaseModule):
    """Spatial-BCE classifier head: foreground logit maps and adaptive thresholds.

    Outputs, for ``C`` foreground classes (no background channel):

    - ``cls_logits [B, C, h, w]``: per-pixel logits ``x``, a 1x1 classifier on the
      backbone features, optionally through a 128-channel bottleneck (1x1 conv without
      bias or activation, i.e. a rank-128 classifier as in the reference).
    - ``thr_logits [B, C]``: threshold branch, a 1x1 conv (no bias) on the same features,
      global-average-pooled; ``t = sigmoid(thr_logits)``. The 1x1 conv is applied after the
      pooling, which is the same thing (both are linear) at ``1 / (h * w)`` of the cost.
    - ``logit_scale [C]``: ``exp(T)``, ``T`` initialised to ``ln(logit_scale_init)``.
      Training uses ``p = sigmoid(logit_scale * x)``; inference drops it (``p = sigmoid(x)``)
      and maps the threshold instead (:func:`mmseg_sbce.models.labelling.map_threshold`).
    - ``logit_centre [C]`` (a buffer, not trained): subtracted from the classifier's output,
      so ``x`` above is already centred, in training and at inference (a fixed per-class
      bias). The paper has none: 0, the default. A departure, off unless
      ``PhaseSwitchHook(centre_start_prob=...)`` sets it once from the network's own logits
      when the Spatial-BCE phases start; checkpoints keep it, with ``logit_centre_set``.

    Training modes (``set_train_mode``), and where gradients go:

    - ``'bce'``: the baseline, BCE on the global-average-pooled logits (``loss_bce``).
      The logit scale is NOT used: the baseline is the plain GAP-BCE CAM classifier, whose
      maps are read as ``sigmoid(x)`` at inference without any mapping; the scale is a
      device of Spatial-BCE. Gradients: backbone, bottleneck, classifier.
    - ``'sbce-classifier'`` (first theta iterations of a period, Alg. 1): Spatial-BCE with
      ``t`` the percentile of ``p`` at the target fraction (detached) plus the KL term.
      Gradients: backbone, bottleneck, classifier, logit scale; not the threshold branch.
    - ``'sbce-threshold'`` (remaining iterations): Spatial-BCE with ``p`` detached and ``t``
      from the threshold branch (``'side_mean'`` reduction), plus the KL term on the
      classifier (active in both sub-phases, as in the reference). Gradients: threshold
      branch; backbone through the branch (as in the reference, which detaches only ``p``;
      ``detach_thr_feats=True`` stops that); bottleneck, classifier, scale and backbone via
      the KL term. With ``threshold_loss='q_count'`` the branch is a detached regressor
      trained in both sub-phases (see ``threshold_loss``).

    Targets come from each ``SegDataSample``: ``gt_labels`` (float ``[C]`` multi-hot) and
    ``gt_sem_seg``, the Q map (0 background, ``1..C`` classes, ``ignore_index`` unknown).
    The target fraction of class ``c`` is ``count(map == c + 1) / count(map != ignore)``,
    counted at the map's own resolution (:func:`mmseg_sbce.models.losses.target_fractions`).
    The padding the data preprocessor adds to a small crop is 255 in the Q map, so the target
    skips it; the predicted fraction of the KL term, the percentile and ``frac_gap`` skip it
    too, using only the logit cells that lie on the image (:meth:`get_valid_pixels`).
    A sample whose map is all ``ignore_index`` (or that has no ``gt_sem_seg``) has no Q:

    - it is excluded from the KL term;
    - in ``'sbce-classifier'`` its positive-class Spatial-BCE terms are dropped (there is no
      percentile to set ``t``, and a fixed ``t`` without the KL constraint is the collapse
      the paper warns about), while its negative-class terms stay (image labels are known);
    - in ``'sbce-threshold'`` it is used normally (``t`` comes from the branch, not from Q).

    DDP: a parameter that takes no part in the loss of an iteration breaks gradient sync
    unless ``find_unused_parameters=True`` (slow, and it hides real bugs). Each sub-phase
    leaves some parameters idle (threshold branch in ``'bce'``/``'sbce-classifier'``, the
    scale in ``'bce'``, everything but the branch when no sample has a Q in
    ``'sbce-threshold'``), so with ``touch_idle_params=True`` the main loss gets
    ``0 * (sum of every trainable head parameter + sum of the input features)``: every
    parameter then receives a (zero) gradient. Side effect to know about: optimisers treat
    a zero gradient as a gradient, so SGD momentum and weight decay keep acting on idle
    parameters (a None gradient would skip them).

    Args:
        in_channels (int): channels of the selected backbone feature.
        num_classes (int): number of foreground classes ``C``.
        channels (int, optional): bottleneck width; ``None`` or 0 for a direct 1x1
            classifier. Defaults to 128.
        in_index (int): which backbone output to use. Defaults to -1 (the last).
        logit_scale_init (float): initial logit scale. Defaults to 10.
        dropout_ratio (float): Dropout2d on the classifier input. Defaults to 0.
        train_mode (str): initial training mode. Defaults to ``'bce'``.
        detach_thr_feats (bool): stop the threshold loss at the branch input.
            Defaults to False (reference behaviour); ``threshold_loss='q_count'`` always
            stops it.
        threshold_reduction (str): Spatial-BCE reduction in ``'sbce-threshold'``.
            Defaults to ``'side_mean'`` (reference).
        threshold_loss (str): what trains the threshold branch in ``'sbce-threshold'``.
            ``'sbce'`` (default, the paper's Algorithm 1): Spatial-BCE with ``p`` detached,
            ``threshold_reduction``. ``'percentile'``: the branch regresses the threshold
            the classifier sub-phase uses, the percentile of the scaled logits at the
            target fraction Q (smooth L1 on threshold logits; maps with a Q that gives the
            class at least one pixel; logged as ``loss_thr``). Why: the side-mean objective
            has its minima at ``t -> 0`` and ``t -> 1`` whenever the scaled probabilities of
            a map are not clearly bimodal (both sides' uncertainties stay near 1 for any
            threshold inside a compressed distribution, an empty side costs 0), which
            happens at a small logit scale and on weakly separated classes; the branch then
            labels whole images or nothing. The regression has no such minima; on the one
            family member tried it did not reach its targets at the phases' learning rate
            (docs/results.md, "The generated family"). ``'otsu'``: the branch regresses
            Otsu's split of each positive map's unscaled logits
            (:func:`~mmseg_sbce.models.losses.otsu_threshold`, bins over the map's own
            range), compared in the unscaled space ``thr_logits / s`` where inference reads
            it, so the target is a few logits from the branch at any scale; every positive
            map has one, with or without a Q (smooth L1, logged as ``loss_thr``). Otsu's
            criterion, two tight groups, is the side-mean's aim without its edge minima.
            ``'q_count'``: the branch regresses, per image and present class, the fused
            logit that splits the map eq. 9 labels at the count of pixels the current Q
            gives the class (``gt_thr_logits`` of each sample, from
            ``LoadQMap(with_thresholds=True)`` reading the maps the Q was labelled from,
            ``QUpdateHook(save_maps=True)``, refreshed within the phase with
            ``QUpdateHook(refresh_maps=N)``), compared in ``thr_logits / s`` like
            ``'otsu'`` (smooth L1, maps with a target; logged as ``loss_thr``). The
            targets come from the whole image's multi-scale maps, not a crop. The branch is
            then a regressor beside the classifier: its input is always detached (whatever
            ``detach_thr_feats``; with the regression's gradient reaching the backbone the
            maps degraded phase after phase), and it trains in every SBCE iteration, both
            sub-phases (Algorithm 1's alternation keeps the threshold's gradient off ``p``,
            which the stop already does; at one iteration in ``gamma / (gamma - theta)``
            the branch lagged its targets by ~7 logits at the end of phase 1). In the
            classifier sub-phase ``loss_thr`` is added to the Spatial-BCE and KL terms,
            which it does not touch. What it learns is Q's count: where Q is right the
            labels land at or above the best constant threshold, where Q under-labels
            (an initial Q on the objects' most class-specific parts) the phases keep that
            and shrink it; docs/results.md, "The branch regresses that split", has the
            measurements.
        touch_idle_params (bool): add the zero-weighted term described above.
        ignore_index (int): unknown label in the Q map. Defaults to 255.
        align_corners (bool): for resizing logits at inference. Defaults to False.
        loss_bce (dict): baseline loss on GAP logits; its ``loss_name`` is the key.
        loss_sbce (dict): Spatial-BCE loss config.
        loss_kl (dict): proportion KL loss config.
        init_cfg (dict or list[dict], optional): initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 channels: Optional[int] = 128,
                 in_index: int = -1,
                 logit_scale_init: float = 10.0,
                 dropout_ratio: float = 0.0,
                 train_mode: str = 'bce',
                 detach_thr_feats: bool = False,
                 threshold_reduction: str = 'side_mean',
                 threshold_loss: str = 'sbce',
                 touch_idle_params: bool = True,
                 ignore_index: int = 255,
                 align_corners: bool = False,
                 loss_bce: ConfigType = dict(
                     type='CrossEntropyLoss',
                     use_sigmoid=True,
                     avg_non_ignore=True,
                     loss_weight=1.0,
                     loss_name='loss_bce'),
                 loss_sbce: ConfigType = dict(
                     type='SpatialBCELoss', loss_weight=1.0, loss_name='loss_sbce'),
                 loss_kl: ConfigType = dict(
                     type='ProportionKLLoss', loss_weight=1.0, loss_name='loss_kl'),
                 init_cfg: OptMultiConfig = dict(
                     type='Xavier', layer='Conv2d', distribution='uniform')) -> None:
        super().__init__(init_cfg)
        if logit_scale_init <= 0:
            raise ValueError(f'logit_scale_init must be positive, got {logit_scale_init}')
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.out_channels = num_classes
        self.channels = channels or None
        self.in_index = in_index
        self.detach_thr_feats = detach_thr_feats
        self.threshold_reduction = threshold_reduction
        if threshold_loss not in THRESHOLD_LOSSES:
            raise ValueError(f'threshold_loss must be one of {THRESHOLD_LOSSES}, got '
                             f'{threshold_loss!r}')
        self.threshold_loss = threshold_loss
        self.touch_idle_params = touch_idle_params
        self.ignore_index = ignore_index
        self.align_corners = align_corners
        self.logit_scale_init = logit_scale_init

        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else None
        if self.channels:
            self.bottleneck = nn.Conv2d(in_channels, self.channels, 1, bias=False)
            self.conv_cls = nn.Conv2d(self.channels, num_classes, 1, bias=False)
        else:
            self.bottleneck = None
            self.conv_cls = nn.Conv2d(in_channels, num_classes, 1, bias=False)
        self.conv_thr = nn.Conv2d(in_channels, num_classes, 1, bias=False)
        # T_c of the paper; s_c = exp(T_c) keeps the scale positive.
        self.T = nn.Parameter(torch.full((num_classes, ), math.log(logit_scale_init)))
        self.register_buffer('logit_centre', torch.zeros(num_classes))
        self.register_buffer('logit_centre_set', torch.zeros((), dtype=torch.bool))

        self.loss_bce = MODELS.build(loss_bce)
        self.loss_sbce = MODELS.build(loss_sbce)
        self.loss_kl = MODELS.build(loss_kl)
        self._train_mode = 'bce'
        self.set_train_mode(train_mode)

    # ------------------------------------------------------------------ mode and scale
    @property
    def train_mode(self) -> str:
        """str: the current training mode, one of ``TRAIN_MODES``."""
        return self._train_mode

    def set_train_mode(self, mode: str) -> None:
        """Switch the training objective (see the class docstring).

        Args:
            mode (str): ``'bce' | 'sbce-classifier' | 'sbce-threshold'``.
        """
        if mode not in TRAIN_MODES:
            raise ValueError(f'train mode must be one of {TRAIN_MODES}, got {mode!r}')
        self._train_mode = mode

    @property
    def logit_scale(self) -> Tensor:
        """Tensor: per-class logit scale ``exp(T)``, ``[C]``."""
        return self.T.exp()

    def set_logit_centre(self, centre: Tensor) -> None:
        """Set the per-class logit centre (``[C]``, subtracted from the classifier's
        output from now on) and mark it set."""
        self.logit_centre.copy_(centre.to(self.logit_centre))
        self.logit_centre_set.fill_(True)

    def initial_logit_scale_param(self) -> Tensor:
        """Tensor: ``T`` as ``logit_scale_init`` sets it, what a run that never trained
        the scale should start from (:class:`~mmseg_sbce.engine.PhaseSwitchHook` puts it
        in place of the scale of a BCE baseline's checkpoint)."""
        return torch.full_like(self.T.detach(), math.log(self.logit_scale_init))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints written before the logit centre existed have the paper's: 0, unset.
        for name in ('logit_centre', 'logit_centre_set'):
            state_dict.setdefault(prefix + name, torch.zeros_like(getattr(self, name)))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------------ forward
    def _transform_inputs(self, inputs: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """Select the backbone feature the head works on."""
        if torch.is_tensor(inputs):
            return inputs
        return inputs[self.in_index]

    def _forward_feats(self, feats: Tensor, detach_thr: bool = False) -> Tuple[Tensor, Tensor]:
        x = feats if self.dropout is None else self.dropout(feats)
        if self.bottleneck is not None:
            x = self.bottleneck(x)
        cls_logits = self.conv_cls(x) - self.logit_centre.to(x.dtype).view(1, -1, 1, 1)
        pooled = feats.mean(dim=(2, 3), keepdim=True)
        if detach_thr:
            pooled = pooled.detach()
        thr_logits = self.conv_thr(pooled).flatten(1)
        return cls_logits, thr_logits

    def forward(self, inputs: Union[Tensor, Sequence[Tensor]]) -> Tuple[Tensor, Tensor]:
        """Compute the unscaled logit maps and the threshold logits.

        Args:
            inputs (Tensor | Sequence[Tensor]): backbone outputs.

        Returns:
            tuple[Tensor, Tensor]: ``cls_logits [B, C, h, w]`` (no logit scale) and
            ``thr_logits [B, C]`` (pre-sigmoid).
        """
        return self._forward_feats(self._transform_inputs(inputs))

    # ------------------------------------------------------------------------ targets
    def get_targets(self, batch_data_samples: SampleList,
                    device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
        """Stack image labels, target fractions and Q validity from the data samples.

        Args:
            batch_data_samples (list[SegDataSample]): with ``gt_labels`` and optionally
                ``gt_sem_seg`` (the Q map).
            device (torch.device): device of the returned tensors.

        Returns:
            tuple[Tensor, Tensor, Tensor]: ``labels [B, C]`` float, ``fractions [B, C]``
            float in ``[0, 1]``, ``valid [B]`` bool (the sample has a Q map).
        """
        labels, fractions, valid = [], [], []
        C = self.num_classes
        for sample in batch_data_samples:
            gt_labels = sample.get('gt_labels', None)
            if gt_labels is None:
                raise KeyError('SBCEHead needs `gt_labels` (float [C] multi-hot) in every '
                               'data sample; see PackWSSSInputs')
            gt_labels = torch.as_tensor(gt_labels, dtype=torch.float32, device=device)
            if gt_labels.shape != (C, ):
                raise ValueError(f'gt_labels must have shape ({C},), got '
                                 f'{tuple(gt_labels.shape)}')
            labels.append(gt_labels)
            frac = torch.zeros(C, device=device)
            has_q = False
            if 'gt_sem_seg' in sample:
                frac, num_labelled = target_fractions(
                    sample.gt_sem_seg.data.to(device), C, self.ignore_index)
                has_q = num_labelled > 0
            fractions.append(frac)
            valid.append(has_q)
        return (torch.stack(labels), torch.stack(fractions),
                torch.tensor(valid, dtype=torch.bool, device=device))

    def get_thr_targets(self, batch_data_samples: SampleList,
                        device: torch.device) -> Tensor:
        """Stack the threshold targets of ``threshold_loss='q_count'``.

        Returns:
            Tensor: ``[B, C]`` float fused logits, NaN where a map has no target.

        Raises:
            KeyError: a sample has no ``gt_thr_logits`` (the pipeline does not make them).
        """
        targets = []
        for sample in batch_data_samples:
            value = sample.get('gt_thr_logits', None)
            if value is None:
                raise KeyError(
                    "SBCEHead(threshold_loss='q_count') needs `gt_thr_logits` in every data "
                    'sample: set LoadQMap(with_thresholds=True) in the train pipeline and '
                    'QUpdateHook(save_maps=True) so that every Q store keeps its maps')
            value = torch.as_tensor(value, dtype=torch.float32, device=device)
            if value.shape != (self.num_classes, ):
                raise ValueError(f'gt_thr_logits must have shape ({self.num_classes},), '
                                 f'got {tuple(value.shape)}')
            targets.append(value)
        return torch.stack(targets)

    # -------------------------------------------------------------------------- loss
    def loss(self,
             inputs: Union[Tensor, Sequence[Tensor]],
             batch_data_samples: SampleList,
             train_cfg: OptConfigType = None) -> Dict[str, Tensor]:
        """Forward and compute the losses of the current training mode.

        Args:
            inputs (Tensor | Sequence[Tensor]): backbone outputs.
            batch_data_samples (list[SegDataSample]): see :meth:`get_targets`.
            train_cfg (dict, optional): unused, for mmseg API compatibility.

        Returns:
            dict[str, Tensor]: ``loss_bce`` (``'bce'``) or ``loss_sbce`` and ``loss_kl``,
            plus the diagnostics ``mean_thr`` (sbce modes), ``frac_gap`` and ``mean_scale``.
        """
        feats = self._transform_inputs(inputs)
        q_count = self.threshold_loss == 'q_count' and self.train_mode != 'bce'
        detach_thr = q_count or (self.train_mode == 'sbce-threshold'
                                 and self.detach_thr_feats)
        outputs = self._forward_feats(feats, detach_thr=detach_thr)
        labels, fractions, valid = self.get_targets(batch_data_samples, feats.device)
        valid_pixels = self.get_valid_pixels(batch_data_samples, outputs[0].shape[2:],
                                             feats.device)
        thr_targets = None
        if q_count:
            thr_targets = self.get_thr_targets(batch_data_samples, feats.device)
        losses = self.loss_by_feat(outputs, labels, fractions, valid, valid_pixels,
                                   thr_targets)
        if self.touch_idle_params:
            # Zero-weighted term: every trainable head parameter and the backbone (via the
            # features) get a zero gradient even when idle in this mode; see class doc.
            # The sum is taken in float32: a float16 sum of the features overflows to inf,
            # and inf * 0 is NaN.
            touch = upcast_half(feats).sum() * 0.
            for param in self.parameters():
                if param.requires_grad:
                    touch = touch + param.sum() * 0.
            main_key = self._main_loss_name()
            losses[main_key] = losses[main_key] + touch
        return losses

    def loss_by_feat(self,
                     outputs: Tuple[Tensor, Tensor],
                     labels: Tensor,
                     fractions: Tensor,
                     valid: Tensor,
                     valid_pixels: Optional[Tensor] = None,
                     thr_targets: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Compute the losses of the current mode from the head outputs.

        Args:
            outputs (tuple[Tensor, Tensor]): ``cls_logits [B, C, h, w]`` (unscaled) and
                ``thr_logits [B, C]``.
            labels (Tensor): ``[B, C]`` multi-hot.
            fractions (Tensor): ``[B, C]`` target fractions.
            valid (Tensor): ``[B]`` bool, the sample has a Q map.
            valid_pixels (Tensor, optional): bool ``[B, h, w]``, the logit cells on the
                image (see :meth:`get_valid_pixels`); None when no sample is padded.
            thr_targets (Tensor, optional): ``[B, C]`` threshold targets of
                ``threshold_loss='q_count'`` (:meth:`get_thr_targets`, NaN: none);
                needed in both SBCE modes with that loss.

        Returns:
            dict[str, Tensor]: losses and diagnostics (see :meth:`loss`).
        """
        cls_logits, thr_logits = outputs
        labels = labels.to(cls_logits.dtype)
        positive = labels > 0.5
        with_q = positive & valid[:, None]
        losses: Dict[str, Tensor] = {}
        if self.train_mode == 'bce':
            gap_logits = cls_logits.mean(dim=(2, 3))
            losses[self.loss_bce.loss_name] = self.loss_bce(gap_logits, labels)
            losses['frac_gap'] = self._frac_gap(cls_logits, fractions, with_q, valid_pixels)
        else:
            scaled = cls_logits * self.logit_scale.view(1, -1, 1, 1)
            if self.train_mode == 'sbce-classifier':
                # The percentile is taken on the scaled logits (selection commutes with the
                # increasing sigmoid) and the loss works with threshold logits: saturated
                # probabilities would make t = 1 and put every pixel below it.
                thr_logit = percentile_threshold(scaled, fractions, mask=with_q,
                                                 fill_value=0., valid_pixels=valid_pixels)
                # Positive classes without a Q map carry no threshold: drop their terms.
                weight = (~(positive & ~valid[:, None])).to(scaled.dtype)
                loss_sbce = self.loss_sbce(scaled, labels, thr_logit, weight=weight)
                used = with_q
            elif self.threshold_loss == 'percentile':
                thr_logit = thr_logits
                # A present class that Q gives no pixel has the map's maximum as its
                # percentile: "label nothing", not a threshold between object and
                # background, and far larger than the others. Not a target for the branch.
                regress = with_q & (fractions > 0)
                target = percentile_threshold(scaled, fractions, mask=regress, fill_value=0.,
                                              valid_pixels=valid_pixels)
                loss_sbce = _regression(thr_logits, target, regress)
                used = positive
            elif self.threshold_loss == 'otsu':
                thr_logit = thr_logits
                # Otsu's split of each map's logits as inference reads them (no scale; bins
                # over the map's own range). The branch is compared in that space,
                # logit(t') = thr_logits / s (map_threshold), so the target does not depend
                # on the logit scale.
                target = otsu_threshold(cls_logits, mask=positive, value_range=None,
                                        fill_value=0., valid_pixels=valid_pixels)
                unscaled = thr_logits / self.logit_scale.detach().view(1, -1)
                loss_sbce = _regression(unscaled, target, positive)
                used = positive
            elif self.threshold_loss == 'q_count':
                thr_logit = thr_logits
                loss_sbce = self._q_count_loss(thr_logits, positive, thr_targets)
                used = positive
            else:
                thr_logit = thr_logits
                loss_sbce = self.loss_sbce(
                    scaled.detach(),
                    labels,
                    thr_logit,
                    reduction_override=self.threshold_reduction)
                used = positive
            thr = thr_logit.sigmoid()
            losses[self._main_loss_name()] = loss_sbce
            losses[self.loss_kl.loss_name] = self.loss_kl(
                scaled, labels, fractions, valid, valid_pixels=valid_pixels)
            if self.threshold_loss == 'q_count' and self.train_mode == 'sbce-classifier':
                # The branch trains in both sub-phases (class doc); its input is detached.
                losses['loss_thr'] = self._q_count_loss(thr_logits, positive, thr_targets)
            losses['mean_thr'] = _masked_mean(thr.detach(), used)
            losses['frac_gap'] = self._frac_gap(scaled, fractions, with_q, valid_pixels)
        losses['mean_scale'] = self.logit_scale.detach().mean()
        return losses

    def _q_count_loss(self, thr_logits: Tensor, positive: Tensor,
                      thr_targets: Optional[Tensor]) -> Tensor:
        """``threshold_loss='q_count'``: smooth L1 between the branch and the split of
        each fused map at Q's count, in the space inference reads, ``logit(t') =
        thr_logits / s`` (map_threshold), on the positive maps with a target."""
        if thr_targets is None:
            raise ValueError("threshold_loss='q_count' needs thr_targets in the SBCE modes "
                             '(see get_thr_targets)')
        regress = positive & torch.isfinite(thr_targets)
        target = torch.where(regress, thr_targets, torch.zeros_like(thr_targets))
        unscaled = thr_logits / self.logit_scale.detach().view(1, -1)
        return _regression(unscaled, target, regress)

    def _main_loss_name(self) -> str:
        """Key of the current mode's main loss: ``loss_bce``, ``loss_sbce``, or ``loss_thr``
        when the threshold branch regresses a target (``'percentile'``, ``'otsu'``,
        ``'q_count'``)."""
        if self.train_mode == 'bce':
            return self.loss_bce.loss_name
        if self.train_mode == 'sbce-threshold' and self.threshold_loss != 'sbce':
            return 'loss_thr'
        return self.loss_sbce.loss_name

    @staticmethod
    def _frac_gap(logits: Tensor, fractions: Tensor, mask: Tensor,
                  valid_pixels: Optional[Tensor] = None) -> Tensor:
        """Mean ``|predicted fraction - target|`` over the masked maps (0 if none); the
        predicted fraction is the mean of ``sigmoid(logits)`` over the valid pixels."""
        with torch.no_grad():
            if not mask.any():
                return logits.new_zeros(())
            if valid_pixels is None:
                pred = logits[mask].sigmoid().mean(dim=(1, 2))
            else:
                pix = valid_pixels.to(logits.dtype)[:, None].expand_as(logits)[mask]
                pred = (logits[mask].sigmoid() * pix).sum(dim=(1, 2)) / pix.sum(dim=(1, 2))
            return (pred - fractions[mask].to(pred)).abs().mean()

    @staticmethod
    def get_valid_pixels(batch_data_samples: SampleList, size: Sequence[int],
                         device: torch.device) -> Optional[Tensor]:
        """The logit cells of each sample that lie entirely on the image, not on padding.

        mmseg's data preprocessor pads every training crop to one size (image with
        ``pad_val``, Q map with ``seg_pad_val = 255``) and records, per sample,
        ``img_shape`` (the crop before padding) and ``padding_size = (left, right, top,
        bottom)`` (``mmseg.utils.stack_batch``). The target fraction already skips the
        padding (255 is ignored); this mask lets the predicted fraction and the percentile
        skip it too.

        Rule (conservative): the ``h x w`` logit grid spans the padded input ``H x W``, cell
        ``i`` covering input rows ``[i H / h, (i + 1) H / h)``. A cell is valid when its span
        lies entirely inside the image, i.e. rows ``ceil(top h / H) <= i <
        floor((top + img_h) h / H)`` (columns alike), so no cell that sees padding counts;
        at least one cell per sample is kept (an image smaller than one cell).

        Args:
            batch_data_samples (list[SegDataSample]): samples after the data preprocessor.
            size (Sequence[int]): ``(h, w)`` of the logit maps.
            device (torch.device): device of the mask.

        Returns:
            Tensor, optional: bool ``[B, h, w]``; None when no sample is padded (or the
            samples carry no ``padding_size``), which means every cell is valid.
        """
        h, w = size
        paddings = [s.metainfo.get('padding_size', None) for s in batch_data_samples]
        if all(p is None or not any(p) for p in paddings):
            return None
        mask = torch.zeros(len(batch_data_samples), h, w, dtype=torch.bool, device=device)
        for i, (sample, pad) in enumerate(zip(batch_data_samples, paddings)):
            if pad is None or not any(pad):
                mask[i] = True
                continue
            left, right, top, bottom = (int(v) for v in pad)
            img_h, img_w = (int(v) for v in sample.metainfo['img_shape'][:2])
            pad_h, pad_w = top + img_h + bottom, left + img_w + right
            y0, y1 = _inner_cells(top, img_h, pad_h, h)
            x0, x1 = _inner_cells(left, img_w, pad_w, w)
            mask[i, y0:y1, x0:x1] = True
        return mask

    # ------------------------------------------------------------------------ predict
    def predict(self, inputs: Union[Tensor, Sequence[Tensor]], batch_img_metas: List[dict],
                test_cfg: OptConfigType = None) -> Tuple[Tensor, Tensor]:
        """Forward for inference.

        Args:
            inputs (Tensor | Sequence[Tensor]): backbone outputs.
            batch_img_metas (list[dict]): image metas (``pad_shape`` / ``img_shape``).
            test_cfg (dict, optional): unused.

        Returns:
            tuple[Tensor, Tensor]: see :meth:`predict_by_feat`.
        """
        return self.predict_by_feat(self.forward(inputs), batch_img_metas)

    def predict_by_feat(self, outputs: Tuple[Tensor, Tensor],
                        batch_img_metas: List[dict]) -> Tuple[Tensor, Tensor]:
        """Resize the logits to the (padded) input size and map the thresholds.

        Args:
            outputs (tuple[Tensor, Tensor]): ``cls_logits`` and ``thr_logits``.
            batch_img_metas (list[dict]): image metas.

        Returns:
            tuple[Tensor, Tensor]: unscaled logits ``[B, C, H, W]`` at the padded input
            size (bilinear, before the sigmoid, as in the reference) and thresholds
            ``t' = sigmoid(thr_logits / s)`` ``[B, C]`` in the unscaled space.
        """
        cls_logits, thr_logits = outputs
        meta = batch_img_metas[0]
        size = meta.get('pad_shape', meta['img_shape'])[:2]
        seg_logits = resize(
            cls_logits, size=size, mode='bilinear', align_corners=self.align_corners)
        thr = map_threshold(thr_logits, self.logit_scale, from_logits=True)
        return seg_logits, thr


def _inner_cells(start: int, length: int, padded: int, cells: int) -> Tuple[int, int]:
    """Cells ``[first, end)`` of a ``cells``-long grid over ``padded`` input pixels whose
    span lies inside pixels ``[start, start + length)``; at least one cell."""
    first = -(-start * cells // padded)  # ceil
    end = (start + length) * cells // padded  # floor
    first = min(first, cells - 1)
    return first, max(end, first + 1)


def _regression(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Smooth L1 between the branch's threshold logits and their (detached) targets,
    averaged over the masked maps (0 if none)."""
    return _masked_mean(
        F.smooth_l1_loss(pred, target.detach().to(pred), reduction='none'), mask)


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask`` holds, 0 if it never does."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1)
