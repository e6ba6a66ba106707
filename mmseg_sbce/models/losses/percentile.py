# Copyright (c) mmseg-sbce contributors.
"""Percentile threshold of the classifier sub-phase (paper Sec. 3.4, Alg. 1)."""
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor


def percentile_index(fraction: Tensor, num_pixels: int) -> Tensor:
    """Index into a descending sort of ``num_pixels`` values for a target fraction.

    ``floor(fraction * num_pixels)`` clamped into ``[0, num_pixels - 1]``: the released code
    indexes out of range at ``fraction == 1``; we take the smallest value instead.

    Args:
        fraction (Tensor): target foreground fractions in ``[0, 1]``, any shape.
        num_pixels (int): number of pixels of one map.

    Returns:
        Tensor: long indices of the same shape as ``fraction``.
    """
    idx = torch.floor(fraction.detach().double() * num_pixels).long()
    return idx.clamp_(0, num_pixels - 1)


@torch.no_grad()
def percentile_threshold(probs: Tensor,
                         fraction: Tensor,
                         mask: Optional[Tensor] = None,
                         fill_value: float = 0.5,
                         valid_pixels: Optional[Tensor] = None) -> Tensor:
    """Value of each probability map at its target foreground fraction.

    For map ``(b, c)`` with ``N = H * W`` pixels this is the value at index
    ``floor(fraction[b, c] * N)`` (clamped into ``[0, N - 1]``) of the map sorted in
    DESCENDING order, i.e. the ``(idx + 1)``-th largest value. So ``fraction = 0`` gives the
    maximum and ``fraction = 1`` the minimum of the map.

    It is a selection, O(N) per map, not a sort: on CPU numpy's introselect
    (``np.partition``), elsewhere :func:`torch.kthvalue`. Both take one rank per call, so
    maps are visited one by one; only the maps in ``mask`` are computed (typically the
    1-3 positive classes of each image). On CPU ``np.partition`` is the fastest of the three
    (``torch.kthvalue``, ``torch.sort``; timings in docs/benchmarks.md).

    Because selection commutes with any increasing function, callers may pass logits
    instead of probabilities and apply ``sigmoid`` to the result (the head does, to avoid a
    sigmoid over every map).

    Args:
        probs (Tensor): probability maps ``[B, C, H, W]`` (or logits, see above).
        fraction (Tensor): target fractions ``[B, C]`` in ``[0, 1]``.
        mask (Tensor, optional): bool ``[B, C]``; only these maps are computed (e.g. the
            positive classes of samples that have a Q map). Defaults to all maps.
        fill_value (float): value returned for maps outside ``mask``.
        valid_pixels (Tensor, optional): bool ``[B, H, W]``, the pixels of each sample that
            lie on the image (not on padding). Given, the selection of map ``(b, c)`` is
            over its valid pixels only and ``N`` is their number. Defaults to all pixels.

    Returns:
        Tensor: detached thresholds ``[B, C]``, same dtype as ``probs``.
    """
    if probs.dim() != 4:
        raise ValueError(f'probs must be [B, C, H, W], got shape {tuple(probs.shape)}')
    B, C, H, W = probs.shape
    if fraction.shape != (B, C):
        raise ValueError(f'fraction must be [B, C] = {(B, C)}, got {tuple(fraction.shape)}')
    num_pixels = H * W
    flat = probs.detach().reshape(B * C, num_pixels)
    out = flat.new_full((B * C, ), fill_value)
    rows = torch.arange(B * C, device=probs.device)
    if mask is not None:
        rows = rows[mask.reshape(-1).to(torch.bool)]
    if rows.numel() == 0:
        return out.view(B, C)
    row_list = rows.tolist()
    if valid_pixels is None:
        # Position in ASCENDING order of the (idx + 1)-th largest value.
        pos = (num_pixels - 1 -
               percentile_index(fraction.reshape(-1)[rows], num_pixels)).tolist()
        keep = None
    else:
        keep = valid_pixel_rows(valid_pixels, B, H, W)
        counts = keep.sum(1).tolist()
        frac_rows = fraction.reshape(-1)[rows]
        pos = [counts[r // C] - 1 - int(percentile_index(f, counts[r // C]))
               for r, f in zip(row_list, frac_rows)]
    if flat.device.type == 'cpu':
        # numpy has no bfloat16; float32 holds every bf16/fp16 value exactly.
        arr = (flat if flat.dtype in (torch.float32, torch.float64) else flat.float()).numpy()
        if keep is None:
            vals = [np.partition(arr[r], k)[k] for r, k in zip(row_list, pos)]
        else:
            keep_np = keep.cpu().numpy()
            vals = [np.partition(arr[r][keep_np[r // C]], k)[k] for r, k in zip(row_list, pos)]
        values = torch.from_numpy(np.asarray(vals, dtype=arr.dtype)).to(flat.dtype)
    else:
        values = torch.stack([
            torch.kthvalue(flat[r] if keep is None else flat[r][keep[r // C]], k + 1).values
            for r, k in zip(row_list, pos)
        ])
    out[rows] = values
    return out.view(B, C)


def valid_pixel_rows(valid_pixels: Tensor, B: int, H: int, W: int) -> Tensor:
    """Check a valid-pixel mask ``[B, H, W]`` (or ``[B, 1, H, W]``); return bool ``[B, H * W]``.

    Raises:
        ValueError: on a wrong shape, or a sample without any valid pixel.
    """
    if valid_pixels.shape not in ((B, H, W), (B, 1, H, W)):
        raise ValueError(f'valid_pixels must be [B, H, W] = {(B, H, W)}, got '
                         f'{tuple(valid_pixels.shape)}')
    keep = valid_pixels.reshape(B, H * W).to(torch.bool)
    if not keep.any(1).all():
        raise ValueError('valid_pixels has a sample without any valid pixel')
    return keep


def count_split(values: np.ndarray, fractions) -> Tuple[np.ndarray, np.ndarray]:
    """Per-map thresholds that label (``value > thr``) the count of highest values nearest
    ``fraction * N``: the percentile of the classifier sub-phase, made a split.

    ``N`` is the number of values of one map. The count starts from the rank
    :func:`percentile_index` gives; where that value is tied (a plateau: eq. 9's fused
    probability is capped below 1, so confident objects are plateaus of equal values), a
    threshold can only label the whole plateau or none of it, and the nearer of the two
    counts to ``fraction * N`` is taken (the smaller one on a tie). The threshold then lies
    in the gap between the lowest labelled and the highest unlabelled value, at its middle
    where the dtype can hold a middle, so it is a split a regression can aim at.

    Args:
        values (np.ndarray): maps ``[K, ...]`` (logits or probabilities; any increasing
            function of them gives the same labelled set).
        fractions (array-like): target fractions ``[K]`` in ``[0, 1]``.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``thr [K]`` in the dtype of ``values`` and
        ``split [K]`` bool: the map is labelled in part. Where it is not, ``thr`` labels
        nothing (the map's maximum) or everything (just below its minimum).
    """
    flat = np.asarray(values).reshape(len(values), -1)
    fractions = np.asarray(fractions, np.float64).reshape(-1)
    if len(fractions) != len(flat):
        raise ValueError(f'{len(flat)} maps but {len(fractions)} fractions')
    num = flat.shape[1]
    if num == 0:
        raise ValueError('count_split needs maps with at least one value')
    ranks = percentile_index(torch.from_numpy(fractions), num).tolist()
    thr = np.empty(len(flat), flat.dtype)
    split = np.zeros(len(flat), bool)
    for k, (row, fraction, rank) in enumerate(zip(flat, fractions, ranks)):
        desc = np.sort(row)[::-1]
        want = fraction * num
        at = desc[rank]
        above, at_or_above = int((desc > at).sum()), int((desc >= at).sum())
        count = at_or_above if abs(at_or_above - want) < abs(above - want) else above
        if count == 0:
            thr[k] = desc[0]
        elif count == num:
            thr[k] = np.nextafter(desc[-1], -np.inf)
        else:
            low, high = desc[count], desc[count - 1]  # highest unlabelled, lowest labelled
            mid = low + (high - low) / 2
            thr[k] = mid if low <= mid < high else low
            split[k] = True
    return thr, split
