# Copyright (c) mmseg-sbce contributors.
from .compat import (allow_mmengine_checkpoint_globals, import_mmpretrain_transforms,
                     init_cpu_distributed, install_mmcv_ext_stub, make_config_cpu_safe)

__all__ = [
    'allow_mmengine_checkpoint_globals', 'import_mmpretrain_transforms',
    'init_cpu_distributed', 'install_mmcv_ext_stub', 'make_config_cpu_safe'
]
