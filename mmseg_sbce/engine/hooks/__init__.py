# Copyright (c) mmseg-sbce contributors.
from .phase_switch_hook import PhaseSchedule, PhaseSwitchHook
from .q_update_hook import QUpdateHook

__all__ = ['PhaseSchedule', 'PhaseSwitchHook', 'QUpdateHook']
