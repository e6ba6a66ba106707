# Copyright (c) mmseg-sbce contributors.
"""mmseg-sbce: Adaptive Spatial-BCE loss for WSSS as an MMSegmentation 1.x plugin.

Importing this package applies the stack fixes in :mod:`mmseg_sbce.utils.compat` (before
mmseg is imported) and registers every component into mmseg's registries.
"""
from .utils import compat as _compat

_compat.apply_all()

from .version import __version__  # noqa: E402

__all__ = ['__version__']

# Registration: importing the subpackages registers their components into mmseg's registries.
from . import apis, datasets, engine, evaluation, models  # noqa: E402,F401
