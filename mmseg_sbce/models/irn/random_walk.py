# Copyright (c) mmseg-sbce contributors.
"""IRN's random walk with a sparse, radius-limited transition matrix.

The affinity of two stride-4 positions within the radius is ``a = 1 - max B`` on their path
(:func:`.affinity.pair_affinity`); ``A = a ** beta`` with ones on the diagonal; the transition
matrix is ``T = A / colsum(A)``, and the class maps ``x`` (``[K, n]`` rows, the CAMs times
``1 - B``) are propagated as ``x T^(2^t)``.

The published implementation squares a dense ``n x n`` matrix ``t`` times, ``n = H/4 * W/4``
(about 1 GB for a 512 x 512 image). Here ``x T^(2^t)`` is computed as ``2^t`` products with
the sparse ``T`` instead (matrix products are associative, so the result is the same up to
float rounding): memory is ``O(n * offsets)`` and time ``O(2^t * n * offsets * K)``. Because
``A`` is symmetric, ``(x T)^T = D^-1 A x^T`` with ``D`` the row sums, so the matrix kept is
the row-normalised ``D^-1 A`` in CSR form.

A constant background map would pass through the walk unchanged (every column of ``T``
sums to 1), so, as in IRN, the background enters after the walk as a constant score plane.
"""
import math
import warnings
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..labelling import cam_from_logits
from .affinity import pair_affinity, pair_offsets

IGNORE_INDEX = 255

#: Defaults of the refinement (``refine_cfg``), the project notes' values: ``radius`` of the
#: walk's neighbourhood in stride-4 pixels (the radius of the training pairs, 10; the
#: published IRN code's semantic-label step uses 5: a quarter of the neighbours, a faster
#: walk, docs/benchmarks.md), ``beta`` the affinity exponent, ``exp_times`` the number of
#: squarings (``2 ** exp_times`` steps), ``bg_threshold`` the background score after
#: normalising by the global maximum.
REFINE_CFG_DEFAULTS = dict(radius=10, beta=10.0, exp_times=8, bg_threshold=0.25)


def resolve_refine_cfg(cfg: Optional[dict] = None) -> dict:
    """:data:`REFINE_CFG_DEFAULTS` updated by ``cfg``; unknown keys and bad values raise."""
    out = dict(REFINE_CFG_DEFAULTS)
    for key, value in dict(cfg or {}).items():
        if key not in out:
            raise KeyError(f'unknown key "{key}" in refine_cfg; known keys: {sorted(out)}')
        out[key] = value
    pair_offsets(out['radius'])
    if out['beta'] <= 0:
        raise ValueError(f'refine_cfg.beta must be positive, got {out["beta"]}')
    if int(out['exp_times']) != out['exp_times'] or out['exp_times'] < 0:
        raise ValueError(f'refine_cfg.exp_times must be a non-negative integer, got '
                         f'{out["exp_times"]}')
    if not 0.0 <= out['bg_threshold'] < 1.0:
        raise ValueError(f'refine_cfg.bg_threshold must be in [0, 1), got '
                         f'{out["bg_threshold"]}')
    return out


def sparse_transition(boundary: Tensor, radius: int = 10, beta: float = 10.0) -> Tensor:
    """The row-normalised affinity matrix ``D^-1 A`` (the transpose of IRN's ``T``).

    Args:
        boundary (Tensor): ``[h, w]`` boundary probabilities (float32 or float64).
        radius (int): neighbourhood radius.
        beta (float): affinity exponent.

    Returns:
        Tensor: sparse CSR ``[n, n]``, ``n = h * w``, with the dtype of ``boundary``.
    """
    if boundary.dim() != 2:
        raise ValueError(f'boundary must be [h, w], got {tuple(boundary.shape)}')
    height, width = boundary.shape
    n = height * width
    aff, inside = pair_affinity(boundary[None], radius)
    aff = aff[0].clamp(min=0).pow(beta)
    rows, cols, vals = [], [], []
    grid = torch.arange(n, device=boundary.device).reshape(height, width)
    for k, (dy, dx) in enumerate(pair_offsets(radius)):
        mask = inside[k]
        src = grid[mask]
        rows.append(src)
        cols.append(src + dy * width + dx)
        vals.append(aff[k][mask])
    src, dst, val = torch.cat(rows), torch.cat(cols), torch.cat(vals)
    diag = torch.arange(n, device=boundary.device)
    index = torch.stack([torch.cat([src, dst, diag]), torch.cat([dst, src, diag])])
    values = torch.cat([val, val, torch.ones(n, dtype=boundary.dtype,
                                             device=boundary.device)])
    degree = torch.zeros(n, dtype=boundary.dtype, device=boundary.device)
    degree.index_add_(0, index[0], values)
    values = values / degree[index[0]]
    # Each (row, col) occurs once: the offsets are a half plane, mirrored once.
    coo = torch.sparse_coo_tensor(index, values, (n, n), check_invariants=False).coalesce()
    with warnings.catch_warnings():
        # CSR is "beta" in torch; its matrix product is the fast one on CPU and GPU.
        warnings.filterwarnings('ignore', message='Sparse CSR tensor support')
        return coo.to_sparse_csr()


