# Copyright (c) mmseg-sbce contributors.
"""A poly learning-rate schedule that restarts at the start of each training phase.

The paper (sec. 4.2) restarts the schedule at every Q phase: the initial BCE phase decays the
learning rate from 1e-2 to 1e-3, and each later phase from 1e-3 to 0. mmengine's ``PolyLR`` is
chainable: it continues from whatever value the previous scheduler left, so a list of them
cannot jump back up at a phase boundary. ``PhasePolyLR`` is the closed form instead, relative to
each parameter group's initial value, so parameter groups with ``lr_mult`` (10x for new layers)
keep their ratio in every phase, and a resumed run recomputes the same value.

``PhaseSchedulePolyLR`` is the form the SBCE configs use: one scheduler that takes the phase
boundaries from the run's :class:`~mmseg_sbce.engine.PhaseSchedule` (the same dict the hooks
get), so the restarts cannot drift from the phases. A list of ``PhasePolyLR`` with explicit
``begin`` / ``end`` gives the same values.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler

from mmseg.registry import PARAM_SCHEDULERS
from ..phase_schedule import PhaseSchedule


def poly_factor(step: int, length: int, start_factor: float, end_factor: float,
                power: float) -> float:
    """Multiple of the initial value at ``step`` (from 0) of a poly decay of ``length`` steps."""
    progress = min(max(step, 0) / length, 1.0)
    return end_factor + (start_factor - end_factor) * (1.0 - progress)**power


@PARAM_SCHEDULERS.register_module()
class PhasePolyParamScheduler(_ParamScheduler):
    """Poly decay between two factors of each group's initial value, over ``[begin, end)``.

    value(step) = initial * (end_factor + (start_factor - end_factor) * (1 - step / n) ** power)
    with ``step = 0 .. n - 1`` counted from ``begin`` and ``n = end - begin``.

    Args:
        optimizer: the optimizer (or wrapper).
        param_name (str): the parameter to schedule, e.g. ``'lr'``.
        start_factor (float): multiple of the initial value at ``begin``.
        end_factor (float): multiple of the initial value the decay approaches at ``end``.
        power (float): poly power (0.9 in the reference code).
        begin (int): first step of the phase.
        end (int): step after the last step of the phase.
    """

    def __init__(self,
                 optimizer,
                 param_name: str,
                 start_factor: float = 1.0,
                 end_factor: float = 0.0,
                 power: float = 0.9,
                 begin: int = 0,
                 end: int = INF,
                 last_step: int = -1,
                 by_epoch: bool = False,
                 verbose: bool = False):
        if end == INF:
            raise ValueError('PhasePolyParamScheduler needs a finite `end`')
        if not (start_factor >= 0 and end_factor >= 0):
            raise ValueError('start_factor and end_factor must be >= 0, got '
                             f'{start_factor} and {end_factor}')
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.power = power
        super().__init__(
            optimizer,
            param_name=param_name,
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=by_epoch,
            verbose=verbose)

    def _factor(self) -> float:
        return poly_factor(self.last_step, self.end - self.begin, self.start_factor,
                           self.end_factor, self.power)

    def _get_value(self):
        factor = self._factor()
        return [base * factor for base in self.base_values]


@PARAM_SCHEDULERS.register_module()
class PhasePolyLR(LRSchedulerMixin, PhasePolyParamScheduler):
    """:class:`PhasePolyParamScheduler` for the learning rate."""



FactorPair = Tuple[float, float]


@PARAM_SCHEDULERS.register_module()
class PhaseSchedulePolyParamScheduler(_ParamScheduler):
    """Poly decay restarting at every phase of a :class:`PhaseSchedule`.

    Over the whole run (``begin = 0``, ``end = schedule.total_iters``), iteration ``it`` of
    phase ``k`` (``step = it - phase_start(k)``, ``n = phase_length(k)``) gets

    value = initial * (end_k + (start_k - end_k) * (1 - step / n) ** power),

    the value :class:`PhasePolyParamScheduler` gives for that phase.

    Args:
        optimizer: the optimizer (or wrapper).
        param_name (str): the parameter to schedule, e.g. ``'lr'``.
        schedule (dict | PhaseSchedule): the phase layout (the config's ``phase_schedule``).
        bce_factors (tuple[float, float]): (start, end) multiples of the initial value over
            the BCE baseline phase (unused when ``bce_iters == 0``).
        phase_factors (sequence of (float, float)): (start, end) multiples for SBCE phase 1,
            2, ...; the last pair also serves every later phase, so ``[(0.1, 0.0)]`` restarts
            every phase at 0.1.
        power (float): poly power (0.9 in the reference code).
        end (int, optional): not a setting: the range is always the schedule's
            ``[0, total_iters)``. Accepted because mmengine's runner passes ``max_iters`` as a
            default ``end``; ``PhaseSwitchHook`` reports a ``max_iters`` that differs.
    """

    def __init__(self,
                 optimizer,
                 param_name: str,
                 schedule: Union[Dict, PhaseSchedule],
                 bce_factors: FactorPair = (1.0, 0.1),
                 phase_factors: Sequence[FactorPair] = ((0.1, 0.0), ),
                 power: float = 0.9,
                 end: Optional[int] = None,
                 last_step: int = -1,
                 by_epoch: bool = False,
                 verbose: bool = False):
        del end  # the schedule's total, see above
        self.phase_schedule = PhaseSchedule.build(schedule)
        pairs = [tuple(bce_factors)] + [tuple(p) for p in phase_factors]
        if len(pairs) < 2 or any(len(p) != 2 or min(p) < 0 for p in pairs):
            raise ValueError('bce_factors and every entry of phase_factors must be a '
                             '(start, end) pair of factors >= 0 (at least one phase pair); '
                             f'got bce_factors={bce_factors}, phase_factors={phase_factors}')
        if by_epoch:
            raise ValueError('PhaseSchedulePolyParamScheduler counts iterations: by_epoch '
                             'must be False')
        self.factors = pairs
        self.power = power
        super().__init__(
            optimizer,
            param_name=param_name,
            begin=0,
            end=self.phase_schedule.total_iters,
            last_step=last_step,
            by_epoch=by_epoch,
            verbose=verbose)

    def state_dict(self) -> dict:
        """mmengine's state with the layout as a plain dict: checkpoints hold only builtin
        types, which torch's ``weights_only`` loader (the default since torch 2.6) accepts."""
        state = super().state_dict()
        state['phase_schedule'] = self.phase_schedule.to_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        state['phase_schedule'] = PhaseSchedule.build(state['phase_schedule'])
        super().load_state_dict(state)

    def factors_of(self, phase: int) -> FactorPair:
        """(start, end) factors of ``phase`` (0 = BCE baseline)."""
        return self.factors[min(phase, len(self.factors) - 1)]

    def _factor(self) -> float:
        it = max(self.last_step, 0)
        phase = self.phase_schedule.phase(it)
        start, end = self.factors_of(phase)
        return poly_factor(it - self.phase_schedule.phase_start(phase),
                           self.phase_schedule.phase_length(phase), start, end, self.power)

    def _get_value(self):
        factor = self._factor()
        return [base * factor for base in self.base_values]


@PARAM_SCHEDULERS.register_module()
class PhaseSchedulePolyLR(LRSchedulerMixin, PhaseSchedulePolyParamScheduler):
    """:class:`PhaseSchedulePolyParamScheduler` for the learning rate."""
