# VARIANT (the paper classifies with ResNet-38d: ./sbce_resnet38d_4xb6-248k_coco2014-368x368.py;
# run this one with its own --work-dir, e.g. work_dirs/sbce_vgg16_coco).
# Adaptive Spatial-BCE on MS-COCO 2014 train (82,081 images) with VGG16 (output stride 8), as
# one training run, exactly as configs/sbce_voc.py:
#   BCE baseline phase (its CAMs + dCRF give the initial Q)
#   -> SBCE phase 1 -> 2 -> 3, Q re-estimated by the on-training network before each.
# 4 GPUs x 6 images (batch 24), crop 368, SGD momentum 0.9, wd 5e-4; lr 1e-2 for new layers and
# 1e-3 for the backbone, restarting every phase (paper sec. 4.2):
#   tools/dist_train.sh configs/sbce_coco.py 4
# To start from a separately trained baseline instead: bce_iters=0, load_from=its checkpoint,
# and init_q_dir=the labels tools/gen_pseudo.py exported from it (see docs/getting_started.md).
#
# Schedule: the paper updates Q "every 8k iterations" on VOC and gives no COCO numbers. 8k
# iterations at batch 24 are 18.1 epochs of VOC's 10,582 images; the same 18.1 epochs of
# COCO's 82,081 images are 8,000 x 82,081 / 10,582 = 62,053 iterations, rounded to 62,000 (a
# multiple of gamma). Baseline + 3 phases = 248,000 iterations. Each Q update labels all
# 82,081 images (8-pass inference + dCRF): see "Q update at COCO scale" in docs/benchmarks.md
# for its cost.
_base_ = ['./bce_vgg16_4xb6-62k_coco2014-368x368.py']

work_dir = 'work_dirs/sbce_coco'
q_dir = work_dir + '/q'  # the Q store: LoadQMap reads it, QUpdateHook writes it
init_q_dir = None

# The phase layout, the one source of every phase boundary of the run: Algorithm 1 (gamma,
# theta) as on VOC; the outer phases scaled to COCO (see above).
phase_schedule = dict(gamma=100, theta=80, bce_iters=62000, phase_iters=62000, num_phases=3)
train_iters = phase_schedule['bce_iters'] + phase_schedule['num_phases'] * phase_schedule[
    'phase_iters']

# Inference for the Q update and for pseudo-labels: scales x flip, eq. 9, dense CRF.
pseudo_cfg = dict(scales=(1.0, 0.5, 1.5, 2.0), flip=True, threshold='adaptive')

model = dict(
    decode_head=dict(train_mode='bce'),  # PhaseSwitchHook sets the mode every iteration
    test_cfg=dict(_delete_=True, threshold='adaptive'))

train_pipeline = [
    dict(type='LoadCheckedImageFromFile'),
    dict(type='LoadQMap', q_dir=q_dir),  # moved with the image by every geometric transform
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size={{_base_.crop_size}}, cat_max_ratio=1.0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandAugment', _scope_='mmpretrain', policies='photometric',
         num_policies=2, total_level=10, magnitude_level=9, magnitude_std=0.5),
    dict(type='PackWSSSInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# BCE phase: 1e-2 -> 1e-3; every SBCE phase restarts at 1e-3 and decays to 0 (relative to
# each parameter group's base rate, so the backbone keeps its 0.1x). The restarts, max_iters,
# the validation and checkpoint intervals and both hooks all follow `phase_schedule`
# (tools/train.py re-derives them after `--cfg-options phase_schedule.KEY=VALUE`).
param_scheduler = [
    dict(type='PhaseSchedulePolyLR', schedule=phase_schedule, bce_factors=(1.0, 0.1),
         phase_factors=[(0.1, 0.0)], power=0.9)
]
train_cfg = dict(max_iters=train_iters, val_interval=phase_schedule['phase_iters'])
default_hooks = dict(
    checkpoint=dict(interval=phase_schedule['phase_iters'],
                    max_keep_ckpts=phase_schedule['num_phases'] + 1, save_last=True))
custom_hooks = [
    dict(type='PhaseSwitchHook', schedule=phase_schedule),
    dict(type='QUpdateHook', q_dir=q_dir, dataset={{_base_.infer_dataset}},
         schedule=phase_schedule,
         pseudo_cfg=pseudo_cfg, init_pseudo_cfg=dict(threshold={{_base_.bg_threshold}},
                                                     normalize_cam=True),
         init_q_dir=init_q_dir),
]
pseudo_dataloader = dict(dataset={{_base_.infer_dataset}})
