# Copyright (c) mmseg-sbce contributors.
from .hooks import *  # noqa: F401,F403
from .schedulers import *  # noqa: F401,F403
