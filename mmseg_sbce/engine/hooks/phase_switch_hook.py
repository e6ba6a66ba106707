# Copyright (c) mmseg-sbce contributors.
"""Algorithm 1 of the paper (alternating sub-phases) and the outer Q phases, in one hook."""
import math
import random
from typing import Dict, List, Optional, Union

import numpy as np
import torch
from mmengine.dist import broadcast, is_main_process
from mmengine.hooks import Hook
from torch.utils.data import DataLoader, Subset

from mmseg.registry import HOOKS
from mmseg_sbce.models.heads.sbce_head import TRAIN_MODES
from ...utils.checkpoint import SBCE_META_KEY
from ...utils.parallel import unwrap_model as unwrap
from ..phase_schedule import PhaseSchedule

#: The number logged as ``train/sub_phase`` for each training mode (its index in TRAIN_MODES).
SUB_PHASE_CODES = {mode: code for code, mode in enumerate(TRAIN_MODES)}


@HOOKS.register_module()
class PhaseSwitchHook(Hook):
    """Switch the model between the BCE baseline and Algorithm 1's two sub-phases.

    The mode is derived from ``runner.iter`` before every iteration (never from a counter
    compared with ``==``), and again in ``before_train``, so a resumed run lands in the right
    sub-phase. It is applied through ``set_train_mode`` on the unwrapped model and logged as
    ``train/sub_phase`` (0 = bce, 1 = classifier, 2 = threshold) and ``train/phase``.

    Distributed training: in each sub-phase some parameters get no gradient from the loss
    (e.g. the threshold branch while the classifier trains). The head adds a zero-weighted
    term over every parameter, so DDP's gradient sync sees all of them every iteration and
    ``find_unused_parameters`` stays off.

    Before training starts it checks that ``train_cfg.max_iters``, every schedule-driven
    parameter scheduler (``PhaseSchedulePolyLR``) and every other hook with a phase schedule
    (``QUpdateHook``) agree with its own schedule, and fails naming the keys that differ: a
    ``--cfg-options`` override of one copy cannot update the others (``tools/train.py``
    re-derives them all when ``phase_schedule.*`` is overridden).

    Every checkpoint records in ``meta['sbce']['trained_modes']`` the modes the run has
    trained so far (kept across resumes), so that tools can tell a checkpoint whose
    threshold branch was never trained (``tools/gen_pseudo.py`` refuses
    ``--threshold adaptive`` for it).

    Weights loaded with ``load_from`` (not a resume) from a run that never trained a
    Spatial-BCE mode, i.e. the BCE baseline, whose checkpoint holds only the baseline
    config's initial logit scale: the scale loaded is this config's
    ``decode_head.logit_scale_init`` instead, so the value the Spatial-BCE config gives is
    the one its phases start from. A scale trained by earlier Spatial-BCE phases, and
    every resumed run, keep the checkpoint's.

    Logit centre (``centre_start_prob``; off by default, the paper has none): the head
    subtracts a fixed per-class centre ``c`` from its logits (``SBCEHead.logit_centre``),
    so Spatial-BCE and the KL term read ``p = sigmoid(s * (x - c))`` and inference
    ``sigmoid(x - c)``. A GAP-BCE baseline trained to saturation has logits of 20-150 on
    its objects and on whatever it uses of their context, and about -2 on the rest; at a
    constant scale the first are saturated (their gradient, which carries ``p (1 - p)``,
    vanishes) and the rest sits near ``p = 0.3-0.5`` (docs/results.md,
    ``context_unlabelled``). With the switch, before the first
    Spatial-BCE iteration of a run whose head has no centre yet (a run started from a
    baseline, or from scratch; not a resume, not weights from earlier Spatial-BCE phases),
    the centre of each class is set from the network's own logits, no ground truth: the
    median over the class's positive maps (first ``centre_num_images`` training images,
    eval mode) of each map's median logit, ``m_c``, is put at the scaled probability
    ``centre_start_prob``: ``c = m_c - logit(centre_start_prob) / s``. A class absent from
    those images gets the median over all classes' maps. Computed on the main process and
    broadcast. Measured and not adopted: it stops the spread onto the context but costs
    the demo 17-31 points (docs/results.md, "A logit centre from the network's own
    logits").

    Args:
        schedule (dict | PhaseSchedule): the phase layout, the config's ``phase_schedule``
            (gamma, theta, bce_iters, phase_iters, num_phases; see :class:`PhaseSchedule`).
        centre_start_prob (float, optional): where the typical pixel of a positive map
            starts, in scaled probability, e.g. 0.01. None (default): no centre (paper).
        centre_num_images (int): training images read to set the centre. Defaults to 64.
    """
    priority = 'NORMAL'

    def __init__(self, schedule: Union[Dict, PhaseSchedule],
                 centre_start_prob: Optional[float] = None, centre_num_images: int = 64):
        self.schedule = PhaseSchedule.build(schedule)
        if centre_start_prob is not None and not 0 < centre_start_prob < 1:
            raise ValueError(f'centre_start_prob must be in (0, 1), got {centre_start_prob}')
        if centre_num_images < 1:
            raise ValueError(f'centre_num_images must be >= 1, got {centre_num_images}')
        self.centre_start_prob = centre_start_prob
        self.centre_num_images = centre_num_images
        self._mode: Optional[str] = None
        self._trained_modes: set = set()
        # Whether this run has checked the head's centre: once is enough (the centre is
        # never unset again), and reading the flag every iteration would sync the device.
        self._centre_checked = False

    def check_consistency(self, runner) -> None:
        """Raise if :meth:`disagreements` finds anything. Called in ``before_train``, not
        ``before_run``: ``runner.max_iters`` builds the train loop (and its data set), which a
        ``runner.test()`` / ``runner.val()`` of the same config must not need."""
        problems = self.disagreements(runner)
        if problems:
            raise ValueError('the phase schedule is not the same everywhere (set every copy '
                             'from `phase_schedule`):\n  ' + '\n  '.join(problems))

    def disagreements(self, runner) -> List[str]:
        """What disagrees with this hook's schedule, one line per component and key."""
        own = self.schedule.to_dict()
        problems = []
        if runner.max_iters != self.schedule.total_iters:
            problems.append(
                f'train_cfg.max_iters ({runner.max_iters}) must equal bce_iters + '
                f'num_phases * phase_iters = {self.schedule.total_iters} '
                f'(bce_iters={self.schedule.bce_iters}, num_phases='
                f'{self.schedule.num_phases}, phase_iters={self.schedule.phase_iters})')
        schedulers = runner.param_schedulers or []
        if isinstance(schedulers, dict):  # one list per optimizer
            schedulers = [s for group in schedulers.values() for s in group]
        others = [(f'param_scheduler {type(s).__name__}', s.phase_schedule)
                  for s in schedulers if isinstance(getattr(s, 'phase_schedule', None),
                                                    PhaseSchedule)]
        others += [(type(h).__name__, h.schedule) for h in runner.hooks
                   if h is not self and isinstance(getattr(h, 'schedule', None),
                                                   PhaseSchedule)]
        for name, schedule in others:
            for key, value in schedule.to_dict().items():
                if value != own[key]:
                    problems.append(f'{name} has {key}={value}, PhaseSwitchHook has '
                                    f'{key}={own[key]}')
        return problems

    def before_train(self, runner) -> None:
        self.check_consistency(runner)
        model = unwrap(runner.model)
        if not hasattr(model, 'set_train_mode'):
            raise TypeError(f'{type(model).__name__} has no set_train_mode(); '
                            'PhaseSwitchHook needs an SBCEClassifier-like model')
        self._mode = None
        self._centre_checked = False
        self._apply(runner, runner.iter)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._apply(runner, runner.iter)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        self._trained_modes.add(self._mode)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.setdefault('meta', {})
        meta[SBCE_META_KEY] = dict(
            trained_modes=[m for m in TRAIN_MODES if m in self._trained_modes])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # Called before the weights are copied into the model (mmengine), so the scale is
        # replaced in the checkpoint's state dict.
        record = (checkpoint.get('meta') or {}).get(SBCE_META_KEY) or {}
        trained = set(record.get('trained_modes', []))
        if getattr(runner, '_resume', False):
            # Only a resumed run continues the record; load_from starts a new run whose
            # own training is what its checkpoints describe.
            self._trained_modes.update(trained)
            return
        head = getattr(unwrap(runner.model), 'decode_head', None)
        state = checkpoint.get('state_dict', checkpoint)
        if not trained <= {'bce'} or not hasattr(head, 'initial_logit_scale_param'):
            return
        for key in [k for k in state if k.endswith('decode_head.T')]:
            if state[key].shape == head.T.shape:
                state[key] = head.initial_logit_scale_param()
                runner.logger.info(
                    f'{key}: logit scale set to logit_scale_init='
                    f'{head.logit_scale_init:g} (the loaded checkpoint never trained it)')

    def _apply(self, runner, it: int) -> None:
        mode = self.schedule.mode(it)
        if (mode != 'bce' and self.centre_start_prob is not None
                and not self._centre_checked):
            if not bool(unwrap(runner.model).decode_head.logit_centre_set):
                self._set_logit_centre(runner)
            self._centre_checked = True
        if mode != self._mode:
            unwrap(runner.model).set_train_mode(mode)
            runner.logger.debug(f'iter {it}: train mode -> {mode}')
            if self._mode is None or self.schedule.phase(it) != self.schedule.phase(
                    max(it - 1, 0)):
                runner.logger.info(
                    f'iter {it}: phase {self.schedule.phase(it)}, mode {mode}')
            self._mode = mode
        runner.message_hub.update_scalar('train/sub_phase', SUB_PHASE_CODES[mode])
        runner.message_hub.update_scalar('train/phase', self.schedule.phase(it))

    def _set_logit_centre(self, runner) -> None:
        """Set the head's logit centre (class docstring) and log it."""
        model = unwrap(runner.model)
        head = model.decode_head
        centre = head.logit_centre.detach().clone()
        if is_main_process():
            medians = self._positive_map_medians(runner, model)
            pooled = [m for per_class in medians for m in per_class]
            if not pooled:
                raise ValueError(
                    f'centre_start_prob: no positive map in the first '
                    f'{self.centre_num_images} training images (every image label empty?)')
            fallback = float(np.median(pooled))
            typical = torch.tensor([float(np.median(m)) if m else fallback for m in medians])
            offset = math.log(self.centre_start_prob / (1 - self.centre_start_prob))
            # measured on the logits the head gives now, i.e. after the current centre
            centre = centre + (typical - offset / head.logit_scale.detach().cpu()).to(centre)
            missing = [c for c, m in enumerate(medians) if not m]
            if missing:
                runner.logger.warning(
                    f'logit centre: classes {missing} have no positive map in the first '
                    f'{self.centre_num_images} training images; they get the median over '
                    f'all maps ({fallback:.3g})')
        broadcast(centre)
        head.set_logit_centre(centre)
        runner.logger.info(
            'logit centre (typical positive-map logit at scaled probability '
            f'{self.centre_start_prob:g}): ' +
            ', '.join(f'{v:.3g}' for v in head.logit_centre.tolist()))

    def _positive_map_medians(self, runner, model) -> List[List[float]]:
        """Per class, the median logit of each positive map (valid pixels) over the first
        ``centre_num_images`` training images, the network in eval mode."""
        loader = runner.train_dataloader
        dataset = loader.dataset
        subset = Subset(dataset, range(min(self.centre_num_images, len(dataset))))
        batches = DataLoader(subset, batch_size=getattr(loader, 'batch_size', None) or 8,
                             shuffle=False, num_workers=0, collate_fn=loader.collate_fn)
        head = model.decode_head
        medians: List[List[float]] = [[] for _ in range(head.num_classes)]
        was_training = model.training
        model.eval()
        # The training pipeline's random transforms draw from the global generators: a
        # fixed seed makes the centre reproducible (and equal on every world size), and
        # restoring the states leaves the run's own random stream as without the switch.
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                random.seed(0)
                np.random.seed(0)
                torch.manual_seed(0)
                for batch in batches:
                    data = model.data_preprocessor(batch, training=True)
                    cls_logits, _ = model.extract_maps(data['inputs'])
                    samples = data['data_samples']
                    labels, _, _ = head.get_targets(samples, cls_logits.device)
                    valid = head.get_valid_pixels(samples, cls_logits.shape[2:],
                                                  cls_logits.device)
                    for b, c in (labels > 0.5).nonzero().tolist():
                        values = cls_logits[b, c].float()
                        if valid is not None:
                            values = values[valid[b]]
                        medians[c].append(float(values.median()))
        finally:
            model.train(was_training)
            random.setstate(py_state)
            np.random.set_state(np_state)
        return medians
