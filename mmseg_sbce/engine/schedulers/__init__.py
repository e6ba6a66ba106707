# Copyright (c) mmseg-sbce contributors.
from .phase_poly_lr import (PhasePolyLR, PhasePolyParamScheduler, PhaseSchedulePolyLR,
                            PhaseSchedulePolyParamScheduler)

__all__ = [
    'PhasePolyLR', 'PhasePolyParamScheduler', 'PhaseSchedulePolyLR',
    'PhaseSchedulePolyParamScheduler'
]
