# Copyright (c) mmseg-sbce contributors.
"""Options and presets of the generated data-set family (:mod:`.family_data`).

A preset is a JSON file ``{"description": str, "options": {...}}`` whose options are the
fields of :class:`FamilyOptions`; the named members of the family live in
``benchmarks/datasets/`` (``docs/data.md``).
"""
import dataclasses
import json
import os
import os.path as osp
from typing import Dict, List, Mapping, Optional, Tuple

from .generated_common import DEFAULT_BODY_TINT, check_body_tint, check_num_classes

#: Background clutter levels, each adding to the previous one.
CLUTTER_LEVELS = ('plain', 'textured', 'edges', 'lookalikes')


@dataclasses.dataclass(frozen=True)
class FamilyOptions:
    """Options of one member of the family; every field is written to ``meta.json``.

    Args:
        num_train (int): Training images (>= 0). Defaults to 400.
        num_val (int): Validation images (>= 0, not both 0). Defaults to 100.
        img_size (int): Side of the square images in px (32..1024). Texture and clutter
            sizes scale with ``img_size / 128``; the heads' texture period stays ~4 px.
        num_classes (int): Foreground classes C (1..10). Defaults to 4.
        seed (int): Random seed (>= 0). Defaults to 0.
        object_scale (tuple[float, float]): Range of one object's area (body + head) as a
            fraction of the image (0.005 <= low <= high <= 0.6), drawn log-uniformly.
            Bodies may be cut by the image border (heads never are), as long as 60 % of
            the object stays visible; an object with no room left is shrunk.
        classes_per_image (tuple[int, int]): Range (1..3, at most C) of distinct classes
            per image, drawn uniformly. Every image has at least ``low`` classes.
        instances_per_class (tuple[int, int]): Range (1..3) of objects per present class.
            Extra instances that find no room are dropped.
        class_groups (tuple[tuple[int, ...], ...]): Classes that often appear together:
            disjoint groups of >= 2 class ids in 1..C. Defaults to none.
        group_prob (float): Probability (0..1) that each further class of an image is
            drawn from the first class's group (if any of it is left) instead of from
            all classes. 0 makes co-occurrence independent of the groups.
        clutter (str): Background, one of ``CLUTTER_LEVELS``: ``'plain'`` (flat colour,
            gentle gradient, noise), ``'textured'`` (the demo's stripes and soft blobs),
            ``'edges'`` (+ hard-edged ellipses, rectangles and outlines of object size),
            ``'lookalikes'`` (+ unlabelled distractors: headless bodies with a class's
            tint and desaturated untextured discs in a class's head colour).
        body_tint (float): Share (0..1) of the class colour in the body colour; 0 gives
            bodies shared by all classes that carry no class information.
        part_size (tuple[float, float]): Range (0.2..1.0) of the head radius over the
            body's minor semi-axis: the size of the discriminative part.
        context (float): Probability (0..1) that a present class's context (a muted
            class-specific pattern) surrounds its first object, unlabelled.
        context_leak (float): Probability (0..1) that an absent class's context appears
            somewhere in the image anyway.
        border_width (int): Half-width in px (0..4) of the 255 band on label boundaries.
        jpeg_quality (int): JPEG quality (1..100) of the images. Defaults to 90.
    """
    num_train: int = 400
    num_val: int = 100
    img_size: int = 128
    num_classes: int = 4
    seed: int = 0
    object_scale: Tuple[float, float] = (0.05, 0.15)
    classes_per_image: Tuple[int, int] = (1, 2)
    instances_per_class: Tuple[int, int] = (1, 1)
    class_groups: Tuple[Tuple[int, ...], ...] = ()
    group_prob: float = 0.0
    clutter: str = 'textured'
    body_tint: float = DEFAULT_BODY_TINT
    part_size: Tuple[float, float] = (0.65, 0.8)
    context: float = 0.0
    context_leak: float = 0.0
    border_width: int = 1
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        # JSON gives lists; store tuples so options stay hashable and compare equal.
        for name in ('object_scale', 'classes_per_image', 'instances_per_class',
                     'part_size'):
            object.__setattr__(self, name, _pair(name, getattr(self, name)))
        groups = self.class_groups
        if not isinstance(groups, (list, tuple)) or not all(
                isinstance(g, (list, tuple)) for g in groups):
            raise ValueError(f'class_groups must be a list of lists, got {groups!r}')
        object.__setattr__(self, 'class_groups', tuple(tuple(g) for g in groups))
        self._validate()

    def _validate(self) -> None:
        for name, low, high in (('num_train', 0, None), ('num_val', 0, None),
                                ('img_size', 32, 1024), ('seed', 0, None),
                                ('border_width', 0, 4), ('jpeg_quality', 1, 100)):
            _check_int(name, getattr(self, name), low, high)
        _check_int('num_classes', self.num_classes, 1, None)
        check_num_classes(self.num_classes)
        if self.num_train + self.num_val == 0:
            raise ValueError('num_train and num_val must not both be 0')
        _check_range('object_scale', self.object_scale, 0.005, 0.6)
        _check_range('classes_per_image', self.classes_per_image, 1,
                     min(3, self.num_classes), integer=True)
        _check_range('instances_per_class', self.instances_per_class, 1, 3, integer=True)
        _check_range('part_size', self.part_size, 0.2, 1.0)
        for name in ('group_prob', 'context', 'context_leak'):
            _check_probability(name, getattr(self, name))
        check_body_tint(self.body_tint)
        if self.clutter not in CLUTTER_LEVELS:
            raise ValueError(f'clutter must be one of {CLUTTER_LEVELS}, got {self.clutter!r}')
        seen: List[int] = []
        for group in self.class_groups:
            if len(group) < 2 or any(
                    isinstance(c, bool) or not isinstance(c, int)
                    or not 1 <= c <= self.num_classes or c in seen for c in group):
                raise ValueError(
                    f'class_groups must be disjoint groups of >= 2 class ids in '
                    f'1..{self.num_classes}, got {self.class_groups!r}')
            seen.extend(group)

    @classmethod
    def from_dict(cls, values: Mapping, source: str = 'options') -> 'FamilyOptions':
        """Options from a mapping (e.g. a preset's JSON); unknown keys are an error.

        Args:
            values (Mapping): Field values; missing fields keep their defaults.
            source (str): What the values come from, for error messages.
        """
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f'{source}: unknown family options {unknown}')
        try:
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise ValueError(f'{source}: {err}') from err

    def to_dict(self) -> Dict:
        """The options as JSON-friendly values (tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _pair(name: str, value) -> Tuple:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f'{name} must be a (low, high) pair, got {value!r}')
    return tuple(value)


def _check_int(name: str, value, low: int, high: Optional[int]) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high):
        bounds = f'{low}..{high}' if high is not None else f'>= {low}'
        raise ValueError(f'{name} must be an integer {bounds}, got {value!r}')


def _check_range(name: str, pair: Tuple, low: float, high: float,
                 integer: bool = False) -> None:
    kinds = (int, ) if integer else (int, float)
    if not all(isinstance(v, kinds) and not isinstance(v, bool) for v in pair) or not (
            low <= pair[0] <= pair[1] <= high):
        what = 'integers' if integer else 'numbers'
        raise ValueError(f'{name} must be a pair of {what} with {low} <= low <= high <= '
                         f'{high}, got {list(pair)!r}')


def _check_probability(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0.0 <= value <= 1.0):
        raise ValueError(f'{name} must be a number in [0, 1], got {value!r}')


def load_family_preset(path: str) -> Tuple[FamilyOptions, str]:
    """Read a preset file: JSON ``{"description": str, "options": {...}}``.

    Returns:
        tuple[FamilyOptions, str]: The options and the description.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'family preset {path} not found')
    with open(path) as f:
        try:
            preset = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path} is not valid JSON: {err}') from err
    if not isinstance(preset, dict) or not isinstance(preset.get('options'), dict):
        raise ValueError(f'{path}: expected {{"description": ..., "options": {{...}}}}')
    return FamilyOptions.from_dict(preset['options'], source=path), str(
        preset.get('description', ''))


def family_preset_names(preset_dir: str) -> List[str]:
    """Names of the presets (``NAME.json``) in ``preset_dir``, sorted."""
    if not osp.isdir(preset_dir):
        raise FileNotFoundError(f'family preset directory {preset_dir} not found')
    return sorted(name[:-5] for name in os.listdir(preset_dir) if name.endswith('.json'))


def resolve_family_preset(name_or_path: str, preset_dir: str) -> str:
    """Path of a preset given by name (a file ``{preset_dir}/NAME.json``) or by path."""
    if name_or_path.endswith('.json') or osp.sep in name_or_path:
        return name_or_path
    path = osp.join(preset_dir, name_or_path + '.json')
    if not osp.isfile(path):
        raise ValueError(f'unknown family preset {name_or_path!r}; known in {preset_dir}: '
                         f'{", ".join(family_preset_names(preset_dir))}')
    return path
