# Copyright (c) mmseg-sbce contributors.
import importlib.util
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope

from mmseg.registry import HOOKS
from mmseg_sbce.datasets.demo_data import generate_demo_dataset
from mmseg_sbce.utils import InputError, load_runner_config
from mmseg_sbce.utils.runner_config import resolve_resume

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_work_dir_priority_and_options(tmp_path):
    cfg_file = tmp_path / 'my_cfg.py'
    cfg_file.write_text("a = dict(b=1)\n")
    cfg = load_runner_config(str(cfg_file), dict(a=dict(b=2)), 'pytorch')
    assert cfg.a.b == 2 and cfg.launcher == 'pytorch'
    assert cfg.work_dir == osp.join('./work_dirs', 'my_cfg')
    cfg_file.write_text("work_dir = 'from_cfg'\n")
    assert load_runner_config(str(cfg_file)).work_dir == 'from_cfg'
    assert load_runner_config(str(cfg_file), work_dir='cli').work_dir == 'cli'


def test_missing_config_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='config not found: .*nope.py'):
        load_runner_config(str(tmp_path / 'nope.py'))


SBCE_CONFIGS = ['configs/sbce_voc.py', 'configs/sbce_coco.py', 'configs/demo/sbce_demo.py',
                'configs/sbce_voc_from_baseline.py']


def _q_dirs(cfg) -> set:
    """The Q store of the config, LoadQMap and QUpdateHook."""
    found = {cfg.q_dir}
    found |= {s.q_dir for s in cfg.train_dataloader.dataset.pipeline if s.type == 'LoadQMap'}
    found |= {h.q_dir for h in cfg.custom_hooks if h.type == 'QUpdateHook'}
    return found


@pytest.mark.parametrize('config', SBCE_CONFIGS)
def test_q_store_follows_the_work_dir(config, tmp_path):
    """--work-dir moves the Q store: two runs of one config never share it (issue 17)."""
    path = osp.join(REPO, config)
    run1 = load_runner_config(path, work_dir=str(tmp_path / 'run1'))
    run2 = load_runner_config(path, work_dir=str(tmp_path / 'run2'))
    assert _q_dirs(run1) == {osp.join(str(tmp_path / 'run1'), 'q')}
    assert _q_dirs(run2) == {osp.join(str(tmp_path / 'run2'), 'q')}
    # without --work-dir: the config's own work_dir, as before
    default = load_runner_config(path)
    assert _q_dirs(default) == {osp.join(default.work_dir, 'q')}
    # an explicit q_dir option moves all three
    moved = load_runner_config(path, dict(q_dir=str(tmp_path / 'elsewhere')),
                               work_dir=str(tmp_path / 'run1'))
    assert _q_dirs(moved) == {str(tmp_path / 'elsewhere')}


def test_config_without_q_store_is_unchanged(tmp_path):
    cfg = load_runner_config(osp.join(REPO, 'configs/bce_baseline_voc.py'),
                             work_dir=str(tmp_path))
    assert 'q_dir' not in cfg


RESUME_CONFIG = """\
custom_imports = dict(imports=['mmseg_sbce'], allow_failed_imports=False)
default_scope = 'mmseg'
model = dict(
    type='SBCEClassifier',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[128.] * 3, std=[64.] * 3,
                           bgr_to_rgb=True, seg_pad_val=255, size=(32, 32)),
    backbone=dict(type='TinyCNN', channels=(8, 8, 8, 8, 8)),
    decode_head=dict(type='SBCEHead', in_channels=8, num_classes=2))
train_dataloader = dict(
    batch_size=2, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True, seed=0),
    dataset=dict(type='DemoClsDataset', data_root={data_root!r}, pipeline=[
        dict(type='LoadCheckedImageFromFile'), dict(type='PackWSSSInputs')]))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01))
train_cfg = dict(type='IterBasedTrainLoop', max_iters={max_iters}, val_interval=10**6)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1),
                     logger=dict(type='LoggerHook', interval=1))
custom_hooks = [dict(type='_FirstIterHook')]
log_processor = dict(by_epoch=False)
load_from = {load_from!r}
"""
FIRST_ITERS = []
FIRST_LRS = []


@HOOKS.register_module(force=True)
class _FirstIterHook(Hook):
    """Records the iteration a run starts training at (test only)."""

    def before_train(self, runner):
        FIRST_ITERS.append(runner.iter)
        FIRST_LRS.append(runner.optim_wrapper.get_lr()['lr'][0])


