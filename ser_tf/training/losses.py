"""Classification losses for one-hot targets.

* ``cross_entropy`` — ``keras.losses.CategoricalCrossentropy``. TIM-Net (Ye et al. 2023,
  ``Code/Model.py``) trains on labels smoothed with factor 0.1:
  ``y * (1 - 0.1) + 0.1 / K``, the same formula Keras applies with ``label_smoothing=0.1``.
  The code of the paper's time (TIM-Net 1.0, February 2023) wrote the smoothed labels back
  into the full label array (``y[train] = smooth_labels(y[train], 0.1)``), so smoothing
  compounded from fold to fold and later folds' test targets were smoothed too (the argmax,
  hence accuracy, unchanged; the loss not). The authors' pull request #14 (opened July
  2023, merged August 2023) fixed it with ``copy.deepcopy``: what we do is the fixed code,
  not the published runs. Here
  smoothing happens inside the loss, on a tensor, once per call: the caller's targets are
  never modified. Difference: Keras also smooths the targets of the *validation* loss
  (the fixed TIM-Net code's ``val_loss`` used hard labels; the code of the paper's time,
  smoothed ones from fold 2 on); accuracy-based selection is unaffected.
* ``focal`` — focal loss (Lin et al., ICCV 2017), ``FL = -α (1 - p)^γ log p`` summed over
  classes weighted by the (smoothed) target. Light-SERNet (Aftab et al. 2022, ``loss.py``)
  uses γ = 2 and no class weighting. ``keras.losses.CategoricalFocalCrossentropy`` implements
  the same formula but defaults to α = 0.25 (the binary detection setting of Lin et al.),
  which scales the loss by 1/4; ``alpha=None`` here means α = 1 (no weighting).
"""

from __future__ import annotations

from typing import Sequence

import keras

LOSSES = ("cross_entropy", "focal")


def get_loss(name: str = "cross_entropy", *, gamma: float = 2.0,
             alpha: float | Sequence[float] | None = None, label_smoothing: float = 0.0,
             from_logits: bool = False) -> keras.losses.Loss:
    """A Keras loss for one-hot targets ``(batch, K)`` and predictions ``(batch, K)``.

    Args:
        name: ``"cross_entropy"`` or ``"focal"``.
        gamma: focusing parameter γ ≥ 0 of the focal loss (γ = 0 gives cross-entropy).
        alpha: focal class weighting — ``None`` (α = 1), a scalar, or one weight per class
            (e.g. inverse class frequencies). Cross-entropy accepts only ``None``.
        label_smoothing: in [0, 1); targets become ``y (1 - s) + s / K`` inside the loss.
        from_logits: predictions are logits rather than softmax probabilities.
    """
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if name == "cross_entropy":
        if alpha is not None:
            raise ValueError("alpha applies to the focal loss only; for weighted cross-entropy "
                             "pass class_weight to fit()")
        return keras.losses.CategoricalCrossentropy(from_logits=bool(from_logits),
                                                    label_smoothing=float(label_smoothing),
                                                    name="cross_entropy")
    if float(gamma) < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma!r}")
    if alpha is None:
        alpha = 1.0
    elif isinstance(alpha, (int, float)):
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha!r}")
        alpha = float(alpha)
    else:
        alpha = [float(a) for a in alpha]
        if not alpha or min(alpha) < 0:
            raise ValueError(f"per-class alpha must be non-empty and non-negative, got {alpha}")
    return keras.losses.CategoricalFocalCrossentropy(
        alpha=alpha, gamma=float(gamma), from_logits=bool(from_logits),
        label_smoothing=float(label_smoothing), name="focal")
