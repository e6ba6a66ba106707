# Copyright (c) mmseg-sbce contributors.
"""Re-estimation of the target proportion Q before every SBCE phase (paper sec. 3.3)."""
import json
import logging
import os
import os.path as osp
import shutil
import time
from copy import deepcopy
from typing import Optional, Union

from mmengine.dist import barrier, broadcast_object_list, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmseg.registry import DATASETS, HOOKS
from ...apis import export_pseudo_labels
from ...apis.manifest import MANIFEST, check_complete
from ...utils.parallel import unwrap_model
from ..phase_schedule import PhaseSchedule

Q_STATE_KEY = 'sbce_q'
# The run a Q store belongs to: {"work_dir": absolute path}, written by the run that creates it.
RUN_FILE = 'run.json'


def phase_dir(q_dir: str, phase: int) -> str:
    return osp.join(q_dir, f'phase_{phase}')


def refresh_dir(q_dir: str, phase: int, refresh: int) -> str:
    """Where refresh ``refresh`` of phase ``phase`` writes the network's maps."""
    return osp.join(q_dir, f'phase_{phase}_maps_{refresh}')


def point_current(q_dir: str, target: str, name: str = 'current') -> None:
    """Atomically make ``{q_dir}/{name}`` a symlink to ``target``.

    Dataloader workers resolve the link at every load, so they switch to the new Q (or
    the new maps, ``name='maps'``) at once.
    """
    link = osp.join(q_dir, name)
    tmp = f'{link}.tmp{os.getpid()}'
    if osp.lexists(tmp):
        os.remove(tmp)
    os.symlink(osp.abspath(target), tmp)
    os.replace(tmp, link)


def claim_q_store(q_dir: str, work_dir: str) -> None:
    """Mark ``q_dir`` as the Q store of the run in ``work_dir``, or refuse another run's.

    Two runs sharing one store would overwrite each other's Q maps and train on them without
    a word, so a store already claimed by another work dir raises.

    Raises:
        ValueError: ``q_dir`` belongs to the run of another work dir.
    """
    work_dir = osp.abspath(work_dir)
    path = osp.join(q_dir, RUN_FILE)
    if osp.isfile(path):
        with open(path) as f:
            owner = json.load(f).get('work_dir')
        if owner != work_dir:
            raise ValueError(
                f'Q store {q_dir} belongs to the run in {owner} ({path}), not to this run in '
                f'{work_dir}: give each run its own q_dir (the default {{work_dir}}/q), or '
                'pass the other run\'s Q as init_q_dir')
        return
    os.makedirs(q_dir, exist_ok=True)
    with open(path, 'w') as f:
        json.dump(dict(work_dir=work_dir), f)


def check_q_store(q_store: str, img_ids) -> None:
    """Raise if ``q_store`` lacks a map for any training image, naming what is missing."""
    if not osp.isdir(q_store):
        raise FileNotFoundError(f'Q store {q_store} does not exist')
    have = {osp.splitext(name)[0] for name in os.listdir(q_store) if name.endswith('.png')}
    missing = sorted(set(img_ids) - have)
    if missing:
        shown = ', '.join(missing[:10]) + (' ...' if len(missing) > 10 else '')
        raise ValueError(f'Q store {q_store} lacks {len(missing)} of {len(set(img_ids))} '
                         f'training images: {shown}')


