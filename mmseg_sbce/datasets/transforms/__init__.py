# Copyright (c) mmseg-sbce contributors.
from .formatting import PackWSSSInputs
from .loading import (LoadCheckedImageFromFile, LoadQMap, attach_seg_map,
                      to_three_channels)
from .randaug import (GEOMETRIC_RANDAUG_OPS, PHOTOMETRIC_RANDAUG_POLICIES,
                      photometric_randaug)

__all__ = [
    'LoadCheckedImageFromFile', 'LoadQMap', 'PackWSSSInputs', 'GEOMETRIC_RANDAUG_OPS',
    'PHOTOMETRIC_RANDAUG_POLICIES', 'photometric_randaug', 'attach_seg_map',
    'to_three_channels'
]
