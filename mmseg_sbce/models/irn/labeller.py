# Copyright (c) mmseg-sbce contributors.
"""IRN refinement as a labeller of the shared pseudo-label export.

:class:`IRNLabeller` plugs the boundary network and the random walk into
:func:`mmseg_sbce.apis.export_pseudo_labels`, so ``tools/refine_irn.py`` gets the manifest,
resumability, progress bar and worker pool of ``gen_pseudo``: the boundary network runs in
the export's process (:meth:`IRNLabeller.prepare`), :func:`refine_labels` in the workers
(:func:`refine_worker`).

Not imported by ``mmseg_sbce.models.irn`` itself: it builds on ``mmseg_sbce.apis``, which
imports ``mmseg_sbce.models``.
"""
import functools
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch

from ...apis.labeller import PseudoLabeller
from .random_walk import refine_labels, resolve_refine_cfg, stride4_size


def refine_worker(img_rgb: np.ndarray, logits: np.ndarray, thr: Any, pos: np.ndarray,
                  boundary: np.ndarray, cfg: dict) -> np.ndarray:
    """Worker step: :func:`refine_labels` of one image from its saved logits and the
    boundary map computed by :meth:`IRNLabeller.prepare` (``img_rgb`` and ``thr`` are not
    used: the walk needs only the maps and the boundaries)."""
    return refine_labels(torch.from_numpy(np.asarray(logits, np.float32)), pos,
                         torch.from_numpy(boundary), cfg)


class IRNLabeller(PseudoLabeller):
    """Labels saved maps by IRN's random walk over a trained ``IRNBoundaryNet``.

    Args:
        num_classes (int): foreground classes ``C`` of the data set.
        refine_cfg (dict, optional): the walk's settings
            (:data:`~.random_walk.REFINE_CFG_DEFAULTS`).
    """

    def __init__(self, num_classes: int, refine_cfg: Optional[dict] = None) -> None:
        self.num_classes = int(num_classes)
        self.refine_cfg = resolve_refine_cfg(refine_cfg)

    def identity(self) -> Dict[str, Any]:
        """The walk's settings (the network is identified by the caller's checkpoint)."""
        return dict(refine_cfg=self.refine_cfg)

    @torch.no_grad()
    def prepare(self, model: torch.nn.Module, inputs: torch.Tensor, data: dict) -> np.ndarray:
        """The flip-averaged boundary map ``[ceil(H/4), ceil(W/4)]`` (float32 numpy) of the
        packed image ``inputs`` (normalised by the model's data preprocessor)."""
        from mmseg.structures import SegDataSample

        # A fresh sample: a preprocessor with a test_cfg records its padding in it.
        batch = model.data_preprocessor(dict(inputs=[inputs], data_samples=[SegDataSample()]),
                                        False)
        boundary = model.boundary_map(batch['inputs'].float())[0]
        height, width = stride4_size(*inputs.shape[-2:])
        # A preprocessor that pads (bottom/right) gives a larger grid: keep the image's.
        return boundary[:height, :width].float().cpu().numpy()

    def worker(self) -> Callable[..., np.ndarray]:
        """:func:`refine_worker` with this labeller's ``refine_cfg`` (picklable)."""
        return functools.partial(refine_worker, cfg=self.refine_cfg)
