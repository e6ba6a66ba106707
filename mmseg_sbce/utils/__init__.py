# Copyright (c) mmseg-sbce contributors.
# compat first: importing this package must not import mmseg before its fixes are applied.
from .compat import (allow_mmengine_checkpoint_globals, import_mmpretrain_transforms,
                     init_cpu_distributed, install_mmcv_ext_stub, make_config_cpu_safe)
from .errors import InputError, report_input_errors
from .io import (IGNORE_INDEX, TEMP_SUFFIX, atomic_write, parse_split, read_label_png, read_split,
                 temp_path, write_json_atomic, write_text_atomic)
from .parallel import (default_workers, fork_pool, single_thread_worker, unwrap_model,
                       worker_pool)
from .runner_config import load_runner_config

__all__ = [
    'allow_mmengine_checkpoint_globals', 'import_mmpretrain_transforms',
    'init_cpu_distributed', 'install_mmcv_ext_stub', 'load_runner_config',
    'make_config_cpu_safe', 'IGNORE_INDEX', 'TEMP_SUFFIX', 'atomic_write', 'parse_split', 'read_label_png',
    'read_split', 'temp_path', 'write_json_atomic', 'write_text_atomic', 'default_workers',
    'fork_pool', 'single_thread_worker', 'unwrap_model', 'worker_pool', 'InputError',
    'report_input_errors'
]
