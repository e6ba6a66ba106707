# Copyright (c) mmseg-sbce contributors.
from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .phase_schedule import PhaseSchedule, derive_phase_settings  # noqa: F401
from .schedulers import *  # noqa: F401,F403
