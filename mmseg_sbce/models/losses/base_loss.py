# Copyright (c) mmseg-sbce contributors.
"""What the losses of this package share: the loss API's weight and name, float32 sums."""
import torch
import torch.nn as nn
from torch import Tensor

HALF_DTYPES = (torch.float16, torch.bfloat16)


def upcast_half(tensor: Tensor) -> Tensor:
    """``tensor`` in float32 if it is float16 or bfloat16, otherwise the same tensor.

    The losses reduce over ``B x C x H x W`` terms: in float16 such sums overflow (its
    largest value is 65504) and in bfloat16 they keep 8 bits of mantissa, so half-precision
    inputs (what a head emits under AMP) are cast to float32 before any arithmetic. Tensors
    of any other dtype are returned as they are, so float32 and float64 computations are
    unchanged by the call; gradients flow back through the cast in the input's dtype.

    Args:
        tensor (Tensor): any tensor.

    Returns:
        Tensor: float32 for half-precision input, else ``tensor`` itself.
    """
    return tensor.float() if tensor.dtype in HALF_DTYPES else tensor


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
