# Copyright (c) mmseg-sbce contributors.
"""Target foreground fraction of a Q map: what the KL term and the percentile aim at."""
from typing import Tuple

import torch
from torch import Tensor


def target_fractions(seg_map: Tensor, num_classes: int,
                     ignore_index: int) -> Tuple[Tensor, int]:
    """Per-class foreground fraction of one label map (the ``Q`` of paper eq. 6-8).

    ``count(map == c + 1) / count(map != ignore_index)`` for ``c = 0..C-1``: id 0 is the
    background, ``1..C`` the classes, ``ignore_index`` unknown (dCRF's unsure pixels and the
    padding the data preprocessor adds). Other ids (negative or above ``C``) are labelled
    pixels of no foreground class: they count in the denominator only. The map is counted
    at its own resolution; the result is a scalar per class, so it does not depend on the
    resolution of the logits it is compared with.

    Args:
        seg_map (Tensor): integer label map of any shape (typically ``[1, H, W]``).
        num_classes (int): ``C``, the number of foreground classes.
        ignore_index (int): the unknown label; must not be a class id ``0..C``.

    Returns:
        tuple[Tensor, int]: float32 fractions ``[C]`` on ``seg_map``'s device, and the
        number of labelled (non-ignored) pixels; zeros and 0 when there is none.
    """
    if 0 <= ignore_index <= num_classes:
        raise ValueError(f'ignore_index {ignore_index} is a class id of a map with '
                         f'{num_classes} foreground classes (ids 0..{num_classes})')
    seg = seg_map.reshape(-1).long()
    seg = seg[seg != ignore_index]
    num_labelled = seg.numel()
    if num_labelled == 0:
        return torch.zeros(num_classes, device=seg_map.device), 0
    # Ids outside 0..C land in bins 0 and C + 1, which are not returned.
    seg = seg.clamp(0, num_classes + 1)
    counts = torch.bincount(seg, minlength=num_classes + 2)[1:num_classes + 1]
    return counts.float() / num_labelled, num_labelled