@HOOKS.register_module()
class QUpdateHook(Hook):
    """Compute the per-image Q maps for the next phase with the on-training network.

    Before every SBCE phase k (including the first, right after the BCE baseline phase), every
    training image is labelled by :func:`mmseg_sbce.apis.export_pseudo_labels` (multi-scale
    + flip inference, eq. 9 or a background threshold, dense CRF: the same export as
    ``tools/gen_pseudo.py``, with the same ``manifest.json``) into ``{q_dir}/phase_k/``. The loss then takes each
    class's target fraction from that map *after* the same crop/rescale/flip as the image
    (``LoadQMap`` loads it as the sample's segmentation map), so the target matches the view
    the network sees.

    Distributed: every rank labels its shard, the export gathers the failures (any failure
    raises on every rank), the main process checks that all images are present and
    repoints ``{q_dir}/current``; all ranks wait at barriers, so every rank trains on the
    same Q. A store is used only when its manifest says ``'complete'``; a half-written one
    (an update interrupted before its manifest was final) is deleted and recomputed. The current phase is stored in the
    checkpoint and restored on resume.

    A Q store belongs to one run: the first run to use ``q_dir`` records its work dir in
    ``{q_dir}/run.json`` and a run in another work dir is refused (``tools/train.py`` puts
    ``q_dir`` in the work dir, see :func:`mmseg_sbce.utils.runner_config.place_q_store`).

    Args:
        q_dir (str): root of the Q store (must equal ``LoadQMap.q_dir`` in the train pipeline).
        dataset (dict): the training images with a test pipeline (no augmentation).
        schedule (dict | PhaseSchedule): the phase layout, the config's ``phase_schedule``
            (the same dict ``PhaseSwitchHook`` gets): Q is re-estimated before every phase.
        pseudo_cfg (dict): inference / labelling / CRF options for phases 2.. (eq. 9).
        init_pseudo_cfg (dict): overrides of ``pseudo_cfg`` for the initial Q computed from the
            BCE baseline's CAMs, e.g. ``dict(threshold=0.25)`` (the background threshold).
        init_q_dir (str, optional): an existing Q store (e.g. from ``tools/gen_pseudo.py`` on
            a separately trained baseline) used as the Q of phase 1 when ``bce_iters == 0``.
        workers (int, optional): CRF worker processes per rank; default all cores / ranks.
        save_maps (bool): also keep the fused maps each Q was labelled from,
            ``{q_dir}/phase_k/probs/{img_id}.npz`` (the export's ``save_probs``), which
            ``LoadQMap(with_thresholds=True)`` reads for
            ``SBCEHead(threshold_loss='q_count')``. Disk: one float16 map per image and
            present class. The hook points ``{q_dir}/maps`` at them (LoadQMap reads the
            maps there). Defaults to False.
        refresh_maps (int): with ``save_maps``, this many times within every phase, at
            equal intervals, re-run the on-training network over the training images and
            point ``{q_dir}/maps`` at its fused maps, ``{q_dir}/phase_k_maps_j/probs``
            (labels without dCRF beside them; the Q stays the phase's): the targets of
            ``threshold_loss='q_count'`` are then the split of the network's current maps
            at Q's count, not of the maps of the previous phase, which on the first phase
            are the baseline's, on another scale. Each costs one multi-scale inference
            pass; older refreshes of the phase are deleted. Measured on the demo: 0.3 to
            0.9 points a phase (docs/results.md, "The branch kept up with its maps").
            Defaults to 0.
    """
    priority = 'NORMAL'

    def __init__(self,
                 q_dir: str,
                 dataset: dict,
                 schedule: Union[dict, PhaseSchedule],
                 pseudo_cfg: Optional[dict] = None,
                 init_pseudo_cfg: Optional[dict] = None,
                 init_q_dir: Optional[str] = None,
                 workers: Optional[int] = None,
                 save_maps: bool = False,
                 refresh_maps: int = 0):
        self.q_dir = q_dir
        self.dataset_cfg = dataset
        self.pseudo_cfg = dict(pseudo_cfg or {})
        self.init_pseudo_cfg = dict(init_pseudo_cfg or {})
        self.init_q_dir = init_q_dir
        self.workers = workers
        self.save_maps = save_maps
        self.q_phase = 0
        self._dataset = None
        self.schedule = PhaseSchedule.build(schedule)
        if not isinstance(refresh_maps, int) or refresh_maps < 0:
            raise ValueError(f'refresh_maps must be a non-negative int, got {refresh_maps!r}')
        if refresh_maps and not save_maps:
            raise ValueError('QUpdateHook(refresh_maps) refreshes the saved maps: it needs '
                             'save_maps=True')
        if refresh_maps >= self.schedule.phase_iters:
            raise ValueError(f'refresh_maps={refresh_maps} must be below the phase length '
                             f'{self.schedule.phase_iters}')
        self.refresh_maps = refresh_maps
        self.maps_refresh = 0  # refreshes done in the current phase

    # ------------------------------------------------------------------ set-up
    def before_run(self, runner) -> None:
        pipeline = runner.cfg.get('train_dataloader', {}).get('dataset', {}).get(
            'pipeline', [])
        for step in pipeline:
            if step.get('type') == 'LoadQMap' and osp.abspath(
                    step.get('q_dir', '')) != osp.abspath(self.q_dir):
                raise ValueError(
                    f"LoadQMap reads Q from {step.get('q_dir')!r} but QUpdateHook writes "
                    f'{self.q_dir!r}: set both from the same config variable `q_dir`')
        error = [None]
        if is_main_process():
            try:
                claim_q_store(self.q_dir, runner.work_dir)
            except Exception as e:  # every rank must learn about it, not hang
                error = [str(e)]
        broadcast_object_list(error)
        if error[0] is not None:
            raise ValueError(error[0])

    @property
    def dataset(self):
        if self._dataset is None:
            self._dataset = DATASETS.build(deepcopy(self.dataset_cfg))
        return self._dataset

    def _img_ids(self) -> list:
        ds = self.dataset
        return [ds.get_data_info(i)['img_id'] for i in range(len(ds))]

    def _schedule_state(self) -> dict:
        return self.schedule.to_dict()

    # ------------------------------------------------------------------ checkpoint
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})[Q_STATE_KEY] = dict(
            q_phase=self.q_phase,
            q_dir=osp.abspath(self.q_dir),
            schedule=self._schedule_state(),
            maps_refresh=self.maps_refresh)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # `load_from`: weights only (e.g. the BCE baseline), no training state
        state = checkpoint.get('meta', {}).get(Q_STATE_KEY)
        if state is None:
            raise ValueError(
                'the checkpoint has no SBCE Q state (meta.sbce_q): it was not saved by an '
                'SBCE run with QUpdateHook, so it cannot be resumed here; use `load_from` '
                'to initialise weights instead of `resume`')
        if state['schedule'] != self._schedule_state():
            raise ValueError(
                'cannot resume: the checkpoint comes from another phase schedule '
                f"{state['schedule']} than this config's {self._schedule_state()}")
        self.q_phase = int(state['q_phase'])
        self.maps_refresh = int(state.get('maps_refresh', 0))
        if self.q_phase > 0:
            self._install(self._store_of(self.q_phase))

    # ------------------------------------------------------------------ training
    def before_train(self, runner) -> None:
        needed = self._needed_phase(runner.iter)
        if needed > self.q_phase:
            self._update(runner, needed)
        elif self.q_phase > 0:
            self._install(self._store_of(self.q_phase))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        next_iter = runner.iter + 1
        if next_iter >= runner.max_iters:
            return
        if self._needed_phase(next_iter) > self.q_phase:
            self._update(runner, self._needed_phase(next_iter))
            return
        refresh = self._refreshes_before(next_iter)
        if self.q_phase > 0 and refresh > self.maps_refresh:
            self._refresh(runner, refresh)

    def _refreshes_before(self, it: int) -> int:
        """How many map refreshes of ``refresh_maps`` precede iteration ``it`` in its
        phase of length ``L``: refresh ``j`` (1..N) comes before the first iteration at or
        past ``j * L / (N + 1)`` into the phase."""
        if not self.refresh_maps:
            return 0
        s = self.schedule
        pos = it - s.phase_start(s.phase(it))
        return min(self.refresh_maps, pos * (self.refresh_maps + 1) // s.phase_iters)

    def _needed_phase(self, it: int) -> int:
        """The Q phase iteration ``it`` trains with (0: none, during the BCE baseline)."""
        return self.schedule.phase(it)

    def _store_of(self, phase: int) -> str:
        if phase == 1 and self.init_q_dir is not None and self.schedule.bce_iters == 0:
            return self.init_q_dir
        return phase_dir(self.q_dir, phase)

    def _install(self, store: str) -> None:
        """Check ``store`` is complete and point ``current`` at it, and ``maps`` at the
        maps of the current refresh (main process)."""
        redo = [False]
        if is_main_process():
            if store != self.init_q_dir:
                if not osp.isfile(osp.join(store, MANIFEST)):
                    raise FileNotFoundError(
                        f'Q store {store} has no {MANIFEST}: it was never completed')
                check_complete(store)  # status 'complete': no running or failed export
            check_q_store(store, self._img_ids())
            point_current(self.q_dir, store)
            maps = store
            if self.maps_refresh:
                maps = refresh_dir(self.q_dir, self.q_phase, self.maps_refresh)
                try:
                    check_complete(maps)
                except (FileNotFoundError, ValueError) as e:  # resumed from an older one
                    print_log(f'the refreshed maps {maps} of the checkpoint cannot be used '
                              f'({e}); refreshing again from the resumed network',
                              logger='current', level=logging.WARNING)
                    maps, redo = store, [True]
            self._point_maps(maps)
        broadcast_object_list(redo)
        if redo[0]:
            self.maps_refresh = 0  # the next iteration refreshes again
        barrier()

    def _point_maps(self, store: str) -> None:
        """Point ``{q_dir}/maps`` at ``{store}/probs`` (``save_maps``; main process).
        Without maps there the entry is removed, so LoadQMap reads ``{current}/probs`` and
        names what is missing."""
        if not self.save_maps:
            return
        probs = osp.join(store, 'probs')
        if osp.isdir(probs):
            point_current(self.q_dir, probs, name='maps')
        elif osp.lexists(osp.join(self.q_dir, 'maps')):
            os.remove(osp.join(self.q_dir, 'maps'))

    def _export(self, runner, out: str, cfg: dict, what: str, save_probs: bool,
                **info) -> None:
        """Label every training image into ``out`` with the on-training network (the
        export of ``tools/gen_pseudo.py``; ``clean``: whatever an interrupted export left
        there is deleted, never reused); raise on every rank if any image failed."""
        summary = export_pseudo_labels(
            unwrap_model(runner.model),
            self.dataset,
            out,
            cfg,
            identity=dict(dataset=self.dataset_cfg, **info),
            run_info=dict(info, iter=runner.iter + 1, q_dir=osp.abspath(self.q_dir)),
            clean=True,
            save_probs=save_probs,
            workers=self.workers,
            progress=is_main_process(),
            logger=runner.logger)
        if summary['failures']:  # the gathered failures: the same on every rank
            failed = [f['img_id'] for f in summary['failures']]
            raise RuntimeError(f'{what} failed on {len(failed)} images: {failed[:10]}')

    @staticmethod
    def _on_main(step) -> None:
        """Run ``step`` on the main process; its error is raised on every rank."""
        error = [None]
        if is_main_process():
            try:
                step()
            except Exception as e:  # every rank must learn about it, not hang
                error = [repr(e)]
        broadcast_object_list(error)
        if error[0] is not None:
            raise RuntimeError(error[0])

    def _refresh(self, runner, refresh: int) -> None:
        """Refresh ``refresh`` of the current phase: the on-training network's fused maps
        of every training image (no dCRF), and ``maps`` pointed at them."""
        out = refresh_dir(self.q_dir, self.q_phase, refresh)
        cfg = deepcopy(self.pseudo_cfg)
        cfg['crf'] = dict(cfg.get('crf') or {}, enabled=False)  # only the maps are read
        start = time.time()
        self._export(runner, out, cfg, f'map refresh {refresh} of phase {self.q_phase}',
                     save_probs=True, phase=self.q_phase, refresh=refresh)

        def point():
            self._point_maps(out)
            # Two refreshes back is no longer read by any worker's prefetched sample.
            if refresh >= 3:
                shutil.rmtree(refresh_dir(self.q_dir, self.q_phase, refresh - 2),
                              ignore_errors=True)

        self._on_main(point)
        self.maps_refresh = refresh
        runner.logger.info(f'maps refreshed ({refresh}/{self.refresh_maps} of phase '
                           f'{self.q_phase}) in {time.time() - start:.1f}s -> {out}')

    def _update(self, runner, phase: int) -> None:
        store = self._store_of(phase)
        if store == self.init_q_dir:
            runner.logger.info(f'Q for phase {phase}: using the given init_q_dir {store}')
            self.q_phase, self.maps_refresh = phase, 0
            self._install(store)
            return

        cfg = deepcopy(self.pseudo_cfg)
        if phase == 1:  # the initial Q comes from the BCE baseline's CAMs
            cfg.update(self.init_pseudo_cfg)
        runner.logger.info(f'Q update for phase {phase}: labelling '
                           f'{len(self.dataset)} training images into {store}')
        start = time.time()
        self._export(runner, store, cfg, f'Q update for phase {phase}',
                     save_probs=self.save_maps, phase=phase)

        def install():
            check_q_store(store, self._img_ids())
            point_current(self.q_dir, store)
            self._point_maps(store)
            for refresh in range(1, self.refresh_maps + 1):  # the previous phase's
                shutil.rmtree(refresh_dir(self.q_dir, phase - 1, refresh), ignore_errors=True)

        self.maps_refresh = 0
        self._on_main(install)
        self.q_phase = phase
        runner.logger.info(f'Q update for phase {phase} done in '
                           f'{time.time() - start:.1f}s')
        runner.message_hub.update_scalar('train/q_phase', phase)
