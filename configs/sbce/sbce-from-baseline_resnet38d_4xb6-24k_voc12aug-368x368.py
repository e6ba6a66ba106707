# configs/sbce_voc.py without its BCE phase: start from a separately trained baseline
# (configs/bce_baseline_voc.py) and the initial Q exported from it by tools/gen_pseudo.py:
#   python tools/train.py configs/sbce_voc_from_baseline.py --cfg-options \
#       load_from=work_dirs/bce_baseline_voc/iter_8000.pth \
#       custom_hooks.1.init_q_dir=work_dirs/q_init
_base_ = ['./sbce_resnet38d_4xb6-32k_voc12aug-368x368.py']

work_dir = 'work_dirs/sbce_voc_from_baseline'
q_dir = work_dir + '/q'
phase_schedule = dict(gamma=100, theta=80, bce_iters=0, phase_iters=8000, num_phases=3)
train_iters = phase_schedule['bce_iters'] + phase_schedule['num_phases'] * phase_schedule[
    'phase_iters']

train_pipeline = [
    dict(type='LoadCheckedImageFromFile'),
    dict(type='LoadQMap', q_dir=q_dir),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size={{_base_.crop_size}}, cat_max_ratio=1.0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandAugment', _scope_='mmpretrain', policies='photometric',
         num_policies=2, total_level=10, magnitude_level=9, magnitude_std=0.5),
    dict(type='PackWSSSInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
param_scheduler = [
    dict(type='PhaseSchedulePolyLR', schedule=phase_schedule, phase_factors=[(0.1, 0.0)],
         power=0.9)
]
train_cfg = dict(max_iters=train_iters, val_interval=phase_schedule['phase_iters'])
default_hooks = dict(checkpoint=dict(interval=phase_schedule['phase_iters']))
custom_hooks = [
    dict(type='PhaseSwitchHook', schedule=phase_schedule),
    dict(type='QUpdateHook', q_dir=q_dir, dataset={{_base_.infer_dataset}},
         schedule=phase_schedule, pseudo_cfg={{_base_.pseudo_cfg}}, init_q_dir=None),
]
