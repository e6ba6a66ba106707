# Copyright (c) mmseg-sbce contributors.
"""Bad input through the real tools on a tiny generated data set (issue 13's table).

Each case checks what a careful user expects: one line ``tool: error: ...`` naming the
file or value, before any work, instead of a traceback from deep inside.
"""
import glob
import os
import os.path as osp
import shutil

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmseg_sbce  # noqa: F401
from mmseg.registry import MODELS
from mmseg_sbce.datasets.demo_data import generate_demo_dataset

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SBCE_CFG = osp.join(ROOT, 'configs', 'demo', 'sbce_demo.py')
BCE_CFG = osp.join(ROOT, 'configs', 'demo', 'bce_baseline_demo.py')


@pytest.fixture(scope='module')
def tools(load_tool):
    return {name: load_tool(name) for name in ('gen_pseudo', 'train', 'test')}


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data'))
    generate_demo_dataset(root, num_train=3, num_val=2, img_size=48, num_classes=6, seed=3)
    return root


def _checkpoint(path, config=SBCE_CFG, meta=None, **model_options):
    """A checkpoint of the config's model at its seeded initialisation."""
    init_default_scope('mmseg')
    torch.manual_seed(0)
    cfg = Config.fromfile(config)
    if model_options:
        cfg.merge_from_dict(model_options)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict(), meta=meta or {}), path)
    return str(path)


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    meta = dict(sbce=dict(trained_modes=['bce', 'sbce-classifier', 'sbce-threshold']))
    return _checkpoint(tmp_path_factory.mktemp('ckpt') / 'sbce.pth', meta=meta)


def _data_options(root, config=SBCE_CFG):
    """Point every data set of the config at ``root`` (the baseline has no Q hook and no
    pseudo_dataloader: gen_pseudo labels its train set)."""
    loaders = ['train_dataloader', 'val_dataloader', 'test_dataloader']
    extra = []
    if config == SBCE_CFG:
        loaders.append('pseudo_dataloader')
        extra.append(f'custom_hooks.1.dataset.data_root={root}')
    return [f'{loader}.dataset.data_root={root}' for loader in loaders] + extra


def _gen_pseudo(tools, root, checkpoint, out, *extra, config=SBCE_CFG):
    return tools['gen_pseudo'].main(
        [config, checkpoint, '--out', str(out), '--workers', '0', '--no-progress',
         '--no-crf', '--cfg-options', *_data_options(root, config), *extra])


def _one_line_error(exc_info, tool, *needles):
    """The tool exited with one line ``tool: error: ...`` that contains every needle."""
    message = str(exc_info.value.code)
    assert message.startswith(f'{tool}: error: '), message
    assert '\n' not in message, message
    for needle in needles:
        assert needle in message, (needle, message)


# ------------------------------------------------------------------ missing image
@pytest.fixture
def root_missing_jpeg(data_root, tmp_path):
    root = str(tmp_path / 'data')
    shutil.copytree(data_root, root)
    with open(osp.join(root, 'ImageSets', 'Segmentation', 'train.txt')) as f:
        victim = f.read().split()[1]
    os.remove(osp.join(root, 'JPEGImages', victim + '.jpg'))
    return root, victim


def test_missing_jpeg_gen_pseudo(tools, root_missing_jpeg, ckpt, tmp_path):
    root, victim = root_missing_jpeg
    with pytest.raises(SystemExit) as exc_info:
        _gen_pseudo(tools, root, ckpt, tmp_path / 'out')
    _one_line_error(exc_info, 'gen_pseudo', victim + '.jpg', 'does not exist')
    assert not osp.exists(tmp_path / 'out')  # before any work


def test_missing_jpeg_train(tools, root_missing_jpeg, tmp_path):
    root, victim = root_missing_jpeg
    with pytest.raises(SystemExit) as exc_info:
        tools['train'].main([SBCE_CFG, '--work-dir', str(tmp_path / 'w'),
                             '--cfg-options', *_data_options(root)])
    _one_line_error(exc_info, 'train', victim + '.jpg', 'does not exist')


def test_missing_jpeg_test(tools, data_root, ckpt, tmp_path):
    root = str(tmp_path / 'data')
    shutil.copytree(data_root, root)
    with open(osp.join(root, 'ImageSets', 'Segmentation', 'val.txt')) as f:
        victim = f.read().split()[0]
    os.remove(osp.join(root, 'JPEGImages', victim + '.jpg'))
    with pytest.raises(SystemExit) as exc_info:
        tools['test'].main([SBCE_CFG, ckpt, '--work-dir', str(tmp_path / 'w'),
                            '--cfg-options', *_data_options(root)])
    _one_line_error(exc_info, 'test', victim + '.jpg', 'does not exist')


