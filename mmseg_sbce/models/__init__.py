# Copyright (c) mmseg-sbce contributors.
from .backbones import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
from .utils import (cam_scores, eq9_scores, label_cam, label_eq9,  # noqa: F401
                    labels_from_scores, map_threshold, normalize_max)
