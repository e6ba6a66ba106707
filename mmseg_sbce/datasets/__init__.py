# Copyright (c) mmseg-sbce contributors.
from .transforms import *  # noqa: F401,F403