# ------------------------------------------------------------- unreadable checkpoint
@pytest.mark.parametrize('content', [os.urandom(257), b'hello, I am text\n', b''],
                         ids=['random-bytes', 'text', 'empty'])
@pytest.mark.parametrize('tool', ['gen_pseudo', 'test'])
def test_unreadable_checkpoint(tools, data_root, tmp_path, content, tool):
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(content)
    with pytest.raises(SystemExit) as exc_info:
        if tool == 'gen_pseudo':
            _gen_pseudo(tools, data_root, str(bad), tmp_path / 'out')
        else:
            tools['test'].main([SBCE_CFG, str(bad), '--work-dir', str(tmp_path / 'w'),
                                '--cfg-options', *_data_options(data_root)])
    _one_line_error(exc_info, tool, str(bad))
    assert not osp.exists(tmp_path / 'out')


# ------------------------------------------------------------ class-count mismatch
@pytest.mark.parametrize('data_classes', [7, 5])
def test_class_count_mismatch(tools, ckpt, tmp_path, data_classes):
    root = str(tmp_path / 'data')
    generate_demo_dataset(root, num_train=2, num_val=1, img_size=32,
                          num_classes=data_classes, seed=1)
    needles = (f'has {data_classes} foreground classes', 'the model has 6', root)
    for tool, argv in [
            ('gen_pseudo', None),
            ('train', [SBCE_CFG, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
                       *_data_options(root)]),
            ('test', [SBCE_CFG, ckpt, '--work-dir', str(tmp_path / 'w'),
                      '--cfg-options', *_data_options(root)])]:
        with pytest.raises(SystemExit) as exc_info:
            if argv is None:
                _gen_pseudo(tools, root, ckpt, tmp_path / 'out')
            else:
                tools[tool].main(argv)
        _one_line_error(exc_info, tool, *needles)
    assert not osp.exists(tmp_path / 'out') and not osp.exists(tmp_path / 'w' / 'q')


# ------------------------------------------------- baseline checkpoint + adaptive threshold
def test_baseline_checkpoint_refuses_adaptive_threshold(tools, data_root, tmp_path):
    """A BCE baseline never trained the threshold branch: eq. 9 on it is refused, a
    background threshold works."""
    base = _checkpoint(tmp_path / 'bce.pth', config=BCE_CFG)  # no PhaseSwitchHook record
    with pytest.raises(SystemExit) as exc_info:
        _gen_pseudo(tools, data_root, base, tmp_path / 'out', '--threshold', 'adaptive',
                    config=BCE_CFG)
    _one_line_error(exc_info, 'gen_pseudo', base, 'threshold branch', '--threshold 0.3')
    assert not osp.exists(tmp_path / 'out')
    assert _gen_pseudo(tools, data_root, base, tmp_path / 'out', '--threshold', '0.3',
                       config=BCE_CFG) == 0
    # Otsu's per-map split needs no threshold branch either.
    assert _gen_pseudo(tools, data_root, base, tmp_path / 'otsu', '--threshold', 'otsu',
                       config=BCE_CFG) == 0
    assert len(glob.glob(str(tmp_path / 'otsu' / '*.png'))) > 0


@pytest.mark.parametrize('modes,refused', [
    (['bce'], True), (['bce', 'sbce-classifier'], True),
    (['bce', 'sbce-classifier', 'sbce-threshold'], False), (None, False)])
def test_trained_modes_record_decides_adaptive(tools, data_root, tmp_path, modes, refused):
    """The SBCE config's checkpoint: its meta record decides (no record: an SBCE run of
    before the record, trusted as its config has the PhaseSwitchHook)."""
    meta = None if modes is None else dict(sbce=dict(trained_modes=modes))
    ckpt = _checkpoint(tmp_path / 'c.pth', meta=meta)
    if refused:
        with pytest.raises(SystemExit) as exc_info:
            _gen_pseudo(tools, data_root, ckpt, tmp_path / 'out')
        _one_line_error(exc_info, 'gen_pseudo', ckpt, 'never trained the threshold branch')
    else:
        assert _gen_pseudo(tools, data_root, ckpt, tmp_path / 'out') == 0


