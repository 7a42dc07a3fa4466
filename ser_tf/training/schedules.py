"""Learning-rate schedules.

Light-SERNet (Aftab et al., ICASSP 2022): Adam at 1e-4, multiplied by e^-0.15 every 20 epochs
"from epoch 60". The released code (``callbacks.LearningRateScheduler`` with
``hyperparameters.LEARNING_RATE_DECAY_STRATPOINT = 50``, ``..._STEP = 20``) multiplies the
current rate when ``epoch >= 50 and epoch % 20 == 0`` (Keras epochs count from 0), i.e. at
epochs 60, 80, 100, ... So the *first decay happens at epoch 60*: epochs 0-59 run at 1e-4,
60-79 at 1e-4·e^-0.15, 80-99 at 1e-4·e^-0.30, and so on.

:func:`step_exp_decay` computes the same rate in closed form from the epoch number alone.
The original is stateful (it rescales whatever rate the optimizer has), which gives the same
sequence from epoch 0 but a wrong one when a run is resumed at ``initial_epoch > 0``; the
closed form is right after a resume too.

:data:`SCHEDULES` names every schedule (``constant``, ``step``, ``step_exp_decay``,
``cosine``), each closed-form in the epoch number (resume-safe) and carrying a ``.config``
dict; :func:`make_schedule` builds one from such a dict, filling ``initial_lr`` and
``epochs`` from the fit when the dict leaves them out.
"""

from __future__ import annotations

import inspect
import math
from typing import Callable

import keras


def step_exp_decay(initial_lr: float = 1e-4, start_epoch: int = 60, every: int = 20,
                   factor: float = math.exp(-0.15)) -> Callable[[int], float]:
    """Epoch → learning rate: ``initial_lr · factor^n`` with ``n = 0`` before ``start_epoch``
    and ``n = (epoch - start_epoch) // every + 1`` from it (first decay *at* ``start_epoch``).

    Epochs are 0-based, as Keras passes them to ``LearningRateScheduler``.
    """
    if not initial_lr > 0:
        raise ValueError(f"initial_lr must be positive, got {initial_lr!r}")
    if isinstance(start_epoch, bool) or not isinstance(start_epoch, int) or start_epoch < 0:
        raise ValueError(f"start_epoch must be a non-negative integer, got {start_epoch!r}")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    if not 0 < factor <= 1:
        raise ValueError(f"factor must be in (0, 1], got {factor!r}")

    def schedule(epoch: int) -> float:
        epoch = int(epoch)
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        steps = 0 if epoch < start_epoch else (epoch - start_epoch) // every + 1
        return float(initial_lr * factor ** steps)

    schedule.config = {"name": "step_exp_decay", "initial_lr": initial_lr,
                       "start_epoch": start_epoch, "every": every, "factor": factor}
    return schedule


def constant(initial_lr: float) -> Callable[[int], float]:
    """Epoch → ``initial_lr`` at every epoch."""
    _check_initial_lr(initial_lr)

    def schedule(epoch: int) -> float:
        _check_epoch(epoch)
        return float(initial_lr)

    schedule.config = {"name": "constant", "initial_lr": initial_lr}
    return schedule


