# Copyright (c) mmseg-sbce contributors.
"""What the backbones share: frozen stages and ``norm_eval`` kept through ``train()``."""
from torch.nn.modules.batchnorm import _BatchNorm


class FrozenStagesMixin:
    """``train()`` that keeps the first ``frozen_stages`` stages, and with ``norm_eval`` every
    batch norm, in eval mode (as mmseg's ResNet).

    The class provides ``_freeze_stages()`` and the attributes ``norm_eval``.
    """

    def train(self, mode: bool = True):
        """Set train mode, keeping frozen stages (and norms with ``norm_eval``) in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self
