"""Optimisers by name, with optional per-layer-group learning rates.

:func:`make_optimizer` is the one place a name plus plain parameters become a Keras 3
optimiser; the parameters are checked here, so a typo in a config fails before training
starts, with the allowed names in the message.

Per-layer-group learning rates (``groups``) follow PyTorch's parameter groups: an ordered
list of ``{"match": regex, "lr_multiplier": float}``. A trainable variable takes the
multiplier of the first group whose regex matches its ``.path`` (see :func:`lr_multiplier`),
1.0 when none does.
Its effective rate is ``optimizer.learning_rate * multiplier``, so a
``LearningRateScheduler`` that sets ``optimizer.learning_rate`` every epoch scales every
group together. A multiplier of 0 freezes the variable: neither it nor its optimizer slots
(Adam moments, SGD momentum) are touched.

How: a subclass of the Keras optimiser (:data:`GROUPED_OPTIMIZERS`) works out each
variable's multiplier once, in ``build``, and overrides ``update_step(gradient, variable,
learning_rate)``, which Keras 3 calls once per variable with the optimiser's current rate
(``BaseOptimizer._backend_apply_gradients`` → ``_backend_update_step``; the TensorFlow
backend routes it through ``tf.distribute``'s per-variable update, where ``variable`` is the
underlying ``tf.Variable``, hence the look-up by the optimiser's variable index, not by
path). The subclass adds no variable, so ``optimizer.variables`` (what the suite's resume
saves) has the same layout as the plain optimiser's, and ``get_config`` carries the groups
(``"lr_groups"``), so a compiled model with a grouped optimiser serialises.

AdamW: Keras applies decoupled weight decay outside ``update_step``
(``_apply_weight_decay``: ``variable -= variable * weight_decay * learning_rate``, for all
variables, before the updates). The grouped AdamW applies that same decay inside its
``update_step`` with the *group's* rate, ``learning_rate * multiplier``, as PyTorch does
(its AdamW decays by ``lr * weight_decay`` with the group's own ``lr``): a frozen group is
not decayed, a group at 0.1x decays at 0.1x. ``exclude_from_weight_decay`` is honoured.
Variables at multiplier 1 get exactly the plain optimiser's arithmetic.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any, Iterable, Sequence

import keras
from keras import ops

from ser_tf.training.schedules import SCHEDULES, make_schedule  # noqa: F401  (re-exported)

#: Optimiser names :func:`make_optimizer` knows.
OPTIMIZERS = ("adam", "adamw", "sgd")

#: The parameters each optimiser accepts besides ``learning_rate`` (``None`` = Keras' default).
OPTIMIZER_PARAMS = {
    "adam": ("beta_1", "beta_2", "epsilon", "clipnorm"),
    "adamw": ("beta_1", "beta_2", "epsilon", "clipnorm", "weight_decay"),
    "sgd": ("momentum", "nesterov", "clipnorm"),
}

_BASE_CLASSES = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
}


# --------------------------------------------------------------------------------------------
# validation

def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_param(optimizer: str, name: str, value):
    """``value`` of parameter ``name`` as Keras wants it, or ValueError."""
    where = f"optimizer {optimizer!r}: {name}"
    if name == "nesterov":
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be True or False, got {value!r}")
        return value
    if not _is_number(value) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    value = float(value)
    if name in ("beta_1", "beta_2", "momentum") and not 0 <= value < 1:
        raise ValueError(f"{where} must be in [0, 1), got {value!r}")
    if name in ("epsilon", "clipnorm") and not value > 0:
        raise ValueError(f"{where} must be positive, got {value!r}")
    if name == "weight_decay" and not value >= 0:
        raise ValueError(f"{where} must be >= 0, got {value!r}")
    return value


def check_groups(groups: Iterable[dict] | None) -> tuple[tuple[str, float], ...]:
    """``groups`` checked and normalised to ``((regex, multiplier), ...)``, in order.

    Each group is a dict with exactly the keys ``"match"`` (a regular expression, matched
    against the variable path as :func:`path_matches` says) and ``"lr_multiplier"`` (a
    finite number >= 0). ``None`` or an empty list gives ``()``.
    """
    if groups is None:
        return ()
    if isinstance(groups, (str, bytes, dict)) or not isinstance(groups, Iterable):
        raise ValueError("groups must be a list of {'match': regex, 'lr_multiplier': float}, "
                         f"got {groups!r}")
    normalised = []
    for i, group in enumerate(groups):
        if not isinstance(group, dict) or set(group) != {"match", "lr_multiplier"}:
            raise ValueError(f"groups[{i}] must be a dict with exactly the keys 'match' and "
                             f"'lr_multiplier', got {group!r}")
        pattern, multiplier = group["match"], group["lr_multiplier"]
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"groups[{i}]['match'] must be a non-empty regex string, "
                             f"got {pattern!r}")
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"groups[{i}]['match'] {pattern!r} is not a valid regex: "
                             f"{error}") from None
        if not _is_number(multiplier) or not math.isfinite(multiplier) or multiplier < 0:
            raise ValueError(f"groups[{i}]['lr_multiplier'] must be a finite number >= 0, "
                             f"got {multiplier!r}")
        normalised.append((pattern, float(multiplier)))
    return tuple(normalised)


def path_matches(pattern: str, path: str) -> bool:
    """Whether ``pattern`` matches all of ``path`` or all of a tail of it that starts after
    a ``/`` (``re.fullmatch`` on each).

    Keras variable paths carry the layer names, and an enclosing model's name when the layer
    was built inside it (a ``Sequential`` model's layers: ``"sequential/dense_1/kernel"``; a
    functional model's: ``"dense_1/kernel"``), so ``"dense_1/.*"`` matches both, and
    ``"wav2vec2/.*"`` every variable under a layer or sub-model named ``wav2vec2``, but not
    ``"dense_10/kernel"`` or ``"my_wav2vec2/kernel"``. ``".*/bias"`` is every bias.
    """
    if re.fullmatch(pattern, path):
        return True
    start = path.find("/")
    while start != -1:
        if re.fullmatch(pattern, path[start + 1:]):
            return True
        start = path.find("/", start + 1)
    return False


def lr_multiplier(path: str, groups) -> float:
    """The multiplier of the first group whose regex matches ``path`` (:func:`path_matches`);
    1.0 if none does.

    ``groups``: as for :func:`make_optimizer` (or already :func:`check_groups`-normalised).
    """
    for pattern, multiplier in _normalised(groups):
        if path_matches(pattern, path):
            return multiplier
    return 1.0


def _normalised(groups) -> tuple[tuple[str, float], ...]:
    if groups and all(isinstance(g, tuple) for g in groups):
        return tuple(groups)
    return check_groups(groups)


def _groups_as_dicts(groups) -> list[dict]:
    return [{"match": p, "lr_multiplier": m} for p, m in groups]


# --------------------------------------------------------------------------------------------
# grouped optimisers

def _variable_path(variable) -> str:
    path = getattr(variable, "path", None)
    return path if isinstance(path, str) else variable.name


def _grouped_class(base: type) -> type:
    """A subclass of the Keras optimiser ``base`` with per-variable learning-rate multipliers."""

    class Grouped(base):
        def __init__(self, *args, lr_groups=(), **kwargs):
            super().__init__(*args, **kwargs)
            self._lr_groups = check_groups(lr_groups)
            self._lr_multipliers = ()

        @property
        def lr_groups(self) -> list[dict]:
            """The groups, as given: ``[{"match": ..., "lr_multiplier": ...}, ...]``."""
            return _groups_as_dicts(self._lr_groups)

        def build(self, variables):
            if self.built:
                return
            super().build(variables)
            paths = [_variable_path(v) for v in variables]
            self._lr_multipliers = tuple(lr_multiplier(p, self._lr_groups) for p in paths)
            for pattern, _ in self._lr_groups:
                if not any(path_matches(pattern, p) for p in paths):
                    warnings.warn(f"{self.name}: learning-rate group {pattern!r} matches none "
                                  f"of the {len(paths)} trainable variables", stacklevel=2)

        def lr_multipliers(self) -> dict[str, float]:
            """``{variable path: multiplier}`` for the variables the optimiser was built on."""
            if not self.built:
                raise ValueError("the optimizer is not built yet (call build(variables))")
            return {_variable_path(v): m
                    for v, m in zip(self._trainable_variables, self._lr_multipliers)}

        def _apply_weight_decay(self, variables):
            # Decoupled decay is applied per variable in update_step, at the group's rate.
            return

        def update_step(self, gradient, variable, learning_rate):
            multiplier = self._lr_multipliers[self._get_variable_index(variable)]
            if multiplier == 0.0:
                return
            if multiplier != 1.0:
                learning_rate = ops.multiply(ops.cast(learning_rate, variable.dtype),
                                             ops.cast(multiplier, variable.dtype))
            if self.weight_decay is not None and self._use_weight_decay(variable):
                lr = ops.cast(learning_rate, variable.dtype)
                wd = ops.cast(self.weight_decay, variable.dtype)
                self.assign_sub(variable, ops.multiply(ops.multiply(variable, wd), lr))
            super().update_step(gradient, variable, learning_rate)

        def get_config(self):
            config = super().get_config()
            config["lr_groups"] = _groups_as_dicts(self._lr_groups)
            return config

    Grouped.__name__ = Grouped.__qualname__ = f"Grouped{base.__name__}"
    Grouped.__doc__ = (f"Keras ``{base.__name__}`` with per-variable learning-rate multipliers "
                       "(``lr_groups``); see :mod:`ser_tf.training.optim`.")
    return keras.saving.register_keras_serializable(package="ser_tf")(Grouped)


#: The grouped subclass of each optimiser (registered with Keras for deserialisation).
GROUPED_OPTIMIZERS = {name: _grouped_class(cls) for name, cls in _BASE_CLASSES.items()}
GroupedAdam = GROUPED_OPTIMIZERS["adam"]
GroupedAdamW = GROUPED_OPTIMIZERS["adamw"]
GroupedSGD = GROUPED_OPTIMIZERS["sgd"]


# --------------------------------------------------------------------------------------------
# the entry point

def make_optimizer(name: str, learning_rate: float, *, groups: Sequence[dict] | None = None,
                   **params: Any):
    """A Keras 3 optimiser: ``name`` in :data:`OPTIMIZERS`, constant ``learning_rate`` (a
    schedule is a callback setting it), ``params`` from :data:`OPTIMIZER_PARAMS[name]`.

    A parameter given as ``None`` is not passed, i.e. Keras' default applies
    (``make_optimizer("adam", lr, beta_1=b1, beta_2=b2, epsilon=None)`` is exactly
    ``keras.optimizers.Adam(lr, beta_1=b1, beta_2=b2)``). Without ``groups`` (or with an
    empty list) the plain Keras class is returned; with groups its :data:`GROUPED_OPTIMIZERS`
    subclass. Raises ValueError for an unknown name or parameter, a bad value or bad groups.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    if not _is_number(learning_rate) or not math.isfinite(learning_rate) or learning_rate <= 0:
        raise ValueError(f"optimizer {name!r}: learning_rate must be a positive finite number, "
                         f"got {learning_rate!r}")
    allowed = OPTIMIZER_PARAMS[name]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"optimizer {name!r} does not take {', '.join(unknown)}; "
                         f"allowed: {', '.join(allowed)}")
    kwargs = {key: _check_param(name, key, value) for key, value in params.items()
              if value is not None}
    groups = check_groups(groups)
    if not groups:
        return _BASE_CLASSES[name](learning_rate, **kwargs)
    return GROUPED_OPTIMIZERS[name](learning_rate, lr_groups=_groups_as_dicts(groups), **kwargs)
