# Copyright (c) mmseg-sbce contributors.
"""The benchmark scripts are not a package: each test module loads its script by path
with :func:`load_benchmark` (this directory is on ``sys.path`` while its tests run)."""
import importlib.util
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_benchmark(name: str):
    """``benchmarks/{name}.py`` as a module (its ``main`` and helpers, not run)."""
    spec = importlib.util.spec_from_file_location(
        f'_bench_{name}', osp.join(ROOT, 'benchmarks', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
