# Copyright (c) mmseg-sbce contributors.
"""Multi-scale + flip inference of the classifier (paper sec. 4.2).

The model interface it needs (``SBCEClassifier`` provides it; wrappers such as DDP are
unwrapped):

* ``extract_maps(inputs) -> (cls_logits [B, C, h, w], thr_logits [B, C] or None)``: the
  unscaled class logits and the threshold logits of a batch;
* ``map_threshold_logits(thr_logits) -> t'``: the threshold mapped into the unscaled space
  (only called when ``extract_maps`` returns threshold logits);
* ``num_classes`` (``C``) and ``data_preprocessor``.
"""
import contextlib
import math
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..utils.parallel import unwrap_model
from .label_maps import positive_classes
from .pseudo_cfg import AMP_DTYPES, FUSIONS, PSEUDO_CFG_DEFAULTS

#: Probabilities fused with ``fusion='probs'`` are kept in ``[EPS, 1 - EPS]`` when they are
#: turned back into logits (``|x| <= 16.1``; float32 resolves ``1 - EPS``).
FUSED_PROB_EPS = 1e-7


def _preprocess(model: torch.nn.Module, img: torch.Tensor) -> torch.Tensor:
    """A packed image ``[3, H, W]`` (uint8) -> ``[1, 3, H', W']`` through the model's
    data preprocessor (BGR->RGB, normalisation, test-time padding)."""
    from mmseg.structures import SegDataSample
    if img.dim() == 4:
        img = img[0]
    data = model.data_preprocessor(
        dict(inputs=[img], data_samples=[SegDataSample()]), training=False)
    return data['inputs']


def device_of(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without any)."""
    for p in model.parameters():
        return p.device
    return torch.device('cpu')


def num_classes_of(model: torch.nn.Module) -> int:
    """``C``, the model's ``num_classes`` (a clear error when it has none)."""
    num_classes = getattr(model, 'num_classes', None)
    if not isinstance(num_classes, int):
        raise AttributeError(f'{type(model).__name__} has no integer num_classes: the '
                             'pseudo-label export needs the number of foreground classes')
    return num_classes


def pass_sizes(height: int, width: int, scales: Sequence[float],
               min_side: Optional[int] = PSEUDO_CFG_DEFAULTS['min_side'],
               max_pixels: Optional[int] = PSEUDO_CFG_DEFAULTS['max_pixels']
               ) -> List[Tuple[int, int]]:
    """The ``(h, w)`` of each multi-scale pass of a ``height x width`` network input.

    The rule of ``pseudo_cfg.min_side`` / ``max_pixels`` (see ``PSEUDO_CFG_DEFAULTS``): the
    image is first resized by one factor ``f`` (aspect kept), then by each scale:
    ``f = min_side / min(height, width)`` when the shorter side is below ``min_side``,
    else ``f = sqrt(max_pixels / pixels of the largest pass)`` when that pass is above
    ``max_pixels``, else 1 (the passes are exactly ``round(side * scale)``).

    Args:
        height (int): Input height.
        width (int): Input width.
        scales (Sequence[float]): The scales.
        min_side (int, optional): Minimum shorter side before scaling (None/0: off).
        max_pixels (int, optional): Maximum pixels of the largest pass (None/0: off).

    Returns:
        list[tuple[int, int]]: One size per scale, in order, each side at least 1.
    """
    factor = 1.0
    largest = height * width * max(scales) ** 2
    if min_side and min(height, width) < min_side:
        factor = min_side / min(height, width)
    elif max_pixels and largest > max_pixels:
        factor = math.sqrt(max_pixels / largest)
    # factor 1.0: the very expressions of the uncapped passes (bit-identical sizes).
    return [(max(1, int(round(height * scale * factor))),
             max(1, int(round(width * scale * factor)))) if factor != 1.0 else
            (max(1, int(round(height * scale))), max(1, int(round(width * scale))))
            for scale in scales]


def autocast_context(amp: Optional[str], device: torch.device) -> Any:
    """The autocast context of the network passes for ``pseudo_cfg.amp``.

    Args:
        amp (str, optional): None (float32, no autocast: today's path, bit-identical),
            ``'bf16'`` or ``'fp16'``.
        device (torch.device): the model's device.

    Returns:
        A context manager: ``torch.autocast`` of the device type and dtype, or a null
        context for None.

    Raises:
        ValueError: an unknown ``amp``, or ``'fp16'`` on a CPU (CPU autocast computes in
            bfloat16 only).
    """
    if amp is None:
        return contextlib.nullcontext()
    if amp not in AMP_DTYPES:
        raise ValueError(f'pseudo_cfg.amp must be None or one of {sorted(AMP_DTYPES)}, '
                         f'got {amp!r}')
    if amp == 'fp16' and device.type == 'cpu':
        raise ValueError("pseudo_cfg.amp='fp16' needs a CUDA device (CPU autocast supports "
                         "bfloat16 only); use amp='bf16' on a CPU")
    return torch.autocast(device.type, dtype=getattr(torch, AMP_DTYPES[amp]))


