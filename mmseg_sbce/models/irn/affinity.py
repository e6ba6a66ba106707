# Copyright (c) mmseg-sbce contributors.
"""Inter-pixel affinities from a boundary map, and IRN's affinity loss.

IRN (Ahn, Cho, Kwak, CVPR 2019) never predicts affinities directly: it predicts one
class-boundary probability map ``B`` at stride 4 and defines the affinity of two pixels
``p``, ``q`` within a radius as ``1 - max B`` along the straight segment from ``p`` to ``q``.
A pair separated by a boundary therefore has a low affinity, a pair inside one region a high
one. Training supervises these affinities with pairs drawn from confident seed labels
(:func:`affinity_targets`); inference turns them into the random walk of
:mod:`.random_walk`.

Pairs are enumerated by a fixed set of offsets ``(dy, dx)`` with ``dy**2 + dx**2 < r**2``
taken from one half-plane (``dy > 0``, or ``dy == 0`` and ``dx > 0``): the affinity is
symmetric, so each unordered pair appears exactly once.
"""
from functools import lru_cache
from typing import Dict, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from mmseg.registry import MODELS

IGNORE_INDEX = 255


@lru_cache(maxsize=16)
def pair_offsets(radius: int) -> Tuple[Tuple[int, int], ...]:
    """Half-plane offsets ``(dy, dx)`` with ``0 < dy**2 + dx**2 < radius**2``.

    Args:
        radius (int): the pair radius (in stride-4 pixels), >= 2.

    Returns:
        tuple: offsets ordered by ``dy`` then ``dx``.
    """
    if int(radius) != radius or radius < 2:
        raise ValueError(f'radius must be an integer >= 2, got {radius!r}')
    r = int(radius)
    return tuple((dy, dx) for dy in range(0, r) for dx in range(-r + 1, r)
                 if (dy > 0 or dx > 0) and dy * dy + dx * dx < r * r)


@lru_cache(maxsize=4096)
def path_points(dy: int, dx: int) -> Tuple[Tuple[int, int], ...]:
    """The grid points of the straight segment from ``(0, 0)`` to ``(dy, dx)``, both ends
    included: ``max(|dy|, |dx|) + 1`` evenly spaced points rounded to the grid (so every
    row or column the segment crosses is visited once)."""
    steps = max(abs(dy), abs(dx))
    points = []
    for k in range(steps + 1):
        point = (round(dy * k / steps), round(dx * k / steps))
        if point not in points:
            points.append(point)
    return tuple(points)


def _shifted(padded: Tensor, dy: int, dx: int, height: int, width: int, pad: int) -> Tensor:
    """``x[..., i + dy, j + dx]`` for every ``(i, j)`` of the unpadded map."""
    return padded[..., dy:dy + height, pad + dx:pad + dx + width]


def pair_affinity(boundary: Tensor, radius: int) -> Tuple[Tensor, Tensor]:
    """Affinity of every pair ``(p, p + o)`` for the offsets ``o`` of :func:`pair_offsets`.

    Args:
        boundary (Tensor): ``[N, H, W]`` boundary probabilities in ``[0, 1]``.
        radius (int): the pair radius.

    Returns:
        tuple: ``affinity`` ``[N, O, H, W]`` (``1 - max B`` on the path from ``p`` to
        ``p + o``; differentiable) and ``inside`` ``[O, H, W]`` bool, True where
        ``p + o`` lies inside the map (the other entries are meaningless).
    """
    if boundary.dim() != 3:
        raise ValueError(f'boundary must be [N, H, W], got {tuple(boundary.shape)}')
    offsets = pair_offsets(radius)
    height, width = boundary.shape[-2:]
    pad = int(radius)
    # dy >= 0 always; pad below and on both sides so every shifted view exists.
    padded = nn.functional.pad(boundary, (pad, pad, 0, pad))
    affinities = []
    for dy, dx in offsets:
        on_path = [_shifted(padded, py, px, height, width, pad) for py, px in path_points(dy, dx)]
        affinities.append(1 - torch.stack(on_path, dim=0).amax(dim=0))
    inside = torch.zeros((len(offsets), height, width), dtype=torch.bool,
                         device=boundary.device)
    for k, (dy, dx) in enumerate(offsets):
        inside[k, :max(height - dy, 0), max(-dx, 0):max(width - max(dx, 0), 0)] = True
    return torch.stack(affinities, dim=1), inside


