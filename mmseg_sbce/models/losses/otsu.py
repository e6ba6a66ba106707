# Copyright (c) mmseg-sbce contributors.
"""Otsu's threshold of each map: the target of ``threshold_loss='otsu'``."""
from typing import Optional, Tuple

import torch
from torch import Tensor

from .percentile import valid_pixel_rows


@torch.no_grad()
def otsu_threshold(values: Tensor,
                   mask: Optional[Tensor] = None,
                   bins: int = 256,
                   value_range: Optional[Tuple[float, float]] = (0., 1.),
                   fill_value: float = 0.5,
                   valid_pixels: Optional[Tensor] = None) -> Tensor:
    """Otsu's threshold of each map: the split of its values into two groups with the
    largest between-group variance (equivalently, the smallest within-group variance).

    Why this rule for the threshold branch: the paper's threshold sub-phase looks for the
    ``t`` that leaves the pixels of both sides as far from ``t`` as possible (least
    uncertain). Its side-mean reduction scores a side without pixels as 0, so on a map
    that is not clearly two-peaked its minima are ``t -> 0`` and ``t -> 1`` (label all or
    nothing; docs/results.md). Otsu's criterion states the same aim as "two tight groups";
    putting every pixel on one side is its worst score (the whole variance), never its
    best, so it always splits inside the map's range, and it needs no ground truth and no
    parameter.

    Values are binned into ``bins`` equal bins over ``value_range`` (``[0, 1]`` for
    probabilities; ``None``: each map's own ``[min, max]``, for logits); the threshold
    returned is the upper edge of the last bin of the lower group, so ``v > t`` selects
    the upper group. Where several splits score the same (an empty gap between two groups), the
    middle of the gap is taken, the point farthest from both. A map whose values all fall
    in one bin has no split: its threshold is that bin's upper edge (nothing above it).

    Args:
        values (Tensor): ``[B, C, H, W]`` maps (values outside ``value_range`` are
            clipped into it).
        mask (Tensor, optional): bool ``[B, C]``; only these maps are computed. Defaults
            to all maps.
        bins (int): histogram bins. Defaults to 256.
        value_range (tuple[float, float], optional): the range the bins cover; ``None``
            for each map's own range (over its valid pixels). Defaults to ``(0, 1)``.
        fill_value (float): value returned for maps outside ``mask``.
        valid_pixels (Tensor, optional): bool ``[B, H, W]``, the pixels on the image (not
            on padding); only those are counted. Defaults to all pixels.

    Returns:
        Tensor: detached thresholds ``[B, C]`` (in ``(lo, hi]`` of the range), float32
        for half inputs, else the dtype of ``values``.
    """
    if values.dim() != 4:
        raise ValueError(f'values must be [B, C, H, W], got shape {tuple(values.shape)}')
    if bins < 2:
        raise ValueError(f'bins must be at least 2, got {bins}')
    if value_range is not None and not value_range[0] < value_range[1]:
        raise ValueError(f'value_range must be (low, high) with low < high, got '
                         f'{value_range}')
    B, C, H, W = values.shape
    dtype = values.dtype if values.dtype in (torch.float32, torch.float64) else torch.float32
    flat = values.detach().to(dtype).reshape(B * C, H * W)
    out = flat.new_full((B * C, ), fill_value)
    rows = torch.arange(B * C, device=values.device)
    if mask is not None:
        if mask.shape != (B, C):
            raise ValueError(f'mask must be [B, C] = {(B, C)}, got {tuple(mask.shape)}')
        rows = rows[mask.reshape(-1).to(torch.bool)]
    if rows.numel() == 0:
        return out.view(B, C)
    maps = flat[rows]
    if valid_pixels is None:
        weights = torch.ones_like(maps)
    else:
        keep = valid_pixel_rows(valid_pixels, B, H, W)
        weights = keep[rows // C].to(dtype)
    if value_range is None:
        lo = torch.where(weights > 0, maps, maps.new_tensor(float('inf'))).amin(1, True)
        hi = torch.where(weights > 0, maps, maps.new_tensor(float('-inf'))).amax(1, True)
    else:
        lo = maps.new_full((rows.numel(), 1), value_range[0])
        hi = maps.new_full((rows.numel(), 1), value_range[1])
    width = (hi - lo).clamp(min=torch.finfo(dtype).tiny)
    unit = ((maps - lo) / width).clamp(0, 1)
    idx = (unit * bins).long().clamp_(max=bins - 1)
    hist = maps.new_zeros(rows.numel(), bins).scatter_add_(1, idx, weights)
    centres = (torch.arange(bins, dtype=dtype, device=values.device) + 0.5) / bins
    n_low = hist.cumsum(1)
    s_low = (hist * centres).cumsum(1)
    n_all, s_all = n_low[:, -1:], s_low[:, -1:]
    n_high = n_all - n_low
    # Between-group variance (up to the constant 1 / n^2): n_low n_high (mu_low - mu_high)^2,
    # written without divisions: (s_low n_all - s_all n_low)^2 / (n_low n_high).
    num = (s_low * n_all - s_all * n_low).square()
    den = n_low * n_high
    between = torch.where(den > 0, num / den.clamp(min=1e-12), torch.full_like(num, -1.))
    best = between.max(1, keepdim=True).values
    tied = between >= best - best.abs() * 1e-6
    first = tied.to(dtype).argmax(1)
    last = bins - 1 - tied.flip(1).to(dtype).argmax(1)
    split = (first + last).div(2, rounding_mode='floor')
    # No split anywhere (one occupied bin): the upper edge of the occupied bin.
    no_split = best.squeeze(1) < 0
    top_bin = (hist > 0).to(dtype).cumsum(1).argmax(1)
    split = torch.where(no_split, top_bin, split)
    out[rows] = lo.squeeze(1) + width.squeeze(1) * (split + 1).to(dtype) / bins
    return out.view(B, C)
