# Copyright (c) mmseg-sbce contributors.
"""A poly learning-rate schedule that restarts at the start of each training phase.

The paper (sec. 4.2) restarts the schedule at every Q phase: the initial BCE phase decays the
learning rate from 1e-2 to 1e-3, and each later phase from 1e-3 to 0. mmengine's ``PolyLR`` is
chainable: it continues from whatever value the previous scheduler left, so a list of them
cannot jump back up at a phase boundary. ``PhasePolyLR`` is the closed form instead, relative to
each parameter group's initial value, so parameter groups with ``lr_mult`` (10x for new layers)
keep their ratio in every phase, and a resumed run recomputes the same value.
"""
from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler

from mmseg.registry import PARAM_SCHEDULERS


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
        progress = min(max(self.last_step, 0) / (self.end - self.begin), 1.0)
        return self.end_factor + (self.start_factor - self.end_factor) * (
            1.0 - progress)**self.power

    def _get_value(self):
        factor = self._factor()
        return [base * factor for base in self.base_values]


@PARAM_SCHEDULERS.register_module()
class PhasePolyLR(LRSchedulerMixin, PhasePolyParamScheduler):
    """:class:`PhasePolyParamScheduler` for the learning rate."""

