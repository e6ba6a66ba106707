# Copyright (c) mmseg-sbce contributors.
import pytest
import torch

import mmseg_sbce  # noqa: F401
from mmseg_sbce.engine import PhasePolyLR, PhaseSchedule, PhaseSchedulePolyLR


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


def _lrs(make_schedulers, iters, base_lrs=(2e-3, 2e-4, 2e-2)):
    """Learning rate of every parameter group at each iteration, stepped as mmengine does."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in base_lrs]
    opt = torch.optim.SGD([dict(params=[p], lr=lr) for p, lr in zip(params, base_lrs)],
                          lr=base_lrs[0])
    scheds = make_schedulers(opt)
    lrs = []
    for _ in range(iters):
        lrs.append([g['lr'] for g in opt.param_groups])
        opt.step()
        for s in scheds:
            s.step()
    return lrs


@pytest.mark.parametrize('layout, bce_factors, phase_factors', [
    # the demo: no BCE phase, phase 1 from 1/20, later phases from 1/40
    (dict(gamma=20, theta=16, bce_iters=0, phase_iters=200, num_phases=3), (1.0, 0.1),
     [(0.05, 0.0), (0.025, 0.0)]),
    # VOC / COCO layout (scaled down): BCE 1 -> 0.1, every SBCE phase 0.1 -> 0
    (dict(gamma=10, theta=8, bce_iters=80, phase_iters=80, num_phases=3), (1.0, 0.1),
     [(0.1, 0.0)]),
    # from a baseline: SBCE phases only
    (dict(gamma=10, theta=8, bce_iters=0, phase_iters=80, num_phases=3), (1.0, 0.1),
     [(0.1, 0.0)]),
])
def test_phase_schedule_poly_lr_equals_the_list_of_phase_poly_lr(layout, bce_factors,
                                                                phase_factors):
    """Bit-identical to the PhasePolyLR list the configs wrote out before (one per phase)."""
    s = PhaseSchedule(**layout)
    pairs = [bce_factors] * bool(s.bce_iters) + [
        phase_factors[min(k, len(phase_factors) - 1)] for k in range(s.num_phases)]
    starts = [s.phase_start(k) for k in range(0 if s.bce_iters else 1, s.num_phases + 1)]

    def old(opt):
        return [PhasePolyLR(opt, start_factor=a, end_factor=b, power=0.9, begin=begin,
                            end=begin + (s.bce_iters if begin == 0 and s.bce_iters else
                                         s.phase_iters))
                for (a, b), begin in zip(pairs, starts)]

    def new(opt):
        return [PhaseSchedulePolyLR(opt, schedule=layout, bce_factors=bce_factors,
                                    phase_factors=phase_factors, power=0.9)]

    expected, got = _lrs(old, s.total_iters + 3), _lrs(new, s.total_iters + 3)
    assert got == expected  # exact float equality, every group, every iteration


def test_phase_schedule_poly_lr_rejects_bad_factors():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    layout = dict(gamma=2, theta=1, bce_iters=0, phase_iters=4, num_phases=2)
    with pytest.raises(ValueError, match='pair'):
        PhaseSchedulePolyLR(opt, schedule=layout, phase_factors=[])
    with pytest.raises(ValueError, match='pair'):
        PhaseSchedulePolyLR(opt, schedule=layout, phase_factors=[(0.1, -1.0)])
    with pytest.raises(ValueError, match='unknown phase schedule keys'):
        PhaseSchedulePolyLR(opt, schedule=dict(layout, phase_len=4))


def test_phase_schedule_poly_lr_state_loads_with_weights_only(tmp_path):
    """The scheduler's state holds builtin types only, so a checkpoint loads with torch's
    default ``weights_only=True`` (a PhaseSchedule object in it was refused), and it
    restores the same layout."""
    import torch

    from mmseg_sbce.engine.schedulers.phase_poly_lr import PhaseSchedulePolyLR
    layout = dict(gamma=2, theta=1, bce_iters=2, phase_iters=4, num_phases=2)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = PhaseSchedulePolyLR(opt, schedule=layout, phase_factors=[(0.1, 0.0)])
    for _ in range(3):
        opt.step()
        sched.step()
    path = tmp_path / 'sched.pth'
    torch.save(dict(param_schedulers=[sched.state_dict()]), path)
    state = torch.load(path, weights_only=True)['param_schedulers'][0]
    assert state['phase_schedule'] == layout
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    restored = PhaseSchedulePolyLR(opt2, schedule=layout, phase_factors=[(0.1, 0.0)])
    restored.load_state_dict(state)
    assert restored.phase_schedule == sched.phase_schedule
    assert restored.last_step == sched.last_step
    assert restored._get_value() == sched._get_value()