# ------------------------------------------------------- load_from of another class count
def test_load_from_with_another_class_count(tools, data_root, tmp_path):
    other = _checkpoint(tmp_path / 'c7.pth', **{'model.decode_head.num_classes': 7})
    with pytest.raises(SystemExit) as exc_info:
        tools['train'].main([SBCE_CFG, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
                             f'load_from={other}', *_data_options(data_root)])
    _one_line_error(exc_info, 'train', other, 'decode_head.', '(7,', '(6,',
                    'reinit_head_on_mismatch=True')
    assert not osp.exists(tmp_path / 'w' / 'q')  # before any work


def test_load_from_mismatch_opt_in_and_matching_checkpoint(ckpt, tmp_path):
    from mmseg_sbce.utils.checkpoint import check_load_from
    other = _checkpoint(tmp_path / 'c7.pth', **{'model.decode_head.num_classes': 7})
    cfg = Config.fromfile(SBCE_CFG)
    cfg.load_from = ckpt
    check_load_from(cfg)  # same classes: fine
    cfg.load_from = other
    with pytest.raises(ValueError, match='does not fit the model'):
        check_load_from(cfg)
    cfg.reinit_head_on_mismatch = True
    check_load_from(cfg)  # the head may differ: mmengine re-initialises it


# -------------------------------------------------------- tiny and extreme-aspect images
def test_tiny_and_narrow_images_are_labelled_at_their_size(tools, data_root, ckpt,
                                                            tmp_path):
    """1 x 1 (a torch error before), 8 x 8 and a 4000 x 20-like strip: every image gets a
    label PNG of its own size (pseudo_cfg.min_side, docs/pseudo_labels.md)."""
    import numpy as np
    from PIL import Image
    root = str(tmp_path / 'data')
    shutil.copytree(data_root, root)
    with open(osp.join(root, 'ImageSets', 'Segmentation', 'train.txt')) as f:
        ids = f.read().split()
    sizes = {ids[0]: (1, 1), ids[1]: (8, 8), ids[2]: (12, 400)}  # (h, w)
    rng = np.random.default_rng(0)
    for img_id, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            osp.join(root, 'JPEGImages', img_id + '.jpg'))
    out = tmp_path / 'out'
    assert _gen_pseudo(tools, root, ckpt, out) == 0
    for img_id, (h, w) in sizes.items():
        with Image.open(out / f'{img_id}.png') as label:
            assert label.size == (w, h), img_id


# ------------------------------------------------------------- grayscale / palette images
def test_grayscale_and_palette_images_are_read_as_rgb(tools, data_root, ckpt, tmp_path):
    """Even through a decoder that keeps one channel (pillow, 'unchanged'), a palette image
    gives the network the same input (so the same saved maps) as its RGB rendering, and a
    grayscale image is labelled at its size."""
    import numpy as np
    from PIL import Image

    from mmseg_sbce.apis import load_maps_npz
    root = str(tmp_path / 'data')
    shutil.copytree(data_root, root)
    with open(osp.join(root, 'ImageSets', 'Segmentation', 'train.txt')) as f:
        ids = f.read().split()
    path = osp.join(root, 'JPEGImages', ids[1] + '.jpg')
    rgb = np.array(Image.open(path).convert('RGB'))
    palette = Image.fromarray(rgb).quantize(colors=16)
    Image.fromarray(rgb).convert('L').save(
        osp.join(root, 'JPEGImages', ids[0] + '.jpg'), format='PNG')
    decoder = [f'pseudo_dataloader.dataset.pipeline.0.{k}'
               for k in ('imdecode_backend=pillow', 'color_type=unchanged')]
    maps = {}
    for name, image in [('palette', palette), ('rgb', palette.convert('RGB'))]:
        image.save(path, format='PNG')  # same content, as a palette or as an RGB file
        out = tmp_path / name
        assert _gen_pseudo(tools, root, ckpt, out, *decoder, '--save-probs') == 0
        maps[name] = load_maps_npz(str(out / 'probs' / f'{ids[1]}.npz'))[0]
        assert np.array(Image.open(out / f'{ids[0]}.png')).shape == rgb.shape[:2]
    np.testing.assert_array_equal(maps['palette'], maps['rgb'])


