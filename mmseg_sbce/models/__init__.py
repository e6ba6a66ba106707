# Copyright (c) mmseg-sbce contributors.
from .backbones import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
from .utils import eq9_scores, label_eq9, map_threshold  # noqa: F401
