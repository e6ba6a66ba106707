# Copyright (c) mmseg-sbce contributors.
from .backbones import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
from .labelling import (cam_from_logits, cam_scores, eq9_scores,  # noqa: F401
                        label_cam, label_eq9, labels_from_scores, map_threshold)
from .irn import *  # noqa: F401,F403
