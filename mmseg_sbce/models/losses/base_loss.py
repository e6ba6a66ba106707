# Copyright (c) mmseg-sbce contributors.
"""What every loss module of this package shares: the mmseg loss API's weight and name."""
import torch.nn as nn


class BaseLoss(nn.Module):
    """Holds ``loss_weight`` and ``loss_name`` the way mmseg's losses expose them.

    mmseg heads key their loss dict by ``loss_name`` and mmengine back-propagates every key
    that contains ``loss``, so the name must start with ``loss_``.

    Args:
        loss_weight (float): multiplier of the loss.
        loss_name (str): key of the loss in the loss dict; must start with ``loss_`` to
            be back-propagated.
    """

    def __init__(self, loss_weight: float, loss_name: str) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        """str: key of this loss in the loss dict."""
        return self._loss_name
