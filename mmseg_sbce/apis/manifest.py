# Copyright (c) mmseg-sbce contributors.
"""The ``manifest.json`` of a pseudo-label folder: what run wrote it and whether it finished.

One format for every export (``tools/gen_pseudo.py`` and the Q store of ``QUpdateHook``;
docs/pseudo_labels.md describes the fields). :func:`mmseg_sbce.apis.export_pseudo_labels`
writes it ``'running'`` before the first label and ``'complete'`` /
``'complete_with_failures'`` after the last, atomically; a folder is reused only by a run
with the same ``identity`` (:func:`check_out_dir`).
"""
import datetime
import hashlib
import json
import os
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Tuple

from ..utils.io import write_text_atomic

MANIFEST = 'manifest.json'
MANIFEST_FORMAT = 'mmseg-sbce-pseudo-labels/2'

#: ``status`` values: written before the first label / after the last.
RUNNING, COMPLETE, COMPLETE_WITH_FAILURES = 'running', 'complete', 'complete_with_failures'


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def canonical(obj: Any) -> Any:
    """JSON-able form with tuples as lists, stable key order and ``str`` of anything else."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def dict_sha256(obj: Any) -> str:
    """SHA-256 of the canonical JSON of a (config) dict."""
    return hashlib.sha256(json.dumps(canonical(obj), sort_keys=True).encode()).hexdigest()


def _flatten(obj: Any, prefix: str = '') -> Dict[str, Any]:
    if isinstance(obj, dict):
        out: Dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_flatten(value, f'{prefix}{key}.'))
        return out
    return {prefix[:-1]: obj}


def identity_differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """Dotted field names whose values differ, e.g. ``['pseudo_cfg.threshold']``."""
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


class ManifestUnreadable(ValueError):
    """``manifest.json`` exists but is not a JSON object (truncated, edited, another file)."""


def read_manifest(out_dir: str) -> Optional[Dict[str, Any]]:
    """The manifest of ``out_dir``; None when there is none.

    Raises:
        ManifestUnreadable: the file is not a JSON object; the one-line message names it.
    """
    path = osp.join(out_dir, MANIFEST)
    if not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            manifest = json.load(f)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ManifestUnreadable(f'{path} is not a readable manifest ({type(exc).__name__}: '
                                 f'{exc})') from None
    if not isinstance(manifest, dict):
        raise ManifestUnreadable(f'{path} is not a readable manifest (a JSON '
                                 f'{type(manifest).__name__}, not an object)')
    return manifest


def check_out_dir(out_dir: str, identity: Dict[str, Any], overwrite: bool) -> Optional[str]:
    """Why ``out_dir`` must not be (re)used for this run, or None if it may.

    A folder is reusable when it is empty or absent, or when its manifest has the same
    identity (an interrupted or repeated run: finished images are skipped). Files of a
    different run (another identity, label PNGs without a manifest, or a manifest that
    cannot be read) are refused unless ``overwrite``.
    """
    link = osp.join(out_dir, MANIFEST)
    if osp.islink(link):  # never written through, --overwrite or not
        return (f'{link} is a symbolic link (to {os.readlink(link)}): refusing to write '
                'through it; remove the link')
    if overwrite or not osp.isdir(out_dir):
        return None
    try:
        manifest = read_manifest(out_dir)
    except ManifestUnreadable as exc:
        return (f'{exc}: the folder\'s files cannot be attributed to this run; pass '
                '--overwrite to replace them')
    if manifest is None:
        pngs = [n for n in os.listdir(out_dir) if n.endswith('.png')]
        if pngs:
            return (f'{out_dir} holds {len(pngs)} PNG files but no {MANIFEST}: they are not '
                    'from this run; pass --overwrite to write over them')
        return None
    diff = identity_differences(manifest.get('identity', {}), identity)
    if diff:
        old, new = _flatten(manifest.get('identity', {})), _flatten(identity)
        shown = '; '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in diff[:10])
        return (f'{out_dir} holds the output of a different run; manifest fields that '
                f'differ: {", ".join(diff)} ({shown}); pass --overwrite to replace it')
    return None


def write_manifest(out_dir: str, manifest: Dict[str, Any]) -> str:
    """Write ``{out_dir}/manifest.json`` atomically; returns its path."""
    path = osp.join(out_dir, MANIFEST)
    write_text_atomic(path, json.dumps(canonical(manifest), indent=2, sort_keys=True))
    return path


def check_complete(out_dir: str) -> Dict[str, Any]:
    """The manifest of a finished export without failures; raises otherwise.

    Raises:
        FileNotFoundError: ``out_dir`` has no manifest (the export never started or was
            never completed by a version that writes one).
        ValueError: the manifest is of another format, or its status is not ``'complete'``
            (still running, interrupted, or some images failed).
    """
    manifest = read_manifest(out_dir)
    if manifest is None:
        raise FileNotFoundError(f'{out_dir} has no {MANIFEST}: it was never completed')
    if manifest.get('format') != MANIFEST_FORMAT:
        raise ValueError(f'{osp.join(out_dir, MANIFEST)} is of format '
                         f'{manifest.get("format")!r}, not {MANIFEST_FORMAT!r}: written by '
                         'another mmseg-sbce version; export the folder again')
    if manifest.get('status') != COMPLETE:
        raise ValueError(f'{out_dir} is not a complete export: its {MANIFEST} has status '
                         f'{manifest.get("status")!r}')
    return manifest


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


def versions() -> Dict[str, str]:
    """Versions of the packages that decide the labels."""
    import mmengine
    import mmseg
    import torch

    from mmseg_sbce import __version__
    return dict(mmseg_sbce=__version__, mmseg=mmseg.__version__,
                mmengine=mmengine.__version__, torch=torch.__version__)


def tool_run_fields(tool_argv: List[str], config: str, checkpoint: str, model_cfg: Any,
                    dataset_cfg: dict, split: Optional[str],
                    hash_checkpoint: bool = True) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The ``identity`` and ``run_info`` a command-line export passes to
    :func:`~.export.export_pseudo_labels` (``tools/gen_pseudo.py``, ``tools/refine_irn.py``).

    Args:
        tool_argv (list[str]): the tool's name followed by its arguments (the command line).
        config (str): the config file.
        checkpoint (str): the checkpoint file.
        model_cfg: the config's ``model`` (hashed into the identity).
        dataset_cfg (dict): the data set labelled.
        split (str, optional): the ``--split`` given.
        hash_checkpoint (bool): hash the checkpoint (only the rank that writes the manifest
            needs it; the others pass False and get None).

    Returns:
        tuple: ``identity`` (what decides the files besides ``pseudo_cfg``) and
        ``run_info`` (recorded, not compared).
    """
    identity = dict(config=osp.basename(config), model_cfg_sha256=dict_sha256(model_cfg),
                    checkpoint_sha256=file_sha256(checkpoint) if hash_checkpoint else None,
                    dataset=dataset_cfg)
    run_info = dict(config_path=osp.abspath(config), checkpoint=osp.abspath(checkpoint),
                    split=split, command=' '.join(tool_argv))
    return identity, run_info


def print_summary(tool: str, summary: Dict[str, Any], out_dir: str) -> int:
    """Print an export's summary the way the tools do (failures on stderr) and return the
    tool's exit status: 0 when every image was written or already there, 1 otherwise."""
    failures = summary['failures']
    print(f'{tool}: {summary["written"]} written, {summary["skipped"]} already there, '
          f'{len(failures)} failed of {summary["total"]} -> {out_dir}')
    fallbacks = summary.get('saliency_fallbacks')
    if fallbacks:
        print(f'{tool}: {len(fallbacks)} images labelled without their saliency map '
              f'(on_missing="fallback"): {", ".join(f["img_id"] for f in fallbacks)}')
    if failures:
        print(f'{tool}: {len(failures)} images could not be labelled:', file=sys.stderr)
        for f in failures:
            print(f'  {f["img_id"]} (index {f["index"]}): {f["error"]}', file=sys.stderr)
    return 1 if failures else 0