@torch.no_grad()
def _multi_scale_logits(model: torch.nn.Module, inputs: torch.Tensor, out_hw: Tuple[int, int],
                        pos: Optional[np.ndarray], scales: Sequence[float], flip: bool,
                        fusion: str = 'logits', min_side: Optional[int] = None,
                        max_pixels: Optional[int] = None, amp: Optional[str] = None
                        ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Fused logits of the passes (positive channels only when ``pos`` is given) and the
    mean threshold logits ``[C]``. ``fusion='logits'``: mean of the upsampled, flipped-back
    logits; ``'probs'``: ``logit`` of the mean of the upsampled, flipped-back
    probabilities (clamped to ``[FUSED_PROB_EPS, 1 - FUSED_PROB_EPS]``). The pass sizes
    follow :func:`pass_sizes`; every pass is upsampled back to the input's size. Only the
    network runs under ``amp`` (:func:`autocast_context`): its outputs are cast to float32
    before the fusion, so resizing, fusion and everything after stay float32."""
    autocast = autocast_context(amp, inputs.device)
    height, width = inputs.shape[-2:]
    sel = None if pos is None else torch.as_tensor(pos, dtype=torch.long,
                                                   device=inputs.device)
    logit_sum, thr_sum, passes = None, None, 0
    for size in pass_sizes(height, width, scales, min_side, max_pixels):
        x = inputs if size == (height, width) else F.interpolate(
            inputs, size=size, mode='bilinear', align_corners=False)
        # The flipped copy rides in the same batch: one forward per scale.
        batch = torch.cat([x, x.flip(-1)], dim=0) if flip else x
        with autocast:
            cls_logits, thr_logits = model.extract_maps(batch)
        if sel is not None:
            cls_logits = cls_logits.index_select(1, sel)
        cls_logits = cls_logits.float()
        if fusion == 'probs':
            cls_logits = cls_logits.sigmoid()
        # Bilinear resizing (align_corners=False) commutes with the horizontal flip and is
        # linear, so flipping back and summing at the low resolution, then upsampling once,
        # equals upsampling both maps: half the full-resolution work.
        low = cls_logits[0] + cls_logits[1].flip(-1) if flip else cls_logits[0]
        up_sum = F.interpolate(low[None], size=(height, width), mode='bilinear',
                               align_corners=False)[0]
        logit_sum = up_sum if logit_sum is None else logit_sum + up_sum
        if thr_logits is not None:
            t = thr_logits.float().reshape(batch.shape[0], -1).sum(0)
            thr_sum = t if thr_sum is None else thr_sum + t
        passes += batch.shape[0]
    mean = logit_sum / passes
    mean = mean[:, :out_hw[0], :out_hw[1]]  # drop test-time padding (bottom/right)
    if fusion == 'probs':
        mean = torch.logit(mean.clamp(FUSED_PROB_EPS, 1 - FUSED_PROB_EPS))
    return mean, (None if thr_sum is None else thr_sum / passes)


class EvalMode:
    """``model.eval()`` + ``torch.no_grad`` for a block; restores every module's own
    training flag afterwards (so frozen-BN backbones keep their mode)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        self.grad = torch.no_grad()
        self.grad.__enter__()
        return self.model

    def __exit__(self, *exc):
        self.grad.__exit__(*exc)
        for module, mode in self.modes:
            module.training = mode
        return False


def infer_maps(model: torch.nn.Module, img: torch.Tensor, pos: Optional[np.ndarray],
               scales: Sequence[float], flip: bool, preprocess: Optional[bool],
               fusion: str = 'logits',
               min_side: Optional[int] = PSEUDO_CFG_DEFAULTS['min_side'],
               max_pixels: Optional[int] = PSEUDO_CFG_DEFAULTS['max_pixels'],
               amp: Optional[str] = PSEUDO_CFG_DEFAULTS['amp']
               ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Fused logits of the ``pos`` channels ``[K, H, W]`` (all channels when ``pos`` is
    None) and the mapped thresholds ``[C]`` (None without a threshold branch), on CPU.

    The model must already be in eval mode (see :class:`EvalMode`); the arguments are those
    of :func:`multi_scale_maps`.
    """
    if preprocess is None:
        preprocess = img.dtype == torch.uint8 or img.dim() == 3
    device = device_of(model)
    if preprocess:
        out_hw = tuple(img.shape[-2:])
        inputs = _preprocess(model, img.to(device))
    else:
        inputs = img.to(device)
        if inputs.dim() == 3:
            inputs = inputs[None]
        out_hw = tuple(inputs.shape[-2:])
    if fusion not in FUSIONS:
        raise ValueError(f'fusion must be one of {FUSIONS}, got {fusion!r}')
    logits, thr_logit = _multi_scale_logits(model, inputs, out_hw, pos, scales, flip, fusion,
                                            min_side, max_pixels, amp)
    logits = logits.cpu()
    # The mean of the passes' threshold logits is mapped once (not the mean of the mapped
    # thresholds); the mapping is the model's own (its logit scale).
    thr = None if thr_logit is None else model.map_threshold_logits(thr_logit.cpu())
    return logits, thr


def multi_scale_maps(model: torch.nn.Module,
                     img: torch.Tensor,
                     gt_labels: Any = None,
                     scales: Sequence[float] = (1.0, 0.5, 1.5, 2.0),
                     flip: bool = True,
                     preprocess: Optional[bool] = None,
                     logits: bool = False,
                     fusion: str = 'logits',
                     min_side: Optional[int] = PSEUDO_CFG_DEFAULTS['min_side'],
                     max_pixels: Optional[int] = PSEUDO_CFG_DEFAULTS['max_pixels'],
                     amp: Optional[str] = PSEUDO_CFG_DEFAULTS['amp']
                     ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Multi-scale (+ flip) class probabilities (or logits) and the mapped adaptive
    threshold.

    Each scale is one forward pass of a batch ``[image, flipped image]``; the unscaled
    classifier logits (no logit scale, as at inference in the paper) are upsampled bilinearly
    to the image size, flipped back and averaged over all passes, then ``probs =
    sigmoid(mean)`` (``fusion='logits'``); or their probabilities are upsampled and averaged
    (``fusion='probs'``, see ``PSEUDO_CFG_DEFAULTS``). Thresholds: ``t = sigmoid(mean of
    the threshold logits over passes)`` mapped once to ``t' = sigmoid(logit(t) / s_c)`` by
    the model's ``map_threshold_logits``. Runs under ``torch.no_grad`` in eval mode and
    restores every module's training flag afterwards.

    Args:
        model (nn.Module): a classifier with the interface in the module docstring
            (wrappers such as DDP are unwrapped).
        img (Tensor): a packed image ``[3, H, W]`` (uint8, as from the dataset pipeline; run
            through ``model.data_preprocessor``) or an already preprocessed ``[1, 3, H, W]``
            float tensor.
        gt_labels: image labels (multi-hot ``[C]`` or class indices); absent classes get
            probability 0. None keeps every class.
        scales (Sequence[float]): image scales.
        flip (bool): add horizontal flips.
        preprocess (bool, optional): force (True) or skip (False) the data preprocessor;
            None decides from the tensor (uint8 or 3-D -> preprocess).
        logits (bool): return the fused logits ``x`` instead of ``sigmoid(x)`` (what the
            CAM rule needs, see :func:`mmseg_sbce.models.labelling.cam_from_logits`); absent
            classes then get ``-inf``.
        fusion (str): ``'logits'`` or ``'probs'``; with ``'probs'`` the returned logits are
            ``logit`` of the mean probability (clamped to ``FUSED_PROB_EPS``).
        min_side (int, optional): see :func:`pass_sizes`.
        max_pixels (int, optional): see :func:`pass_sizes`.
        amp (str, optional): autocast of the network passes (``pseudo_cfg.amp``): None
            (float32), ``'bf16'`` or ``'fp16'`` (CUDA only); see :func:`autocast_context`.

    Returns:
        tuple: ``probs`` (or logits) ``[C, H, W]`` float32 and ``thr`` ``[C]`` float32
        (mapped ``t'``; None if the model has no threshold branch), both on CPU.
    """
    model = unwrap_model(model)
    with EvalMode(model):
        maps, thr = infer_maps(model, img, None, scales, flip, preprocess, fusion, min_side,
                               max_pixels, amp)
    if not logits:
        maps = maps.sigmoid()
    if gt_labels is not None:
        pos = positive_classes(gt_labels, maps.shape[0])
        keep = torch.zeros(maps.shape[0], dtype=torch.bool)
        keep[torch.as_tensor(pos, dtype=torch.long)] = True
        maps[~keep] = float('-inf') if logits else 0.0
    return maps, thr