def step_decay(initial_lr: float, every: int, factor: float = 0.1,
               start_epoch: int | None = None) -> Callable[[int], float]:
    """Epoch → ``initial_lr · factor^n``: multiplied by ``factor`` every ``every`` epochs,
    the first time *at* ``start_epoch`` (the :func:`step_exp_decay` rule).

    ``start_epoch`` defaults to ``every``, which is PyTorch's ``StepLR(step_size=every,
    gamma=factor)``: ``n = epoch // every``.
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    start = every if start_epoch is None else start_epoch
    rule = step_exp_decay(initial_lr=initial_lr, start_epoch=start, every=every, factor=factor)

    def schedule(epoch: int) -> float:
        return rule(epoch)

    schedule.config = {"name": "step", "initial_lr": initial_lr, "start_epoch": start,
                       "every": every, "factor": factor}
    return schedule


def cosine_decay(initial_lr: float, epochs: int, min_lr: float = 0.0,
                 warmup_epochs: int = 0) -> Callable[[int], float]:
    """Epoch → optional linear warm-up, then cosine decay from ``initial_lr`` to ``min_lr``.

    - ``epoch < warmup_epochs``: ``initial_lr · (epoch + 1) / warmup_epochs`` (epoch 0 trains
      at ``initial_lr / warmup_epochs``, the last warm-up epoch at ``initial_lr``);
    - then ``min_lr + (initial_lr - min_lr) · (1 + cos(π·t)) / 2`` with
      ``t = (epoch - warmup_epochs) / (epochs - warmup_epochs)``: ``initial_lr`` at epoch
      ``warmup_epochs``, the mean of the two halfway, ``min_lr`` at epoch ``epochs`` (the
      epoch after a run of ``epochs`` epochs, as PyTorch's ``CosineAnnealingLR(T_max=epochs)``,
      so the last epoch trained, ``epochs - 1``, still moves) and after.
    """
    _check_initial_lr(initial_lr)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) \
            or not 0 <= warmup_epochs < epochs:
        raise ValueError(f"warmup_epochs must be an integer in [0, epochs={epochs}), "
                         f"got {warmup_epochs!r}")
    if isinstance(min_lr, bool) or not isinstance(min_lr, (int, float)) \
            or not 0 <= min_lr <= initial_lr:
        raise ValueError(f"min_lr must be in [0, initial_lr={initial_lr}], got {min_lr!r}")
    span = epochs - warmup_epochs

    def schedule(epoch: int) -> float:
        epoch = _check_epoch(epoch)
        if epoch < warmup_epochs:
            return float(initial_lr * (epoch + 1) / warmup_epochs)
        t = min(1.0, (epoch - warmup_epochs) / span)
        return float(min_lr + (initial_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t)))

    schedule.config = {"name": "cosine", "initial_lr": initial_lr, "epochs": epochs,
                       "min_lr": min_lr, "warmup_epochs": warmup_epochs}
    return schedule


def _check_initial_lr(initial_lr):
    if isinstance(initial_lr, bool) or not isinstance(initial_lr, (int, float)) \
            or not 0 < initial_lr < math.inf:
        raise ValueError(f"initial_lr must be a positive finite number, got {initial_lr!r}")


def _check_epoch(epoch) -> int:
    epoch = int(epoch)
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    return epoch


#: Schedule name → builder; each builder returns a closed-form ``epoch -> lr`` function with
#: a ``.config`` dict (``{"name": ..., **params}``) that :func:`make_schedule` rebuilds it from.
SCHEDULES = {
    "constant": constant,
    "step": step_decay,
    "step_exp_decay": step_exp_decay,
    "cosine": cosine_decay,
}


def make_schedule(config: dict | None, *, initial_lr: float,
                  epochs: int) -> Callable[[int], float]:
    """The ``epoch -> lr`` function ``config`` (``{"name": ..., **params}``) describes.

    ``None`` is :func:`constant` at ``initial_lr``. ``initial_lr`` (the fit's learning rate)
    and ``epochs`` (the fit's epoch count) fill the schedule's ``initial_lr`` / ``epochs``
    parameters when the config does not give them; a value in the config wins. So a
    stored ``{"name": "step_exp_decay", "initial_lr": 1e-4, "start_epoch": 60, ...}``
    gives exactly ``step_exp_decay(initial_lr=1e-4, start_epoch=60, ...)``. Unknown names
    or parameters raise ValueError listing the known ones.
    """
    _check_initial_lr(initial_lr)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if config is None:
        return constant(initial_lr)
    if not isinstance(config, dict):
        raise ValueError(f"an lr schedule config is a dict {{'name': ..., **params}}, "
                         f"got {config!r}")
    name = config.get("name")
    if name not in SCHEDULES:
        raise ValueError(f"unknown lr schedule {name!r}; known: {', '.join(SCHEDULES)}")
    builder = SCHEDULES[name]
    accepted = list(inspect.signature(builder).parameters)
    params = {k: v for k, v in config.items() if k != "name"}
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"lr schedule {name!r} does not take {', '.join(unknown)}; "
                         f"allowed: {', '.join(accepted)}")
    defaults = {"initial_lr": initial_lr, "epochs": epochs}
    for key, value in defaults.items():
        if key in accepted:
            params.setdefault(key, value)
    return builder(**params)


def lr_scheduler_callback(schedule: Callable[[int], float] | None = None, *,
                          verbose: int = 0) -> keras.callbacks.LearningRateScheduler:
    """A Keras ``LearningRateScheduler`` setting the rate from the epoch number.

    ``schedule`` defaults to the Light-SERNet :func:`step_exp_decay`. The current optimizer
    rate is ignored on purpose (closed form, resume-safe; see the module docstring).
    """
    schedule = schedule if schedule is not None else step_exp_decay()
    if not callable(schedule):
        raise TypeError(f"schedule must be a function epoch -> lr, got {type(schedule).__name__}")
    return keras.callbacks.LearningRateScheduler(lambda epoch, lr: schedule(epoch),
                                                 verbose=verbose)