def affinity_targets(seeds: Tensor, radius: int,
                     ignore_index: int = IGNORE_INDEX) -> Tuple[Tensor, Tensor, Tensor]:
    """Positive and negative pairs from seed labels.

    Args:
        seeds (Tensor): ``[N, H, W]`` integer labels at the boundary map's resolution:
            0 background, 1..C classes, ``ignore_index`` unknown.
        radius (int): the pair radius.
        ignore_index (int): label of unknown pixels (pairs touching one are ignored).

    Returns:
        tuple of ``[N, O, H, W]`` bool masks: ``pos_bg`` (both background), ``pos_fg`` (both
        the same foreground class), ``neg`` (both labelled, different labels).
    """
    if seeds.dim() != 3:
        raise ValueError(f'seeds must be [N, H, W], got {tuple(seeds.shape)}')
    height, width = seeds.shape[-2:]
    pad = int(radius)
    seeds = seeds.long()
    # Outside the map counts as unknown, so pairs leaving it are never used.
    padded = nn.functional.pad(seeds, (pad, pad, 0, pad), value=ignore_index)
    src_known = seeds != ignore_index
    pos_bg, pos_fg, neg = [], [], []
    for dy, dx in pair_offsets(radius):
        dst = _shifted(padded, dy, dx, height, width, pad)
        both = src_known & (dst != ignore_index)
        same = both & (dst == seeds)
        pos_bg.append(same & (seeds == 0))
        pos_fg.append(same & (seeds != 0))
        neg.append(both & (dst != seeds))
    return torch.stack(pos_bg, 1), torch.stack(pos_fg, 1), torch.stack(neg, 1)


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values[mask]``; 0 (still attached to the graph) for an empty mask."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


def inter_pixel_affinity_loss(boundary: Tensor,
                              seeds: Tensor,
                              radius: int = 10,
                              ignore_index: int = IGNORE_INDEX,
                              eps: float = 1e-5) -> Tuple[Tensor, Dict[str, Tensor]]:
    """IRN's affinity loss.

    ``L = ((mean_{bg+} -log a + mean_{fg+} -log a) / 2 + mean_{-} -log(1 - a)) / 2`` with
    ``a = 1 - max B`` along the pair's path; each mean runs over the pairs of the whole
    batch, an empty set contributes 0.

    Args:
        boundary (Tensor): ``[N, H, W]`` boundary probabilities.
        seeds (Tensor): ``[N, H, W]`` seed labels at the same resolution.
        radius (int): pair radius.
        ignore_index (int): unknown label.
        eps (float): added inside the logarithms.

    Returns:
        tuple: the scalar loss and a dict of diagnostics (pair counts, per-term means;
        detached).
    """
    if boundary.shape != seeds.shape:
        raise ValueError(f'boundary {tuple(boundary.shape)} and seeds {tuple(seeds.shape)} '
                         'must have the same shape')
    aff, _ = pair_affinity(boundary, radius)
    pos_bg, pos_fg, neg = affinity_targets(seeds, radius, ignore_index)
    bg_term = _masked_mean(-torch.log(aff + eps), pos_bg)
    fg_term = _masked_mean(-torch.log(aff + eps), pos_fg)
    neg_term = _masked_mean(-torch.log(1 + eps - aff), neg)
    loss = ((bg_term + fg_term) / 2 + neg_term) / 2
    stats = dict(pairs_bg=pos_bg.sum().float(), pairs_fg=pos_fg.sum().float(),
                 pairs_neg=neg.sum().float(), aff_bg=bg_term.detach(),
                 aff_fg=fg_term.detach(), aff_neg=neg_term.detach())
    return loss, stats


@MODELS.register_module()
class InterPixelAffinityLoss(nn.Module):
    """IRN's inter-pixel affinity loss (:func:`inter_pixel_affinity_loss`) as a module.

    Args:
        radius (int): pair radius at the boundary map's resolution. Defaults to 10.
        loss_weight (float): multiplier. Defaults to 1.0.
        ignore_index (int): unknown seed label. Defaults to 255.
        loss_name (str): key in the log (must contain ``loss``). Defaults to ``loss_aff``.
    """

    def __init__(self,
                 radius: int = 10,
                 loss_weight: float = 1.0,
                 ignore_index: int = IGNORE_INDEX,
                 loss_name: str = 'loss_aff') -> None:
        super().__init__()
        pair_offsets(radius)  # validates the radius
        self.radius = int(radius)
        self.loss_weight = loss_weight
        self.ignore_index = ignore_index
        self._loss_name = loss_name

    def forward(self, boundary: Tensor, seeds: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        """Weighted loss and diagnostics (see :func:`inter_pixel_affinity_loss`)."""
        loss, stats = inter_pixel_affinity_loss(boundary, seeds, self.radius,
                                                self.ignore_index)
        return self.loss_weight * loss, stats

    @property
    def loss_name(self) -> str:
        return self._loss_name

