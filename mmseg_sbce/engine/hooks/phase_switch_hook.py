# Copyright (c) mmseg-sbce contributors.
"""Algorithm 1 of the paper (alternating sub-phases) and the outer Q phases, in one hook."""
from dataclasses import dataclass
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmseg.registry import HOOKS

#: Training modes of ``SBCEClassifier.set_train_mode``, with the number logged for each.
SUB_PHASE_CODES = {'bce': 0, 'sbce-classifier': 1, 'sbce-threshold': 2}


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

    def mode(self, it: int) -> str:
        """Training mode (see :data:`SUB_PHASE_CODES`) for iteration ``it``."""
        if it < self.bce_iters:
            return 'bce'
        local = (it - self.bce_iters) % self.gamma
        return 'sbce-classifier' if local < self.theta else 'sbce-threshold'


def unwrap(model):
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class PhaseSwitchHook(Hook):
    """Switch the model between the BCE baseline and Algorithm 1's two sub-phases.

    The mode is derived from ``runner.iter`` before every iteration (never from a counter
    compared with ``==``), and again in ``before_train``, so a resumed run lands in the right
    sub-phase. It is applied through ``set_train_mode`` on the unwrapped model and logged as
    ``train/sub_phase`` (0 = bce, 1 = classifier, 2 = threshold) and ``train/phase``.

    Distributed training: in each sub-phase some parameters get no gradient from the loss
    (e.g. the threshold branch while the classifier trains). The head adds a zero-weighted
    term over every parameter, so DDP's gradient sync sees all of them every iteration and
    ``find_unused_parameters`` stays off.

    Args:
        gamma, theta, bce_iters, phase_iters, num_phases: see :class:`PhaseSchedule`.
    """
    priority = 'NORMAL'

    def __init__(self,
                 gamma: int = 100,
                 theta: int = 80,
                 bce_iters: int = 0,
                 phase_iters: int = 8000,
                 num_phases: int = 3):
        self.schedule = PhaseSchedule(
            gamma=gamma,
            theta=theta,
            bce_iters=bce_iters,
            phase_iters=phase_iters,
            num_phases=num_phases)
        self._mode: Optional[str] = None

    def before_train(self, runner) -> None:
        if runner.max_iters != self.schedule.total_iters:
            raise ValueError(
                f'train_cfg.max_iters ({runner.max_iters}) must equal bce_iters + '
                f'num_phases * phase_iters = {self.schedule.total_iters} '
                f'(bce_iters={self.schedule.bce_iters}, num_phases='
                f'{self.schedule.num_phases}, phase_iters={self.schedule.phase_iters})')
        model = unwrap(runner.model)
        if not hasattr(model, 'set_train_mode'):
            raise TypeError(f'{type(model).__name__} has no set_train_mode(); '
                            'PhaseSwitchHook needs an SBCEClassifier-like model')
        self._mode = None
        self._apply(runner, runner.iter)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._apply(runner, runner.iter)

    def _apply(self, runner, it: int) -> None:
        mode = self.schedule.mode(it)
        if mode != self._mode:
            unwrap(runner.model).set_train_mode(mode)
            runner.logger.debug(f'iter {it}: train mode -> {mode}')
            if self._mode is None or self.schedule.phase(it) != self.schedule.phase(
                    max(it - 1, 0)):
                runner.logger.info(
                    f'iter {it}: phase {self.schedule.phase(it)}, mode {mode}')
            self._mode = mode
        runner.message_hub.update_scalar('train/sub_phase', SUB_PHASE_CODES[mode])
        runner.message_hub.update_scalar('train/phase', self.schedule.phase(it))
