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
"""

from __future__ import annotations

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
