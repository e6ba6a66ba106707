# Copyright (c) mmseg-sbce contributors.
"""The phase layout of an SBCE run: BCE baseline phase, SBCE phases, Algorithm 1's periods.

One :class:`PhaseSchedule` is the single source of the layout: ``PhaseSwitchHook`` (modes),
``QUpdateHook`` (when Q is re-estimated) and ``PhaseSchedulePolyLR`` (learning-rate restarts)
are each built from the same config dict (``phase_schedule`` in the configs), and
:func:`derive_phase_settings` gives the ``train_cfg`` / checkpoint values that follow from it.
"""
from dataclasses import asdict, dataclass
from typing import Dict, Union


@dataclass(frozen=True)
class PhaseSchedule:
    """Which phase and sub-phase a training iteration belongs to.

    Iterations ``[0, bce_iters)`` train the GAP-BCE baseline (phase 0, whose CAMs give the
    initial Q). Then ``num_phases`` SBCE phases of ``phase_iters`` iterations follow; Q is
    re-estimated before each of them. Inside an SBCE phase, Algorithm 1 splits every period of
    ``gamma`` iterations into ``theta`` classifier iterations (t = percentile of p at the
    target fraction, detached) and ``gamma - theta`` threshold-branch iterations (p detached).

    Args:
        gamma (int): period of Algorithm 1 (reference: 100).
        theta (int): classifier iterations per period (reference: 80).
        bce_iters (int): length of the BCE baseline phase; 0 to start from an existing Q.
        phase_iters (int): length of each SBCE phase (the paper's 8k).
        num_phases (int): number of SBCE phases (the paper's 3).
    """
    gamma: int = 100
    theta: int = 80
    bce_iters: int = 0
    phase_iters: int = 8000
    num_phases: int = 3

    def __post_init__(self):
        for name in ('gamma', 'theta', 'phase_iters', 'num_phases'):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f'{name} must be a positive int, got {value!r}')
        if not isinstance(self.bce_iters, int) or self.bce_iters < 0:
            raise ValueError(f'bce_iters must be an int >= 0, got {self.bce_iters!r}')
        if self.theta >= self.gamma:
            raise ValueError(
                f'theta ({self.theta}) must be smaller than gamma ({self.gamma}): '
                'each period needs at least one threshold-branch iteration')
        if self.phase_iters % self.gamma != 0:
            raise ValueError(
                f'phase_iters ({self.phase_iters}) must be a multiple of gamma '
                f'({self.gamma}) so that every phase ends on a full period')

    @classmethod
    def build(cls, schedule: Union['PhaseSchedule', Dict]) -> 'PhaseSchedule':
        """A schedule from a config dict (``phase_schedule``) or an existing schedule."""
        if isinstance(schedule, cls):
            return schedule
        if not isinstance(schedule, dict):
            raise TypeError('a phase schedule is a dict of gamma, theta, bce_iters, '
                            f'phase_iters, num_phases; got {type(schedule).__name__}')
        unknown = sorted(set(schedule) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f'unknown phase schedule keys {unknown}; expected a subset of '
                             f'{sorted(cls.__dataclass_fields__)}')
        return cls(**schedule)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def total_iters(self) -> int:
        return self.bce_iters + self.num_phases * self.phase_iters

    def phase(self, it: int) -> int:
        """Phase of iteration ``it``: 0 for the BCE baseline, 1..num_phases for SBCE."""
        if it < self.bce_iters:
            return 0
        return min((it - self.bce_iters) // self.phase_iters + 1, self.num_phases)

    def phase_start(self, phase: int) -> int:
        """First iteration of ``phase``."""
        return 0 if phase == 0 else self.bce_iters + (phase - 1) * self.phase_iters

    def phase_length(self, phase: int) -> int:
        """Number of iterations of ``phase``."""
        return self.bce_iters if phase == 0 else self.phase_iters

    def mode(self, it: int) -> str:
        """Training mode (one of ``TRAIN_MODES`` of the SBCE head) for iteration ``it``."""
        if it < self.bce_iters:
            return 'bce'
        local = (it - self.bce_iters) % self.gamma
        return 'sbce-classifier' if local < self.theta else 'sbce-threshold'


def derive_phase_settings(cfg) -> None:
    """Set, in place, everything of a config that follows from its ``phase_schedule``.

    The copies the config made when it was parsed (the ``schedule`` of ``PhaseSwitchHook``,
    ``QUpdateHook`` and every ``PhaseSchedulePolyLR``; ``train_cfg.max_iters``;
    ``train_cfg.val_interval`` and the checkpoint interval, one per phase) are re-derived from
    ``cfg.phase_schedule``, so that ``--cfg-options phase_schedule.phase_iters=4`` changes them
    all. Configs without ``phase_schedule`` are left alone.

    Args:
        cfg (mmengine.Config | dict): a training config.
    """
    if cfg.get('phase_schedule') is None:
        return
    schedule = PhaseSchedule.build(dict(cfg['phase_schedule']))
    layout = schedule.to_dict()
    for hook in cfg.get('custom_hooks') or []:
        if hook.get('type') in ('PhaseSwitchHook', 'QUpdateHook'):
            hook['schedule'] = dict(layout)
    schedulers = cfg.get('param_scheduler') or []
    for sched in schedulers if isinstance(schedulers, (list, tuple)) else [schedulers]:
        if isinstance(sched, dict) and sched.get('type') == 'PhaseSchedulePolyLR':
            sched['schedule'] = dict(layout)
    if cfg.get('train_cfg') is not None:
        cfg['train_cfg']['max_iters'] = schedule.total_iters
        if 'val_interval' in cfg['train_cfg']:
            cfg['train_cfg']['val_interval'] = schedule.phase_iters
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if checkpoint is not None and 'interval' in checkpoint:
        checkpoint['interval'] = schedule.phase_iters
