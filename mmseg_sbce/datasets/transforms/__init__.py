# Copyright (c) mmseg-sbce contributors.
from .formatting import PackWSSSInputs
from .loading import LoadCheckedImageFromFile, LoadQMap
from .randaug import (GEOMETRIC_RANDAUG_OPS, PHOTOMETRIC_RANDAUG_POLICIES,
                      photometric_randaug)

__all__ = [
    'LoadCheckedImageFromFile', 'LoadQMap', 'PackWSSSInputs', 'GEOMETRIC_RANDAUG_OPS',
    'PHOTOMETRIC_RANDAUG_POLICIES', 'photometric_randaug'
]
