# Copyright (c) mmseg-sbce contributors.
from .phase_poly_lr import PhasePolyLR, PhasePolyParamScheduler

__all__ = ['PhasePolyLR', 'PhasePolyParamScheduler']
