# Copyright (c) mmseg-sbce contributors.
from .compat import (allow_mmengine_checkpoint_globals, import_mmpretrain_transforms,
                     init_cpu_distributed, install_mmcv_ext_stub, make_config_cpu_safe)
from .runner_config import load_runner_config

__all__ = [
    'allow_mmengine_checkpoint_globals', 'import_mmpretrain_transforms',
    'init_cpu_distributed', 'install_mmcv_ext_stub', 'load_runner_config',
    'make_config_cpu_safe'
]