# ----------------------------------------------------------- bad class_names / num_classes
IRN_CFG = osp.join(ROOT, 'configs', 'irn', 'irn_r18-scratch_1xb8-300_demo-96x96.py')
BAD_DESCRIPTIONS = {  # --cfg-options, what the one-line error says
    'not-a-list': (['class_names=cat'], ('class_names must be a non-empty list',
                                         "got 'cat'")),
    'repeated': (['class_names=[a,a]'], ("class_names repeats a name: ['a', 'a']", )),
    'background': (['class_names=[background,a]'], ("'background' (class 0)",
                                                    "['background', 'a']")),
    'count': (['class_names=[a,b]', 'num_classes=3'],
              ("num_classes=3 but class_names lists 2 classes: ['a', 'b']", )),
    'zero-classes': (['num_classes=0'], ('num_classes must be a positive int', 'got 0')),
    'text-count': (['num_classes=two'], ('num_classes must be a positive int',
                                         "got 'two'")),
}


@pytest.mark.parametrize('options, needles', BAD_DESCRIPTIONS.values(),
                         ids=BAD_DESCRIPTIONS.keys())
def test_bad_class_names_option_is_one_line(load_tool, data_root, ckpt, tmp_path, options,
                                            needles):
    """Every tool that reads configs: a bad data set description in ``--cfg-options`` is one
    line naming the option and the value, before any work (it was a ValueError traceback
    from deep inside the config reading)."""
    work, out = str(tmp_path / 'w'), str(tmp_path / 'out')
    runs = dict(
        train=[SBCE_CFG, '--work-dir', work, '--cfg-options', *options],
        gen_pseudo=[SBCE_CFG, ckpt, '--out', out, '--no-crf', '--cfg-options', *options],
        test=[SBCE_CFG, ckpt, '--work-dir', work, '--cfg-options', *options],
        refine_irn=[IRN_CFG, ckpt, '--maps', str(tmp_path), '--out', out,
                    '--cfg-options', *options],
        run_pipeline=[BCE_CFG, SBCE_CFG, SBCE_CFG, '--data-root', data_root,
                      '--work-dir', work, '--sbce-options', *options])
    for tool, argv in runs.items():
        with pytest.raises(SystemExit) as exc_info:
            load_tool(tool).main(argv)
        _one_line_error(exc_info, tool, '--cfg-options', *needles)
    assert not osp.exists(work) and not osp.exists(out)


def test_bad_class_names_in_a_config_file_name_the_file(tools, ckpt, tmp_path):
    """class_names set in the config file itself: the one-line error names that file."""
    bad = tmp_path / 'my_sbce.py'
    bad.write_text(f"_base_ = [{SBCE_CFG!r}]\nclass_names = ('cat', 'dog', 'cat')\n")
    for tool, argv in [('train', [str(bad), '--work-dir', str(tmp_path / 'w')]),
                       ('gen_pseudo', [str(bad), ckpt, '--out', str(tmp_path / 'out')])]:
        with pytest.raises(SystemExit) as exc_info:
            tools[tool].main(argv)
        _one_line_error(exc_info, tool, f"{bad}: class_names repeats a name: "
                        "['cat', 'dog', 'cat']")
    assert not osp.exists(tmp_path / 'w') and not osp.exists(tmp_path / 'out')


# ------------------------------------------------------ bad image-level label file
@pytest.mark.parametrize('content,needle', [
    ('{"train_00000": [1, ', 'is not valid JSON'),
    ('{"train_00000": [1, 99]}', 'outside'),
])
def test_bad_cls_label_file(tools, data_root, ckpt, tmp_path, content, needle):
    """A broken ``cls_labels.json`` (the user's own labels) is one line naming the file,
    from every tool that reads the data set, before any work."""
    root = str(tmp_path / 'data')
    shutil.copytree(data_root, root)
    label_file = osp.join(root, 'cls_labels.json')
    with open(label_file, 'w') as f:
        f.write(content)
    for tool in ('gen_pseudo', 'train'):
        with pytest.raises(SystemExit) as exc_info:
            if tool == 'gen_pseudo':
                _gen_pseudo(tools, root, ckpt, tmp_path / 'out')
            else:
                tools['train'].main([SBCE_CFG, '--work-dir', str(tmp_path / 'w'),
                                     '--cfg-options', *_data_options(root)])
        _one_line_error(exc_info, tool, label_file, needle)
    assert not osp.exists(tmp_path / 'out') and not osp.exists(tmp_path / 'w' / 'q')
