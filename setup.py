# Copyright (c) mmseg-sbce contributors.
"""Packaging for mmseg-sbce. Deliberately does not import torch or any OpenMMLab package."""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def get_version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'mmseg_sbce', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(fname: str) -> list:
    """Requirement lines of a file under requirements/, comments dropped."""
    with open(osp.join(HERE, 'requirements', fname), encoding='utf-8') as f:
        lines = [line.split('#', 1)[0].strip() for line in f]
    return [line for line in lines if line]


RUNTIME = parse_requirements('runtime.txt')
# mmcv is not an install_requires entry (as in mmseg itself): users pick the full build
# (compiled ops, GPU) or the pure-Python mmcv-lite. Both are capped below 2.2.0, which
# mmseg 1.2.2 rejects at import time.
MMCV = [r for r in RUNTIME if r.startswith('mmcv')]
INSTALL_REQUIRES = [r for r in RUNTIME if not r.startswith('mmcv')]

setup(
    name='mmseg-sbce',
    version=get_version(),
    description='Adaptive Spatial-BCE loss for weakly supervised semantic segmentation, '
    'as an MMSegmentation 1.x plugin',
    long_description=open(osp.join(HERE, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    python_requires='>=3.8',
    packages=find_packages(include=['mmseg_sbce', 'mmseg_sbce.*']),
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require={
        'mim': MMCV,
        'lite': [r.replace('mmcv', 'mmcv-lite', 1) for r in MMCV],
        'tests': parse_requirements('tests.txt'),
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    zip_safe=False,
)
