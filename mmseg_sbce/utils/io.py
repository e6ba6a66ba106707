# Copyright (c) mmseg-sbce contributors.
"""File conventions every package shares: the ignore label, atomic writes, label PNGs and
split files.

* :data:`IGNORE_INDEX`: the label id 255, "ignore" in ground truth and "unsure" in
  pseudo-labels (mmseg's ``ignore_index``).
* :func:`atomic_write` / :func:`write_json_atomic`: a file appears complete under its name
  or not at all (written under a hidden temporary name in the same folder, then renamed);
  a symbolic link is never written through (:class:`SymlinkRefused`).
* :func:`read_label_png`: the label ids of a label PNG.
* :func:`read_split`: the image ids of a split file.
"""
import json
import os
import os.path as osp
from typing import Any, Callable, Iterable, List

import numpy as np

#: Label id of ignored (ground truth) and unsure (pseudo-label) pixels.
IGNORE_INDEX = 255

#: The name of every temporary file of :func:`atomic_write` ends with this (and starts with
#: a dot), so an interrupted run's leftovers can be found and removed.
TEMP_SUFFIX = '.tmp'


def temp_path(path: str) -> str:
    """The hidden temporary name ``.NAME.PID.tmp`` next to ``path`` (same file system, so
    the final ``os.replace`` is atomic; never read by anyone)."""
    head, tail = osp.split(path)
    return osp.join(head, f'.{tail}.{os.getpid()}{TEMP_SUFFIX}')


class SymlinkRefused(OSError):
    """An output path is a symbolic link: writing would change a file elsewhere."""


def check_not_symlink(path: str) -> None:
    """Raise :class:`SymlinkRefused` naming ``path`` when it is a symbolic link.

    Outputs are never written through a link: its target may lie outside the output folder
    (another run's files, a user's data), and replacing the link silently would hide that.
    """
    if osp.islink(path):
        raise SymlinkRefused(f'{path} is a symbolic link (to {os.readlink(path)}): refusing '
                             'to write through it; remove the link or choose another path')


def atomic_write(path: str, write: Callable[[str], Any]) -> None:
    """Let ``write(tmp)`` create the file under a temporary name, then rename it to ``path``.

    A run killed at any moment leaves either no file or the complete file at ``path``; on an
    exception the temporary file is removed and the exception propagates.

    Args:
        path (str): the final file name.
        write (Callable[[str], Any]): writes the whole file to the path it is given.

    Raises:
        SymlinkRefused: ``path`` is a symbolic link.
    """
    check_not_symlink(path)
    tmp = temp_path(path)
    if osp.lexists(tmp):  # a leftover of a killed process with our pid, or a planted link
        os.remove(tmp)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if osp.lexists(tmp):
            os.remove(tmp)
        raise


def write_text_atomic(path: str, text: str) -> None:
    """Write a UTF-8 text file atomically (see :func:`atomic_write`)."""

    def write(tmp: str) -> None:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)

    atomic_write(path, write)


def write_json_atomic(path: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON with sorted keys, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True))


def read_label_png(path: str) -> np.ndarray:
    """Label ids of a PNG: palette indices of mode 'P', values of mode 'L'/'I'.

    Raises:
        ValueError: for an image of another mode (e.g. an RGB rendering of a label map), or
            a file that does not decode (truncated, not an image); the message names it.
    """
    from PIL import Image
    try:
        with Image.open(path) as img:
            if img.mode not in ('P', 'L', 'I', 'I;16'):
                raise ValueError(f'{path}: a label PNG must be mode P or L, got {img.mode}')
            return np.asarray(img)
    except (OSError, SyntaxError) as exc:  # PIL: truncated / unidentified / bad chunks
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f'{path}: not a readable label PNG ({type(exc).__name__}: '
                         f'{exc})') from None


def parse_split(lines: Iterable[str]) -> List[str]:
    """Image ids of the lines of a split file: the first token of every non-empty line."""
    return [line.split()[0] for line in lines if line.strip()]


def read_split(path: str) -> List[str]:
    """Image ids of a local split file (see :func:`parse_split`)."""
    with open(path, encoding='utf-8') as f:
        return parse_split(f)