def _train_tool():
    spec = importlib.util.spec_from_file_location('train_tool', osp.join(REPO, 'tools/train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_resume_resumes_the_work_dir_not_load_from(tmp_path):
    """The documented from-baseline command plus --resume continues the run (issue 17)."""
    init_default_scope('mmseg')  # the datasets are built lazily, in the caller's scope
    data_root = str(tmp_path / 'data')
    generate_demo_dataset(data_root, num_train=4, num_val=1, img_size=32, num_classes=2)
    train = _train_tool()
    baseline_cfg = tmp_path / 'baseline.py'
    baseline_cfg.write_text(RESUME_CONFIG.format(data_root=data_root, max_iters=1,
                                                 load_from=None))
    train.main([str(baseline_cfg), '--work-dir', str(tmp_path / 'baseline')])
    baseline = str(tmp_path / 'baseline' / 'iter_1.pth')

    run_cfg = tmp_path / 'from_baseline.py'
    run_cfg.write_text(RESUME_CONFIG.format(data_root=data_root, max_iters=4,
                                            load_from=baseline))
    work = str(tmp_path / 'run')
    FIRST_ITERS.clear()
    # --resume before any checkpoint: a new run initialised from the baseline
    train.main([str(run_cfg), '--work-dir', work, '--resume',
                '--cfg-options', 'train_cfg.max_iters=3'])
    # interrupted at iteration 3; --resume continues from iter_3.pth, not from the baseline
    train.main([str(run_cfg), '--work-dir', work, '--resume'])
    assert FIRST_ITERS == [0, 3]
    assert osp.isfile(osp.join(work, 'iter_4.pth'))


def test_resolve_resume(tmp_path):
    cfg = Config(dict(work_dir=str(tmp_path), load_from='baseline.pth'))
    resolve_resume(cfg, False)
    assert cfg.resume is False and cfg.load_from == 'baseline.pth'
    resolve_resume(cfg, True)  # nothing to resume yet
    assert cfg.resume is False and cfg.load_from == 'baseline.pth'
    (tmp_path / 'iter_8.pth').write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_8.pth'))
    resolve_resume(cfg, True)
    assert cfg.resume is True and cfg.load_from == str(tmp_path / 'iter_8.pth')


def test_auto_scale_lr_scales_with_the_batch_only_when_asked(tmp_path):
    """1 GPU x batch 2 of a config set for batch 4: the LR halves with --auto-scale-lr only."""
    init_default_scope('mmseg')
    data_root = str(tmp_path / 'data')
    generate_demo_dataset(data_root, num_train=4, num_val=1, img_size=32, num_classes=2)
    train = _train_tool()
    cfg_file = tmp_path / 'scaled.py'
    cfg_file.write_text(RESUME_CONFIG.format(data_root=data_root, max_iters=1, load_from=None)
                        + 'auto_scale_lr = dict(enable=False, base_batch_size=4)\n')
    FIRST_LRS.clear()
    train.main([str(cfg_file), '--work-dir', str(tmp_path / 'as_is')])
    train.main([str(cfg_file), '--work-dir', str(tmp_path / 'scaled'), '--auto-scale-lr'])
    assert FIRST_LRS == [pytest.approx(0.01), pytest.approx(0.005)]
    plain = tmp_path / 'plain.py'
    plain.write_text(RESUME_CONFIG.format(data_root=data_root, max_iters=1, load_from=None))
    with pytest.raises(SystemExit, match="no auto_scale_lr.base_batch_size"):
        train.main([str(plain), '--work-dir', str(tmp_path / 'plain'), '--auto-scale-lr'])


@pytest.mark.parametrize('config', ['configs/sbce_voc.py', 'configs/sbce_coco.py',
                                    'configs/bce_baseline_voc.py',
                                    'configs/bce_baseline_coco.py',
                                    'configs/sbce_voc_from_baseline.py'])
def test_recipes_state_the_batch_their_lr_is_for(config):
    cfg = load_runner_config(osp.join(REPO, config))
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=24)
    assert cfg.train_dataloader.batch_size * 4 == 24  # the 4xb6 of the names
    # the logit scale T: 10x the new layers' rate (reference implementation), no decay
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys['decode_head.T'] == dict(
        lr_mult=10.0, decay_mult=0.0)


# One recipe of each kind: SBCE (VOC), the demo's SBCE run, a DeepLab config (VOC, demo).
DATASET_CONFIGS = ['configs/sbce_voc.py', 'configs/demo/sbce_demo.py',
                   'configs/deeplab/deeplabv3plus_r101-d8_4xb4-20k_voc12aug-pseudo-512x512.py',
                   'configs/demo/deeplabv3plus_demo.py']


def _head_counts(cfg) -> list:
    return [cfg.model.decode_head.num_classes, cfg.model.auxiliary_head.num_classes] \
        if cfg.model.get('auxiliary_head') else [cfg.model.decode_head.num_classes]


@pytest.mark.parametrize('config', DATASET_CONFIGS)
def test_data_set_description_reaches_every_data_set_and_head(config, tmp_path):
    """One data_root / class_names option switches every data set and head (issue 17)."""
    from mmseg_sbce.utils.runner_config import dataset_cfgs
    cfg = load_runner_config(osp.join(REPO, config),
                             dict(data_root='/data/mine', class_names=['cat', 'dog', 'cow']),
                             work_dir=str(tmp_path))
    datasets = list(dataset_cfgs(cfg))
    sbce = cfg.model.decode_head.type == 'SBCEHead'
    # SBCE: train/val/test, infer_dataset, the Q hook's, pseudo_dataloader's; DeepLab: 3
    assert len(datasets) == (6 if sbce else 3)
    assert all(ds.data_root == '/data/mine' for ds in datasets)
    assert all(tuple(ds.metainfo.classes) == ('background', 'cat', 'dog', 'cow')
               for ds in datasets)
    assert cfg.num_classes == 3
    assert _head_counts(cfg) == ([3] if sbce else [4, 4])
    # num_classes alone: the heads follow, the data sets get generic names
    cfg = load_runner_config(osp.join(REPO, config), dict(num_classes=5),
                             work_dir=str(tmp_path))
    assert _head_counts(cfg) == ([5] if sbce else [6, 6])
    assert all(len(ds.metainfo.classes) == 6 for ds in dataset_cfgs(cfg))


def test_explicit_data_set_options_win(tmp_path):
    """`train_dataloader.dataset.data_root=...` (run_demo.py, tests) still wins."""
    from mmseg_sbce.utils.runner_config import dataset_cfgs
    cfg = load_runner_config(
        osp.join(REPO, 'configs/demo/sbce_demo.py'),
        {'data_root': '/all', 'train_dataloader.dataset.data_root': '/train'},
        work_dir=str(tmp_path))
    assert cfg.train_dataloader.dataset.data_root == '/train'
    others = [ds.data_root for ds in dataset_cfgs(cfg)][1:]
    assert len(others) == 5 and set(others) == {'/all'}
    # without options nothing moves
    cfg = load_runner_config(osp.join(REPO, 'configs/demo/sbce_demo.py'),
                             work_dir=str(tmp_path))
    assert {ds.data_root for ds in dataset_cfgs(cfg)} == {'data/sbce_demo'}


def test_child_config_switches_the_data_set(tmp_path):
    """A config that changes only the `_base_` dataset line (or its variables) builds the
    model with that data set's class count."""
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    child = tmp_path / 'sbce_r38d_coco.py'
    child.write_text(
        f"_base_ = ['{REPO}/configs/_base_/models/sbce_resnet38d.py',\n"
        f"          '{REPO}/configs/_base_/datasets/coco2014_cls.py',\n"
        "          'mmseg::_base_/default_runtime.py']\n")
    cfg = load_runner_config(str(child), work_dir=str(tmp_path))
    assert cfg.model.decode_head.num_classes == 80  # the model base says 20
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert model.decode_head.num_classes == 80
    # a child of the demo recipe that describes another data set in two lines
    child = tmp_path / 'my_demo.py'
    child.write_text(f"_base_ = ['{REPO}/configs/demo/sbce_demo.py']\n"
                     "data_root = 'data/mine'\nclass_names = ('a', 'b')\n")
    cfg = load_runner_config(str(child), work_dir=str(tmp_path))
    assert cfg.model.decode_head.num_classes == 2
    assert cfg.custom_hooks[1].dataset.data_root == 'data/mine'
    assert MODELS.build(cfg.model).decode_head.num_classes == 2


def test_bad_class_names_are_named(tmp_path):
    """Bad data set descriptions are input errors (the tools report them in one line) that
    name where the value comes from (the option or the config file) and the value."""
    cfg = osp.join(REPO, 'configs/demo/sbce_demo.py')
    with pytest.raises(InputError, match="^--cfg-options class_names: .*'background' "
                       "\\(class 0\\) is added"):
        load_runner_config(cfg, dict(class_names=['background', 'a']))
    with pytest.raises(InputError, match=r"^--cfg-options class_names: class_names repeats a "
                       r"name: \['a', 'a'\]"):
        load_runner_config(cfg, dict(class_names=['a', 'a']))
    with pytest.raises(InputError, match='num_classes=3 but class_names lists 2'):
        load_runner_config(cfg, dict(class_names=['a', 'b'], num_classes=3))
    for bad in ('two', 0, 2.0):  # a class count to name the classes by: refused, not a crash
        with pytest.raises(InputError, match=f'^--cfg-options num_classes: .*got {bad!r}$'):
            load_runner_config(cfg, dict(num_classes=bad))
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = [{cfg!r}]\nclass_names = 'cat'\n")
    with pytest.raises(InputError, match=f"^{child}: class_names must be .* got 'cat'$"):
        load_runner_config(str(child))
    child.write_text(f"_base_ = [{cfg!r}]\nnum_classes = -1\n")
    with pytest.raises(InputError, match=f'^{child}: num_classes must be .* got -1$'):
        load_runner_config(str(child))
    # an option replaces the file's names: the file's value no longer matters
    child.write_text(f"_base_ = [{cfg!r}]\nclass_names = 'cat'\n")
    assert load_runner_config(str(child), dict(num_classes=2)).class_names == (
        'class_1', 'class_2')


def test_bad_dataset_description_is_an_input_error(tmp_path):
    from mmseg_sbce.utils.runner_config import load_dataset_description
    desc = tmp_path / 'pets.py'
    desc.write_text("class_names = ('cat', 'cat')\ntrain_split = 'train.txt'\n"
                    "label_file = 'labels.json'\n")
    with pytest.raises(InputError, match=f"^{desc}: class_names repeats a name"):
        load_dataset_description(str(desc))
    desc.write_text("class_names = ('cat', 'dog')\nnum_classes = 3\n"
                    "train_split = 'train.txt'\nlabel_file = 'labels.json'\n")
    with pytest.raises(InputError, match=f"^{desc}: num_classes=3 but class_names lists 2"):
        load_dataset_description(str(desc))


def test_my_dataset_template(tmp_path):
    """The documented template, as the dataset line of a recipe, gives its class count."""
    child = tmp_path / 'my_sbce.py'
    child.write_text(
        f"_base_ = ['{REPO}/configs/_base_/models/sbce_resnet38d.py',\n"
        f"          '{REPO}/configs/_base_/datasets/my_dataset.py',\n"
        "          'mmseg::_base_/default_runtime.py']\n")
    cfg = load_runner_config(str(child), dict(data_root='/data/pets'), work_dir=str(tmp_path))
    assert cfg.model.decode_head.num_classes == 3
    assert cfg.infer_dataset.data_root == '/data/pets'
    assert tuple(cfg.val_dataloader.dataset.metainfo.classes) == (
        'background', 'cat', 'dog', 'person')


def test_train_split_and_label_file_reach_the_training_images(tmp_path):
    """`train_split` / `label_file` go to the data sets over the training images only."""
    from mmseg_sbce.utils.runner_config import dataset_cfgs
    cfg = load_runner_config(osp.join(REPO, 'configs/sbce_voc.py'),
                             dict(train_split='ImageSets/Segmentation/train.txt',
                                  label_file='cls_labels.json'), work_dir=str(tmp_path))
    train = list(dataset_cfgs(cfg, training_images=True))
    assert len(train) == 4  # train, infer_dataset, the Q hook's, pseudo_dataloader's
    assert {ds.ann_file for ds in train} == {'ImageSets/Segmentation/train.txt'}
    assert {ds.label_file for ds in train} == {'cls_labels.json'}
    assert cfg.val_dataloader.dataset.get('label_file') is None
    assert cfg.val_dataloader.dataset.ann_file == 'ImageSets/Segmentation/train.txt'
    default = load_runner_config(osp.join(REPO, 'configs/sbce_voc.py'),
                                 work_dir=str(tmp_path))
    assert {ds.ann_file for ds in dataset_cfgs(default, training_images=True)} == {
        'ImageSets/Segmentation/trainaug.txt'}
    masks = load_runner_config(osp.join(REPO, 'configs/sbce_voc.py'),
                               dict(train_mask_dir='SegmentationClass'), work_dir=str(tmp_path))
    prefixes = [ds.data_prefix for ds in dataset_cfgs(masks, training_images=True)]
    assert len(prefixes) == 4 and all(
        p == dict(img_path='JPEGImages', seg_map_path='SegmentationClass') for p in prefixes)
