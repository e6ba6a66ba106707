# Copyright (c) mmseg-sbce contributors.
import pytest
import torch

import mmseg_sbce  # noqa: F401
from mmseg_sbce.engine import PhasePolyLR, PhaseSchedule


def test_schedule_modes_follow_algorithm_1():
    s = PhaseSchedule(gamma=10, theta=8, bce_iters=5, phase_iters=20, num_phases=3)
    assert s.total_iters == 65
    assert [s.mode(i) for i in range(5)] == ['bce'] * 5
    # within each period of gamma: theta classifier iterations, then the threshold branch
    first = [s.mode(i) for i in range(5, 25)]
    assert first == (['sbce-classifier'] * 8 + ['sbce-threshold'] * 2) * 2
    assert [s.phase(i) for i in (0, 4, 5, 24, 25, 44, 45, 64)] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert s.phase_start(2) == 25


@pytest.mark.parametrize('kwargs, match', [
    (dict(gamma=10, theta=10), 'smaller than gamma'),
    (dict(gamma=10, theta=12), 'smaller than gamma'),
    (dict(gamma=10, theta=8, phase_iters=25), 'multiple of gamma'),
    (dict(gamma=0, theta=0), 'positive int'),
    (dict(bce_iters=-1), 'bce_iters'),
])
def test_schedule_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PhaseSchedule(**kwargs)


def test_phase_poly_lr_restarts_per_phase_and_keeps_lr_mult():
    w1, w2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([dict(params=[w1], lr=1e-2), dict(params=[w2], lr=1e-3)], lr=1e-2)
    scheds = [PhasePolyLR(opt, start_factor=1.0, end_factor=0.1, power=1.0, begin=0, end=4),
              PhasePolyLR(opt, start_factor=0.1, end_factor=0.0, power=1.0, begin=4, end=8)]
    lrs = []
    for _ in range(8):
        lrs.append([g['lr'] for g in opt.param_groups])
        opt.step()
        for s in scheds:
            s.step()
    first = [lr[0] for lr in lrs]
    # phase 0: 1e-2 -> towards 1e-3 linearly; phase 1 restarts at 1e-3 -> towards 0
    expected = [1e-2 * (0.1 + 0.9 * (1 - k / 4)) for k in range(4)] + \
               [1e-2 * 0.1 * (1 - k / 4) for k in range(4)]
    assert first == pytest.approx(expected)
    assert all(a / b == pytest.approx(10.0) for a, b in lrs)


def test_phase_poly_lr_needs_finite_end():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match='finite'):
        PhasePolyLR(opt, begin=0)