def random_walk(maps: Tensor, boundary: Tensor, radius: int = 10, beta: float = 10.0,
                exp_times: int = 8) -> Tensor:
    """Propagate ``maps * (1 - B)`` by ``2 ** exp_times`` steps of the walk.

    Args:
        maps (Tensor): ``[K, h, w]`` class maps at the boundary map's resolution.
        boundary (Tensor): ``[h, w]`` boundary probabilities.
        radius, beta, exp_times: see :data:`REFINE_CFG_DEFAULTS`.

    Returns:
        Tensor: ``[K, h, w]`` propagated maps (``x T^(2^exp_times)``).
    """
    if maps.dim() != 3 or tuple(maps.shape[1:]) != tuple(boundary.shape):
        raise ValueError(f'maps [K, h, w] {tuple(maps.shape)} must match the boundary map '
                         f'{tuple(boundary.shape)}')
    num, height, width = maps.shape
    if num == 0:
        return maps.clone()
    trans = sparse_transition(boundary, radius, beta)
    x = (maps * (1 - boundary)).reshape(num, -1).t().contiguous().to(boundary.dtype)
    for _ in range(2**int(exp_times)):
        x = trans @ x
    return x.t().reshape(num, height, width)


def stride4_size(height: int, width: int) -> tuple:
    """The stride-4 grid of an ``H x W`` image: ``(ceil(H / 4), ceil(W / 4))``."""
    return math.ceil(height / 4), math.ceil(width / 4)


def refine_labels(logits: Tensor,
                  classes: Sequence[int],
                  boundary: Tensor,
                  cfg: Optional[dict] = None) -> np.ndarray:
    """IRN's semantic labels of one image from its class logits and boundary map.

    The CAMs (max-normalised ReLU of the logits of the image's positive classes) are
    area-downsampled to the stride-4 grid, propagated by :func:`random_walk`, upsampled x4
    (bilinear) to the image, divided by their global maximum, and labelled by argmax over
    ``[bg_threshold, maps...]``.

    Args:
        logits (Tensor): ``[K, H, W]`` unscaled logits of the positive classes (the saved
            maps of ``gen_pseudo --save-probs``).
        classes (Sequence[int]): ``[K]`` their class indices ``0..C-1``.
        boundary (Tensor): ``[ceil(H/4), ceil(W/4)]`` boundary probabilities.
        cfg (dict, optional): ``refine_cfg`` (:data:`REFINE_CFG_DEFAULTS`).

    Returns:
        np.ndarray: ``[H, W]`` uint8 label map, 0 background, ``c + 1`` class ``c``.
    """
    cfg = resolve_refine_cfg(cfg)
    classes = np.asarray(classes, np.int64).reshape(-1)
    num, height, width = logits.shape
    if len(classes) != num:
        raise ValueError(f'{num} class maps but {len(classes)} class indices')
    grid = stride4_size(height, width)
    if tuple(boundary.shape) != grid:
        raise ValueError(f'the boundary map must be the stride-4 grid {grid} of the '
                         f'{height}x{width} image, got {tuple(boundary.shape)}')
    if num == 0:
        return np.zeros((height, width), np.uint8)
    cams = cam_from_logits(logits.float())
    small = F.interpolate(cams[None], size=grid, mode='area')[0]
    walked = random_walk(small.to(boundary.dtype), boundary, cfg['radius'], cfg['beta'],
                         cfg['exp_times'])
    up = F.interpolate(walked[None].float(), scale_factor=4, mode='bilinear',
                       align_corners=False)[0, :, :height, :width]
    up = up / up.max().clamp(min=1e-5)
    scores = torch.cat([up.new_full((1, height, width), cfg['bg_threshold']), up])
    compact = scores.argmax(0).numpy()
    lut = np.concatenate([[0], classes + 1]).astype(np.uint8)
    return lut[compact]
